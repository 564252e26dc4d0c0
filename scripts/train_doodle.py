"""Train the backprop doodler (a GAN generator of strokes): ``python scripts/train_doodle.py --help``."""

import sys

from paintrnn.agents.doodle_train import main

if __name__ == "__main__":
    sys.exit(main())
