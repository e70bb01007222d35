"""Training data from the catalog: items split by piece, loaded once, served as augmented random crops.

Splits group by the source piece's content hash, so no piece is in two of train/validation/test, and a piece keeps
its split when a dataset grows or is regenerated with other instruments. Augmentation works on the log-CQT
features: gain is a shift, EQ a smooth tilt, noise a raised floor, and pitch shift a roll by three bins per
semitone with the labels rolled by one key. A bin shift (off unless asked for) rolls the features by one or two
CQT bins (33 or 67 cents) and leaves the labels alone: a key played a little sharp or flat is still that key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.catalog import connect, validate_name
from pipeline.constants import BINS_PER_SEMITONE, LOWEST_PITCH
from pipeline.errors import Mp3MidiError
from pipeline.features import FEATURE_SETTINGS, FLOOR_DB
from pipeline.notes import Note
from pipeline.splits import SPLIT_PERCENT, SPLITS, pieces_for_split, split_of

ROLLS = ("onset", "frame", "offset", "velocity")
# Onset targets span two 16 ms frames (32 ms, as in Onsets and Frames): an onset falls between frame centres, and a
# one-frame target punishes the network for a half-frame disagreement. Decoding picks the peak, so notes stay single.
ONSET_TARGET_FRAMES = 2


@dataclass
class Item:
    """One dataset item in memory. features [frames, 264] float16; rolls [frames, 88] uint8; notes as records."""

    item_id: str
    dataset: str
    families: tuple[str, ...]
    is_mix: bool
    features: np.ndarray
    rolls: dict[str, np.ndarray]
    notes: list[Note]

    @property
    def duration_s(self) -> float:
        from pipeline.constants import FRAMES_PER_SECOND

        return self.features.shape[0] / FRAMES_PER_SECOND


def load_items(data_dir: str | Path, datasets: list[str], split: str, *, sample: int | None = None,
               seed: int = 0) -> list[Item]:
    """Done items of ``datasets`` in ``split``, features and labels loaded into memory.

    ``sample``: at most this many items, a seeded random sample over every dataset named (not the first rows),
    returned in catalog order; the same (datasets, seed) give the same sample.
    """
    rows = split_rows(data_dir, datasets, split)
    if sample is not None and len(rows) > sample:
        chosen = np.random.default_rng([seed, sample]).choice(len(rows), size=sample, replace=False)
        rows = [rows[index] for index in sorted(chosen)]
    data_dir = Path(data_dir)
    return [_load(data_dir / "datasets" / dataset / "items" / features_path, item_id, dataset,
                  tuple(families or ()), bool(is_mix))
            for item_id, dataset, _, families, is_mix, features_path in rows]


def split_rows(data_dir: str | Path, datasets: list[str], split: str) -> list[tuple]:
    """(item_id, dataset, source_hash, families, is_mix, features_path) of the done items of ``datasets`` in
    ``split``, in catalog order; reads no item file."""
    if split not in SPLITS:
        raise Mp3MidiError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    with connect(data_dir, read_only=True) as connection:
        known = {row[0] for row in connection.execute("SELECT name FROM datasets").fetchall()}
        missing = [name for name in datasets if validate_name(name) not in known]
        if missing:
            raise Mp3MidiError(f"no dataset named {', '.join(map(repr, missing))} in {str(data_dir)!r}")
        rows = connection.execute(
            "SELECT item_id, dataset, source_hash, families, is_mix, features_path FROM items"
            " WHERE list_contains(?, dataset) AND status = 'done' ORDER BY dataset, ordinal", [datasets]).fetchall()
    return [row for row in rows if split_of(row[2]) == split]


def check_validation_split(data_dir: str | Path, datasets: list[str]) -> int:
    """The number of validation items of ``datasets``; refuses (never falls back on training items) when there are
    none, saying how many pieces a dataset needs."""
    validation = split_rows(data_dir, datasets, "validation")
    if validation:
        return len(validation)
    pieces = len({row[2] for split in SPLITS for row in split_rows(data_dir, datasets, split)})
    needed = pieces_for_split("validation")
    raise Mp3MidiError(
        f"the validation split of {', '.join(datasets)} holds no pieces ({pieces} pieces in all; a piece's split "
        f"comes from its content, {SPLIT_PERCENT['validation'][1] - SPLIT_PERCENT['validation'][0]} % go to "
        f"validation): scores are never measured on training items, so generate at least {needed} pieces "
        "(then some land in validation all but surely) or add a dataset that has validation pieces")


def _load(path: Path, item_id: str, dataset: str, families: tuple[str, ...], is_mix: bool) -> Item:
    import json

    try:
        with np.load(path) as stored:
            settings = json.loads(str(stored["feature_settings"]))
            if settings != FEATURE_SETTINGS:
                raise Mp3MidiError(f"item {item_id} of {dataset!r} has features made with other settings ({settings});"
                                   " regenerate the dataset")
            notes = [Note(float(s), float(e), int(p), int(v)) for s, e, p, v in stored["notes"]]
            return Item(item_id, dataset, families, is_mix, stored["features"],
                        {name: stored[name] for name in ROLLS}, notes)
    except (OSError, KeyError, ValueError) as exc:
        raise Mp3MidiError(f"cannot read item file {str(path)!r}: {exc}") from None


@dataclass(frozen=True)
class Augment:
    """Ranges of feature-space augmentation; all zero gives the data as stored."""

    gain_db: float = 12.0  # +- level change
    tilt_db: float = 6.0  # +- spectral tilt between the lowest and highest bin (a simple EQ)
    noise_floor: float = 0.15  # raise the floor up to this (features are 0 at -80 dB)
    pitch_shift: int = 3  # +- semitones
    bin_shift: int = 0  # +- CQT bins (1/3 semitone each) with the labels unchanged; 0 = off

    def __post_init__(self):
        if not 0 <= self.bin_shift < BINS_PER_SEMITONE:
            raise Mp3MidiError(f"bin shift must be 0 to {BINS_PER_SEMITONE - 1} bins (under a semitone);"
                               f" got {self.bin_shift!r}")

    def apply(self, features: np.ndarray, rolls: dict[str, np.ndarray], rng: np.random.Generator):
        """features [frames, 264] float32, rolls [frames, 88]; returns augmented copies."""
        features = features + rng.uniform(-self.gain_db, self.gain_db) / FLOOR_DB
        tilt = rng.uniform(-self.tilt_db, self.tilt_db) / FLOOR_DB
        features = features + np.linspace(-tilt / 2, tilt / 2, features.shape[1], dtype=np.float32)
        if self.noise_floor > 0:
            floor = rng.uniform(0, self.noise_floor)
            features = np.maximum(features, floor * rng.random(features.shape, dtype=np.float32))
        shift = int(rng.integers(-self.pitch_shift, self.pitch_shift + 1)) if self.pitch_shift else 0
        if shift:
            features = _roll(features, shift * BINS_PER_SEMITONE)
            rolls = {name: _roll(roll, shift) for name, roll in rolls.items()}
        if self.bin_shift:
            features = shift_bins(features, int(rng.integers(-self.bin_shift, self.bin_shift + 1)))
        return np.clip(features, 0.0, None), rolls


def shift_bins(features: np.ndarray, bins: int) -> np.ndarray:
    """features [frames, 264] moved ``bins`` CQT bins up (positive) or down, zeros shifted in at the edge.

    The sound of every note moves by ``bins`` thirds of a semitone; the labels that go with it stay as they are.
    """
    if abs(bins) >= BINS_PER_SEMITONE:
        raise Mp3MidiError(f"a bin shift moves less than a semitone ({BINS_PER_SEMITONE - 1} bins at most); got {bins}")
    return _roll(features, bins) if bins else features


def _roll(array: np.ndarray, shift: int) -> np.ndarray:
    """Shift along the last axis, filling with zeros (nothing wraps round from the other end of the keyboard)."""
    out = np.zeros_like(array)
    if shift > 0:
        out[:, shift:] = array[:, :-shift]
    else:
        out[:, :shift] = array[:, -shift:]
    return out


class CropDataset(torch.utils.data.Dataset):
    """Random crops of ``crop_frames`` from items, drawn with probability proportional to their length."""

    def __init__(self, items: list[Item], *, crop_frames: int, augment: Augment | None, seed: int,
                 crops_per_epoch: int = 10_000):
        if not items:
            raise Mp3MidiError("no training items: generate a dataset first, or use a larger one")
        self.items, self.crop_frames, self.augment = items, crop_frames, augment
        self.seed, self.crops_per_epoch = seed, crops_per_epoch
        lengths = np.array([item.features.shape[0] for item in items], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def __len__(self) -> int:
        return self.crops_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        item = self.items[rng.choice(len(self.items), p=self.weights)]
        frames = item.features.shape[0]
        start = int(rng.integers(0, max(1, frames - self.crop_frames + 1)))
        window = slice(start, start + self.crop_frames)
        features = item.features[window].astype(np.float32)
        rolls = {name: roll[window] for name, roll in item.rolls.items()}
        if self.augment is not None:
            features, rolls = self.augment.apply(features, rolls, rng)
        pad = self.crop_frames - features.shape[0]
        if pad:
            features = np.pad(features, ((0, pad), (0, 0)))
            rolls = {name: np.pad(roll, ((0, pad), (0, 0))) for name, roll in rolls.items()}
        rolls["onset"] = widen(rolls["onset"])
        batch = {"features": torch.from_numpy(np.ascontiguousarray(features))}
        for name, roll in rolls.items():
            scale = 127.0 if name == "velocity" else 1.0
            batch[name] = torch.from_numpy(roll.astype(np.float32) / scale)
        return batch


def widen(roll: np.ndarray, frames: int = ONSET_TARGET_FRAMES) -> np.ndarray:
    """[frames, 88] -> the same roll with each positive also marked on the following ``frames - 1`` frames."""
    out = roll.copy()
    for lag in range(1, frames):
        out[lag:] = np.maximum(out[lag:], roll[:-lag])
    return out


def reference_notes(item: Item) -> list[Note]:
    """The item's labelled notes inside the piano range (what an evaluation compares against)."""
    return [note for note in item.notes if LOWEST_PITCH <= note.pitch < LOWEST_PITCH + 88]
