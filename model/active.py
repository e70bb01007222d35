"""The active model: the checkpoint the dashboard transcribes with unless the user picks another.

It is the committed default model until a run's best checkpoint is made active; the choice lives in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.catalog import connect
from pipeline.errors import Mp3MidiError

from .checkpoints import DEFAULT_CHECKPOINT, load_checkpoint
from .runs import list_runs, run_dir

ACTIVE_KEY = "active_model"
DEFAULT_LABEL = "default (committed)"


@dataclass(frozen=True)
class ModelChoice:
    label: str  # "default (committed)" or "run NAME (best, step S, onset F1 0.52)"
    path: Path
    run: str | None  # None for the committed default


def model_choices(data_dir: str | Path) -> list[ModelChoice]:
    """The committed default, then every run whose best checkpoint exists, newest last."""
    choices = [ModelChoice(DEFAULT_LABEL, DEFAULT_CHECKPOINT, None)]
    for run in list_runs(data_dir).itertuples():
        best = run_dir(data_dir, run.name) / "best.pt"
        if best.is_file():
            step = f", step {int(run.best_step)}" if pd.notna(run.best_step) else ""
            score = f", onset F1 {run.best_onset_f1:.3f}" if pd.notna(run.best_onset_f1) else ""
            choices.append(ModelChoice(f"run {run.name} (best{step}{score})", best, run.name))
    return choices


def active_model(data_dir: str | Path) -> ModelChoice:
    """The chosen model, or the committed default when none was chosen or its checkpoint is gone."""
    with connect(data_dir, read_only=True) as connection:
        row = connection.execute("SELECT value FROM settings WHERE key = ?", [ACTIVE_KEY]).fetchone()
    if row is not None:
        for choice in model_choices(data_dir):
            if choice.run == row[0]:
                return choice
    return ModelChoice(DEFAULT_LABEL, DEFAULT_CHECKPOINT, None)


def set_active_model(data_dir: str | Path, run: str | None) -> ModelChoice:
    """Make ``run``'s best checkpoint the active model (None: back to the committed default)."""
    if run is not None:
        matches = [choice for choice in model_choices(data_dir) if choice.run == run]
        if not matches:
            raise Mp3MidiError(f"run {run!r} has no best checkpoint to make active")
        load_checkpoint(matches[0].path)  # refuse a damaged or incompatible file now, not at transcription time
    with connect(data_dir) as connection:
        if run is None:
            connection.execute("DELETE FROM settings WHERE key = ?", [ACTIVE_KEY])
        else:
            connection.execute("INSERT OR REPLACE INTO settings VALUES (?, ?, now())", [ACTIVE_KEY, run])
    return active_model(data_dir)


def describe(choice: ModelChoice) -> dict:
    """What the checkpoint says of itself: step, size, parameters and its validation metrics."""
    from .network import parameter_count
    from .checkpoints import model_from_checkpoint

    payload = load_checkpoint(choice.path)
    metrics = payload.get("metrics", {})
    return {"label": choice.label, "step": payload["step"], "size": payload.get("train_config", {}).get("size"),
            "parameters": parameter_count(model_from_checkpoint(payload)),
            **{key: metrics.get(key) for key in ("onset_f1", "offset_f1", "frame_f1", "velocity_f1")}}
