"""Train the recurrent attention model on (cluttered, translated) MNIST.

The same as ``paintrnn train glimpse`` (``--help`` lists the options); an error is one line,
``PAINTRNN_DEBUG=1`` shows its traceback."""

import sys

from paintrnn.agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "glimpse", *sys.argv[1:]]))
