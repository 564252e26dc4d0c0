"""Train DRAW on MNIST: ``python scripts/train_draw.py --help``."""

import sys

from paintrnn.agents.draw_train import main

if __name__ == "__main__":
    sys.exit(main())
