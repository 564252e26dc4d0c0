"""``python -m paintrnn``: an entry point, not core library code (the core never imports paintrnn.agents)."""

if __name__ == "__main__":
    import sys

    from paintrnn.agents.cli import main

    sys.exit(main())
