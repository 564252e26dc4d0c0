"""Glimpse benchmark (RAM vs random glimpses vs a whole-image CNN): see `paintrnn.agents.glimpse_benchmark`."""

from paintrnn.agents.glimpse_benchmark import main

if __name__ == "__main__":
    main()
