"""Painter benchmark on MNIST test digits: ``python scripts/benchmark_painter.py --from-runs RUN ... --json PATH``."""

import sys

from paintrnn.agents.painter_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
