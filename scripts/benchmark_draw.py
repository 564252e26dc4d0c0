"""DRAW benchmark (bounds of finished runs, training speed and MFU): ``python scripts/benchmark_draw.py --help``."""

import sys

from paintrnn.agents.draw_bench import main

if __name__ == "__main__":
    sys.exit(main())
