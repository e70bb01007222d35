"""A small PNG picture of an item's spectrogram for the dashboard: low notes at the bottom, time to the right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_path

MAX_WIDTH_PX = 1200
# A dark-to-bright palette (black, purple, red, orange, pale yellow) sampled at even steps.
_ANCHORS = np.array([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=np.float32)
_PALETTE = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_ANCHORS)), _ANCHORS[:, c])
                     for c in range(3)], axis=1).astype(np.uint8)


def preview_image(features: np.ndarray) -> Image.Image:
    """features: [frames, bins] in about [0, 1]. Frames are max-pooled so the picture is at most MAX_WIDTH_PX wide.

    A palette image: one byte per pixel indexing the colours, so the PNG holds a third of the data of an RGB one
    (4x faster to write, half the file) and shows the same pixels.
    """
    frames, bins = features.shape
    step = pool_step(frames)
    padded = np.pad(features, ((0, (-frames) % step), (0, 0)))
    pooled = padded.reshape(-1, step, bins).max(axis=1)
    levels = (np.clip(pooled, 0.0, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(levels.T[::-1]), mode="L")
    image = Image.frombytes("P", image.size, image.tobytes())
    image.putpalette(_PALETTE.tobytes())
    return image


def pool_step(frames: int) -> int:
    """How many feature frames one column of the preview of ``frames`` frames holds."""
    return max(1, -(-frames // MAX_WIDTH_PX))


def write_preview(features: np.ndarray, path: str | Path) -> None:
    """Write the preview PNG atomically (temporary name, then rename)."""
    with atomic_path(path) as partial:
        preview_image(features).save(partial, format="PNG", compress_level=1)
