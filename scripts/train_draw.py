"""Train DRAW on MNIST.

The same as ``paintrnn train draw`` (``--help`` lists the options); an error is one line,
``PAINTRNN_DEBUG=1`` shows its traceback."""

import sys

from paintrnn.agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "draw", *sys.argv[1:]]))
