"""Write item results and job progress into the catalog in small batches, from the coordinating process only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from .catalog import connect
from .instruments import family_of
from .item import ItemResult

FLUSH_EVERY_S = 2.0  # each flush opens the catalog, about 0.1 s of the coordinator's CPU
FLUSH_EVERY_ITEMS = 64
_RESULT_COLUMNS = ("status", "error", "soundfont", "programs", "families", "is_mix", "effects", "clip_start_s",
                   "duration_s", "n_notes", "audio_path", "features_path", "preview_path", "mp3_bytes", "performance",
                   "chain", "renderer", "timbre")
_TIMED_STAGES = ("perform", "render", "chain", "encode", "decode", "features", "labels", "preview")


class ResultWriter:
    """Collects ``ItemResult``s and commits them with the job's progress, one transaction per batch."""

    def __init__(self, data_dir: Path, job_id: str, dataset: str, *, total: int, progress: bool):
        self.data_dir, self.job_id, self.dataset = data_dir, job_id, dataset
        self.pending: list[ItemResult] = []
        self.last_flush = -float("inf")  # the first result shows at once; then a flush every FLUSH_EVERY_S
        self.made = 0
        self.audio_s = 0.0
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="item", desc=dataset, dynamic_ncols=True)

    def add(self, result: ItemResult) -> None:
        self.pending.append(result)
        if result.status == "done":
            self.made += 1
            self.audio_s += result.duration_s or 0.0
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=sum(r.status == "failed" for r in self.pending) or None, refresh=False)
        if len(self.pending) >= FLUSH_EVERY_ITEMS or time.monotonic() - self.last_flush > FLUSH_EVERY_S:
            self.flush()

    def flush(self, *, status: str | None = None, message: str | None = None) -> None:
        batch, self.pending = self.pending, []
        with connect(self.data_dir) as connection:
            connection.execute("BEGIN")
            if batch:
                _write_items(connection, self.job_id, batch)
            done, failed = connection.execute(
                "SELECT count(*) FILTER (status = 'done'), count(*) FILTER (status = 'failed')"
                " FROM items WHERE dataset = ?", [self.dataset]).fetchone()
            connection.execute(
                "UPDATE jobs SET done = ?, failed = ?, audio_s = ?, updated_at = current_timestamp,"
                " status = coalesce(?, status), finished_at = CASE WHEN ? IS NULL THEN NULL ELSE current_timestamp END,"
                " message = coalesce(?, message) WHERE job_id = ?",
                [done, failed, self.audio_s, status, status, message, self.job_id])
            connection.execute("COMMIT")
        self.last_flush = time.monotonic()

    def close(self, *, status: str, message: str | None = None) -> None:
        """Write what is pending and the job's final status (with its reason when it failed)."""
        self.flush(status=status, message=message)
        if self.bar is not None:
            self.bar.close()


def _write_items(connection, job_id: str, batch: list[ItemResult]) -> None:
    ids = [result.item_id for result in batch]
    connection.execute("DELETE FROM item_notes WHERE list_contains(?, item_id)", [ids])
    connection.execute("DELETE FROM item_polyphony WHERE list_contains(?, item_id)", [ids])
    results = pd.DataFrame([(
        r.item_id, r.status, r.error, r.soundfont, r.programs, r.families, r.is_mix,
        json.dumps(r.effects) if r.effects else None, r.clip_start_s, r.duration_s,
        len(r.notes) if r.status == "done" else None, r.files.get("audio"), r.files.get("features"),
        r.files.get("preview"), r.mp3_bytes, json.dumps(r.performance) if r.performance else None,
        json.dumps(r.chain) if r.chain else None, r.renderer if r.status == "done" else None,
        json.dumps(r.timbre) if r.timbre else None, *(r.timings.get(stage) for stage in _TIMED_STAGES)) for r in batch],
        columns=["item_id", *_RESULT_COLUMNS, *(f"{stage}_s" for stage in _TIMED_STAGES)])
    # One statement for the batch (a row at a time costs 3-4 ms each); missing numbers arrive as NaN, read as NULL.
    assignments = ", ".join(f"{column} = r.{column}" for column in results.columns[1:])
    connection.execute(
        f"UPDATE items SET {assignments}, job_id = ?, finished_at = current_timestamp"
        " FROM results AS r WHERE items.item_id = r.item_id", [job_id])
    notes = pd.DataFrame(
        [(r.item_id, pitch, program, family_of(program), velocity, start, duration)
         for r in batch if r.status == "done" for pitch, program, velocity, start, duration in r.notes],
        columns=["item_id", "pitch", "program", "family", "velocity", "start_s", "duration_s"])
    polyphony = pd.DataFrame(
        [(r.item_id, level, frames) for r in batch if r.status == "done"
         for level, frames in enumerate(r.polyphony) if frames],
        columns=["item_id", "polyphony", "frames"])
    if len(notes):
        connection.execute("INSERT INTO item_notes SELECT * FROM notes")
    if len(polyphony):
        connection.execute("INSERT INTO item_polyphony SELECT * FROM polyphony")
