"""Where the dashboard reads and writes: the data folder, from MP3_TO_MIDI_DATA (default: data/ in the repo)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("MP3_TO_MIDI_DATA", ROOT / "data")).resolve()


def shown_path(path: str | Path) -> str:
    """A path as the app shows it: relative to the project when inside it (``data/runs/x``), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(ROOT))
    except ValueError:
        return str(resolved)
