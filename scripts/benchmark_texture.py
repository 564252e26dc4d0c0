"""Benchmark the spatial LSTM texture model: `python scripts/benchmark_texture.py --help`."""

from paintrnn.agents.texture_benchmark import main

if __name__ == "__main__":
    main()
