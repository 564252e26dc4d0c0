"""Train a multi-digit reader (DRAM or the CNN baseline): see `paintrnn.agents.dram`."""

import sys

from paintrnn.agents.dram import main

if __name__ == "__main__":
    sys.exit(main())
