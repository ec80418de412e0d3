"""ganforge: train Generative Adversarial Networks with PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"

from ganforge import train  # noqa: E402  (callable: ganforge.train(cfg, data=...) is ganforge.train.train)
from ganforge.config import Config, ConfigError, load_preset, load_toml  # noqa: E402
from ganforge.sampling import Sampler, load  # noqa: E402

__all__ = ["Config", "ConfigError", "Sampler", "__version__", "load", "load_preset", "load_toml", "train"]
