"""Train the recurrent attention model on (translated) MNIST: see `paintrnn.agents.glimpse_train`."""

import sys

from paintrnn.agents.glimpse_train import main

if __name__ == "__main__":
    sys.exit(main())
