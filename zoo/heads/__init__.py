"""Heads: one module per head; importing this package registers them all."""

from zoo.heads import deeplabv3plus, lraspp, unet  # noqa: F401  (registers)
from zoo.heads.base import HEADS, HeadSpec

__all__ = ["HEADS", "HeadSpec"]
