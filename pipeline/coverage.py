"""Read-only coverage queries over a dataset in the catalog; the CLI's ``stats`` and the dashboard draw from these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .catalog import connect, validate_name
from .errors import Mp3MidiError

DURATION_EDGES_S = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, float("inf"))
VELOCITY_BIN = 16
STAGES = ("render", "encode", "decode", "features", "labels", "preview")


@dataclass(frozen=True)
class Totals:
    items: int
    done: int
    failed: int
    pending: int
    hours: float
    notes: int
    mp3_mb: float
    mixes: int


def _query(data_dir: str | Path, sql: str, params: list) -> pd.DataFrame:
    with connect(data_dir, read_only=True) as connection:
        return connection.execute(sql, params).df()


def list_datasets(data_dir: str | Path) -> pd.DataFrame:
    """One row per dataset: name, created_at, items, done, failed, hours."""
    return _query(data_dir, """
        SELECT d.name, d.created_at, count(i.item_id) AS items,
               count(*) FILTER (i.status = 'done') AS done, count(*) FILTER (i.status = 'failed') AS failed,
               coalesce(sum(i.duration_s) FILTER (i.status = 'done'), 0) / 3600 AS hours
        FROM datasets d LEFT JOIN items i ON i.dataset = d.name
        GROUP BY d.name, d.created_at ORDER BY d.created_at""", [])


def totals(data_dir: str | Path, name: str) -> Totals:
    frame = _query(data_dir, """
        SELECT count(*), count(*) FILTER (status = 'done'), count(*) FILTER (status = 'failed'),
               count(*) FILTER (status NOT IN ('done', 'failed')),
               coalesce(sum(duration_s) FILTER (status = 'done'), 0) / 3600,
               coalesce(sum(n_notes) FILTER (status = 'done'), 0),
               coalesce(sum(mp3_bytes) FILTER (status = 'done'), 0) / 1e6,
               count(*) FILTER (status = 'done' AND is_mix)
        FROM items WHERE dataset = ?""", [_known(data_dir, name)])
    row = frame.iloc[0].tolist()
    return Totals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]), int(row[5]), float(row[6]),
                  int(row[7]))


def notes_per_pitch_family(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Columns pitch, family, notes: how often each key is played by each instrument family."""
    return _query(data_dir, """
        SELECT n.pitch, n.family, count(*) AS notes FROM item_notes n JOIN items i USING (item_id)
        WHERE i.dataset = ? GROUP BY n.pitch, n.family ORDER BY n.pitch, n.family""", [_known(data_dir, name)])


def hours_per_family(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Columns family, program, hours: audio in which each program plays (a mix counts for each of its programs)."""
    return _query(data_dir, """
        SELECT n.family, n.program, sum(i.duration_s) / 3600 AS hours
        FROM (SELECT DISTINCT item_id, family, program FROM item_notes) n JOIN items i USING (item_id)
        WHERE i.dataset = ? GROUP BY n.family, n.program ORDER BY hours DESC""", [_known(data_dir, name)])


def polyphony_histogram(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Columns polyphony, frames: how many label frames have that many keys sounding."""
    return _query(data_dir, """
        SELECT p.polyphony, sum(p.frames)::BIGINT AS frames FROM item_polyphony p JOIN items i USING (item_id)
        WHERE i.dataset = ? GROUP BY p.polyphony ORDER BY p.polyphony""", [_known(data_dir, name)])


def duration_histogram(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Columns bin (label), notes over DURATION_EDGES_S."""
    edges = DURATION_EDGES_S
    cases = " ".join(f"WHEN n.duration_s < {hi} THEN {index}" for index, hi in enumerate(edges[1:-1]))
    cases += f" ELSE {len(edges) - 2}"
    frame = _query(data_dir, f"""
        SELECT CASE {cases} END AS bin, count(*) AS notes FROM item_notes n JOIN items i USING (item_id)
        WHERE i.dataset = ? GROUP BY bin ORDER BY bin""", [_known(data_dir, name)])
    labels = [f"{lo:g}-{hi:g} s" if hi != float("inf") else f">{lo:g} s" for lo, hi in zip(edges, edges[1:])]
    frame["bin"] = [labels[int(b)] for b in frame["bin"]]
    return frame


def velocity_histogram(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Columns velocity (bin start), notes, in bins of VELOCITY_BIN."""
    return _query(data_dir, f"""
        SELECT (n.velocity // {VELOCITY_BIN}) * {VELOCITY_BIN} AS velocity, count(*) AS notes
        FROM item_notes n JOIN items i USING (item_id) WHERE i.dataset = ? GROUP BY 1 ORDER BY 1""",
                  [_known(data_dir, name)])


def failures(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Columns reason, items: failed items grouped by their reason."""
    return _query(data_dir, """
        SELECT error AS reason, count(*) AS items FROM items WHERE dataset = ? AND status = 'failed'
        GROUP BY error ORDER BY items DESC, reason""", [_known(data_dir, name)])


def stage_seconds(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Columns stage, seconds (total), audio_per_wall: where item-making time goes, summed over done items."""
    sums = ", ".join(f"sum({stage}_s) AS {stage}" for stage in STAGES)
    frame = _query(data_dir, f"SELECT sum(duration_s) AS audio, {sums} FROM items WHERE dataset = ? AND status = 'done'",
                   [_known(data_dir, name)])
    audio = float(frame["audio"].iloc[0] or 0.0)
    rows = [(stage, float(frame[stage].iloc[0] or 0.0)) for stage in STAGES]
    return pd.DataFrame([(s, t, audio / t if t else float("nan")) for s, t in rows],
                        columns=["stage", "seconds", "audio_per_wall"])


def items(data_dir: str | Path, name: str, *, status: str | None = None, limit: int = 1000) -> pd.DataFrame:
    """The dataset's items with their instruments and files, in plan order."""
    return _query(data_dir, """
        SELECT item_id, ordinal, status, error, source_kind, source, programs, families, is_mix, soundfont,
               duration_s, n_notes, audio_path, features_path, preview_path
        FROM items WHERE dataset = ? AND (? IS NULL OR status = ?) ORDER BY ordinal LIMIT ?""",
                  [_known(data_dir, name), status, status, limit])


def _known(data_dir: str | Path, name: str) -> str:
    validate_name(name)
    with connect(data_dir, read_only=True) as connection:
        found = connection.execute("SELECT 1 FROM datasets WHERE name = ?", [name]).fetchone()
    if not found:
        raise Mp3MidiError(f"no dataset named {name!r} in {str(Path(data_dir))!r}")
    return name


def recent_jobs(data_dir: str | Path, *, limit: int = 20) -> pd.DataFrame:
    """The latest generation jobs with their progress: job_id, dataset, status, done, failed, total, audio_s, times."""
    return _query(data_dir, """
        SELECT job_id, dataset, status, done, failed, total, audio_s, workers, cluster, started_at, updated_at,
               finished_at FROM jobs ORDER BY started_at DESC LIMIT ?""", [limit])
