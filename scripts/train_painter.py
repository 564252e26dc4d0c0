"""Train the stroke painter (MODE first: backprop, ppo, ddpg, gan, gan-backprop).

The same as ``paintrnn train painter`` (``--help`` lists the options); an error is one line,
``PAINTRNN_DEBUG=1`` shows its traceback."""

import sys

from paintrnn.agents.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "painter", *sys.argv[1:]]))
