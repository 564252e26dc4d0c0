"""Train the stroke painter: ``python scripts/train_painter.py {backprop,ppo,ddpg,gan} --help``."""

import sys

from paintrnn.agents.painter_train import main

if __name__ == "__main__":
    sys.exit(main())
