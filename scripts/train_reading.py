"""Train a multi-digit reader (DRAM or the CNN baseline).

The same as ``paintrnn train reading`` (``--help`` lists the options); an error is one line,
``PAINTRNN_DEBUG=1`` shows its traceback."""

import sys

from paintrnn.agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "reading", *sys.argv[1:]]))
