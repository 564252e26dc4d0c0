"""Train the spatial LSTM texture model: `python scripts/train_texture.py --help`."""

import sys

from paintrnn.agents.texture_train import main

if __name__ == "__main__":
    sys.exit(main())
