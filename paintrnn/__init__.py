"""paintrnn: recurrent networks that make images step by step.

The core package holds the shared building blocks (renderer, attention, data, media, spatial LSTM
layers, training utilities). Environments live in :mod:`paintrnn.envs`, learners in
:mod:`paintrnn.agents`. The core never imports either.
"""

__version__ = "0.1.0"
