"""Animated GIF of any trained model (dispatches on the checkpoint's kind): ``python scripts/render_gif.py CKPT``."""

import sys

from paintrnn.agents.cli import gif_main

if __name__ == "__main__":
    sys.exit(gif_main())
