"""``train_painter``: one command line for every painter training mode.

    python scripts/train_painter.py backprop [options]   # differentiate through the soft renderer
    python scripts/train_painter.py ppo [options]        # PPO on the native vector env (l2_delta)
    python scripts/train_painter.py ddpg [options]       # model-based DDPG, the renderer as the model (l2_delta)
    python scripts/train_painter.py gan [options]        # unconditional doodling, discriminator reward

``python scripts/train_painter.py MODE --help`` lists each mode's options (its config dataclass).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from paintrnn.config import parse_config
from paintrnn.training import keep_freed_memory

MODES = ("backprop", "ppo", "ddpg", "gan")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in MODES:
        print(__doc__)
        raise SystemExit(f"choose a mode: {', '.join(MODES)}" if argv and argv[0] not in ("-h", "--help") else 0)
    mode, rest = argv[0], argv[1:]
    keep_freed_memory()  # the renderer's large per-step tensors would be re-faulted page by page otherwise
    prog = f"train_painter.py {mode}"
    if mode == "backprop":
        from paintrnn.agents.painter_backprop import BackpropConfig, train_backprop

        train_backprop(parse_config(BackpropConfig, rest, prog=prog))
    elif mode == "ppo":
        from paintrnn.agents.painter_ppo import PPOConfig, train_ppo

        train_ppo(parse_config(PPOConfig, rest, prog=prog))
    elif mode == "ddpg":
        from paintrnn.agents.painter_ddpg import DDPGConfig, train_ddpg

        train_ddpg(parse_config(DDPGConfig, rest, prog=prog))
    else:
        from paintrnn.agents.painter_gan import GANConfig, train_gan

        train_gan(parse_config(GANConfig, rest, prog=prog))
