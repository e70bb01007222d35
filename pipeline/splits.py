"""Train/validation/test membership of a piece, from its content hash alone: stable, and grouped by piece."""

from __future__ import annotations

import hashlib
import math

SPLITS = ("train", "validation", "test")
SPLIT_PERCENT = {"train": (0, 80), "validation": (80, 90), "test": (90, 100)}


def split_of(content_hash: str) -> str:
    """80 % train, 10 % validation, 10 % test. A piece keeps its split when a dataset grows or is re-rendered."""
    bucket = int(hashlib.sha1(f"split:{content_hash}".encode()).hexdigest()[:8], 16) % 100
    return next(name for name, (low, high) in SPLIT_PERCENT.items() if low <= bucket < high)


def pieces_for_split(split: str, *, miss_chance: float = 0.01) -> int:
    """The fewest pieces for which the chance that none of them falls in ``split`` is below ``miss_chance``
    (validation, 10 %: 44 pieces)."""
    low, high = SPLIT_PERCENT[split]
    return math.ceil(math.log(miss_chance) / math.log(1 - (high - low) / 100))
