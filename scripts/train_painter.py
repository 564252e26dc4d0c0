"""Train the stroke painter: ``python scripts/train_painter.py {backprop,ppo,gan} --help``."""

from paintrnn.agents.painter_train import main

if __name__ == "__main__":
    main()
