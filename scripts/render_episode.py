"""Play one episode of a paintrnn environment; write it as GIF, SVG and a high-resolution PNG."""

from paintrnn.envs.episode import main

if __name__ == "__main__":
    main()
