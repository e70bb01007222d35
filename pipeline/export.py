"""Export a dataset split as a plain folder: each item's MP3 with a reference .mid beside it.

Such a folder is what ``python -m model evaluate --folder`` and the basic-pitch comparison read, so any system can
be scored on exactly the same recordings and references. Items are grouped in sub-folders by instrument family
(``mix`` for multi-instrument items).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .catalog import connect
from .midi_io import write_midi
from .notes import Note, Part, Score
from .splits import split_of

ALL = "all"


def export_split(data_dir: str | Path, dataset: str, split: str, out_dir: str | Path) -> int:
    """Copy the items of ``dataset`` in ``split`` ('all' for every item) to ``out_dir/FAMILY/ITEM.mp3`` + ``.mid``;
    returns the count."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    with connect(data_dir, read_only=True) as connection:
        rows = connection.execute(
            "SELECT item_id, source_hash, families, is_mix, audio_path, features_path FROM items"
            " WHERE dataset = ? AND status = 'done' ORDER BY ordinal", [dataset]).fetchall()
    items_dir = data_dir / "datasets" / dataset / "items"
    count = 0
    for item_id, content_hash, families, is_mix, audio_path, features_path in rows:
        if split != ALL and split_of(content_hash) != split:
            continue
        group = "mix" if is_mix else (families[0] if families else "unknown")
        target = out_dir / group
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(items_dir / audio_path, target / f"{item_id}.mp3")
        with np.load(items_dir / features_path) as stored:
            notes = tuple(Note(float(s), float(e), int(p), int(v)) for s, e, p, v in stored["notes"])
        write_midi(Score((Part(0, False, notes),), max((n.end_s for n in notes), default=0.0)),
                   target / f"{item_id}.mid")
        count += 1
    return count
