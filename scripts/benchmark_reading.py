"""Reading benchmark (RAM and DRAW-read on cluttered MNIST, DRAM against a CNN on digit rows): see
`paintrnn.agents.reading_benchmark`."""

from paintrnn.agents.reading_benchmark import main

if __name__ == "__main__":
    main()
