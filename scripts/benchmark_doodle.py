"""Doodle benchmark (sample quality of digit generators): ``python scripts/benchmark_doodle.py --quick``."""

import sys

from paintrnn.agents.doodle_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
