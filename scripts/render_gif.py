"""Animated GIFs and PNG grids of a trained model: ``python scripts/render_gif.py runs/draw/checkpoint.pt``."""

import sys

from paintrnn.agents.draw_gif import main

if __name__ == "__main__":
    sys.exit(main())
