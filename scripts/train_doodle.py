"""Train the backprop doodler (noise in, strokes out).

The same as ``paintrnn train doodle`` (``--help`` lists the options); an error is one line,
``PAINTRNN_DEBUG=1`` shows its traceback."""

import sys

from paintrnn.agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "doodle", *sys.argv[1:]]))
