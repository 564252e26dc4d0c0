"""Train the spatial LSTM texture model.

The same as ``paintrnn train texture`` (``--help`` lists the options); an error is one line,
``PAINTRNN_DEBUG=1`` shows its traceback."""

import sys

from paintrnn.agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "texture", *sys.argv[1:]]))
