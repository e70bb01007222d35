"""Read-only coverage queries over a dataset in the catalog; the CLI's ``stats`` and the dashboard draw from these."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .background import ended_status, on_this_host_and_dead
from .catalog import connect, validate_name
from .constants import FRAMES_PER_SECOND, HIGHEST_PITCH, LOWEST_PITCH
from .errors import Mp3MidiError
from .instruments import FAMILIES
from .jobs import dataset_dir
from .preview import pool_step

DURATION_EDGES_S = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, float("inf"))
VELOCITY_BIN = 16
STAGES = ("perform", "render", "chain", "encode", "decode", "features", "labels", "preview")


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


def expression_coverage(data_dir: str | Path, name: str) -> pd.DataFrame:
    """What performances and recording chains did over the done items: one row per gesture or chain setting.

    Columns: stage ('performance' or 'chain'), what (e.g. 'vibrato', 'pedal', 'room', 'noise: pink',
    'bitrate: 64k'), items (done items that have it), share (of all done items), count (notes, presses or parts
    for performance gestures; items for chain settings).
    """
    frame = _query(data_dir, "SELECT performance, chain FROM items WHERE dataset = ? AND status = 'done'",
                   [_known(data_dir, name)])
    done = len(frame)
    rows: dict[tuple[str, str], list[int]] = {}

    def add(stage: str, what: str, count: int) -> None:
        entry = rows.setdefault((stage, what), [0, 0])
        entry[0] += 1
        entry[1] += count

    for performance, chain in zip(frame["performance"], frame["chain"]):
        if isinstance(performance, str):
            add("performance", "performed", 1)
            for gesture, count in json.loads(performance).get("counts", {}).items():
                add("performance", gesture, int(count))
        if isinstance(chain, str):
            settings = json.loads(chain)
            add("chain", "chain", 1)
            for present, what in ((settings.get("room_size_m") is not None, "room"),
                                  (settings.get("compressor_ratio", 1.0) > 1.0, "compressor"),
                                  (bool(settings.get("eq")), "EQ bands"), (bool(settings.get("drums")), "drums")):
                if present:
                    add("chain", what, 1)
            if settings.get("noise"):
                add("chain", f"noise: {settings['noise']}", 1)
            add("chain", f"microphone: {settings.get('microphone')}", 1)
            add("chain", f"bitrate: {settings.get('bitrate')}", 1)
    table = pd.DataFrame([(stage, what, items, items / done if done else 0.0, count)
                          for (stage, what), (items, count) in rows.items()],
                         columns=["stage", "what", "items", "share", "count"])
    return table.sort_values(["stage", "items", "what"], ascending=[False, False, True], ignore_index=True)


def renderer_coverage(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Done items and hours by renderer and what it drew: columns renderer ('fluidsynth', 'synth', 'voice'),
    kind (the soundfont's file name; the synth's models, e.g. 'fm + plucked'; the singer's voice), items, hours.
    Items made before renderers were recorded count as FluidSynth's."""
    frame = _query(data_dir, "SELECT coalesce(renderer, 'fluidsynth') AS renderer, soundfont, timbre, duration_s"
                             " FROM items WHERE dataset = ? AND status = 'done'", [_known(data_dir, name)])
    kinds = []
    for renderer, soundfont, timbre in zip(frame["renderer"], frame["soundfont"], frame["timbre"]):
        drawn = json.loads(timbre) if isinstance(timbre, str) else {}
        if renderer == "synth":
            kinds.append(" + ".join(sorted({part["model"] for part in drawn.get("timbres", [])})))
        elif renderer == "voice":
            kinds.append(drawn.get("singer", {}).get("voice", "voice"))
        else:
            kinds.append(Path(str(soundfont)).name)
    frame["kind"] = kinds
    table = frame.groupby(["renderer", "kind"], as_index=False).agg(items=("duration_s", "size"),
                                                                    hours=("duration_s", "sum"))
    table["hours"] /= 3600.0
    return table.sort_values(["renderer", "items"], ascending=[True, False], ignore_index=True)


def pitch_family_matrix(data_dir: str | Path, name: str) -> pd.DataFrame:
    """Notes per instrument family and key: [families, N_KEYS], zeros included, so missing keys show as gaps.

    Rows are the families that play at least one note, in General MIDI order; columns are the MIDI pitches
    LOWEST_PITCH..HIGHEST_PITCH. Notes outside the 88 keys (the labels leave them out too) are not counted.
    """
    counts = _query(data_dir, """
        SELECT n.family, n.pitch, count(*) AS notes FROM item_notes n JOIN items i USING (item_id)
        WHERE i.dataset = ? AND n.pitch BETWEEN ? AND ? GROUP BY n.family, n.pitch""",
                    [_known(data_dir, name), LOWEST_PITCH, HIGHEST_PITCH])
    present = set(counts["family"])
    families = [family for family in FAMILIES if family in present] + sorted(present - set(FAMILIES))
    keys = list(range(LOWEST_PITCH, HIGHEST_PITCH + 1))
    matrix = np.zeros((len(families), len(keys)), dtype=np.int64)
    rows = [families.index(family) for family in counts["family"]]
    matrix[rows, (counts["pitch"] - LOWEST_PITCH).to_numpy(dtype=int)] = counts["notes"].to_numpy()
    return pd.DataFrame(matrix, index=pd.Index(families, name="family"), columns=pd.Index(keys, name="pitch"))


def keys_without_notes(matrix: pd.DataFrame) -> list[int]:
    """The MIDI pitches whose column of a ``pitch_family_matrix`` holds no note at all."""
    return [int(pitch) for pitch, notes in matrix.sum(axis=0).items() if notes == 0]


def done_items(data_dir: str | Path, name: str, *, family: str | None = None, contains: str | None = None,
               limit: int = 500) -> pd.DataFrame:
    """Finished items to browse, in plan order, at most ``limit``: item_id, ordinal, source_kind, source, programs,
    families, is_mix, duration_s, n_notes. ``family`` keeps items with that family; ``contains`` keeps items whose
    source holds that text (any case)."""
    if family is not None and family not in FAMILIES:
        raise Mp3MidiError(f"unknown instrument family {family!r}; choose from {', '.join(FAMILIES)}")
    return _query(data_dir, """
        SELECT item_id, ordinal, source_kind, source, programs, families, is_mix, duration_s, n_notes
        FROM items WHERE dataset = ? AND status = 'done' AND (? IS NULL OR list_contains(families, ?))
              AND (? IS NULL OR contains(lower(source), lower(?)))
        ORDER BY ordinal LIMIT ?""", [_known(data_dir, name), family, family, contains, contains, limit])


@dataclass(frozen=True)
class ItemView:
    """One finished item as the item browser shows it. Its paths are checked to lie inside the dataset's folder.

    ``notes`` has columns start_s, end_s, pitch, velocity, program, family, one row per labelled note.
    ``preview_span_s`` is how many seconds the full width of the preview PNG covers (its last column may hold
    padding past the end of the audio).
    """

    item_id: str
    dataset: str
    ordinal: int
    source_kind: str
    source: str
    soundfont: str
    programs: tuple[int, ...]
    families: tuple[str, ...]
    is_mix: bool
    duration_s: float
    n_notes: int
    audio_path: Path
    preview_path: Path
    preview_span_s: float
    notes: pd.DataFrame = field(compare=False, repr=False)
    performance: dict | None = None  # what the item's performance did (None: played as written)
    chain: dict | None = None  # its recording chain's settings (None: none)


def item_view(data_dir: str | Path, name: str, item_id: str) -> ItemView:
    """The finished item ``item_id`` of dataset ``name`` with its notes and files."""
    with connect(data_dir, read_only=True) as connection:
        row = connection.execute("""
            SELECT ordinal, source_kind, source, soundfont, programs, families, is_mix, duration_s, n_notes,
                   audio_path, features_path, preview_path, performance, chain
            FROM items WHERE dataset = ? AND item_id = ? AND status = 'done'""",
                                 [_known(data_dir, name), item_id]).fetchone()
        if row is None:
            raise Mp3MidiError(f"dataset {name!r} has no finished item {item_id!r}")
        notes = connection.execute("""
            SELECT start_s, start_s + duration_s AS end_s, pitch, velocity, program, family FROM item_notes
            WHERE item_id = ? ORDER BY start_s, pitch""", [item_id]).df()
    ordinal, source_kind, source, soundfont, programs, families, is_mix, duration_s, n_notes = row[:9]
    audio, features, preview = (_item_file(data_dir, name, item_id, stored) for stored in row[9:12])
    performance, chain = (json.loads(stored) if stored else None for stored in row[12:])
    with np.load(features) as stored:
        frames = int(stored["frame"].shape[0])
    step = pool_step(frames)
    columns = -(-frames // step)
    return ItemView(item_id, name, int(ordinal), source_kind, source, soundfont, tuple(programs or ()),
                    tuple(families or ()), bool(is_mix), float(duration_s), int(n_notes), audio, preview,
                    columns * step / FRAMES_PER_SECOND, notes, performance, chain)


def _item_file(data_dir: str | Path, name: str, item_id: str, stored: str | None) -> Path:
    """A file the catalog names for an item, refused unless it is an existing file inside the items folder."""
    items_dir = dataset_dir(data_dir, name) / "items"
    path = (items_dir / (stored or "")).resolve()
    if not stored or not path.is_relative_to(items_dir):
        raise Mp3MidiError(f"item {item_id!r} names the file {stored!r}, which is not inside {str(items_dir)!r}")
    if not path.is_file():
        raise Mp3MidiError(f"item {item_id!r} is missing its file {str(path)!r}; run generate for dataset {name!r}"
                           " again to remake it")
    return path


def _known(data_dir: str | Path, name: str) -> str:
    validate_name(name)
    with connect(data_dir, read_only=True) as connection:
        found = connection.execute("SELECT 1 FROM datasets WHERE name = ?", [name]).fetchone()
    if not found:
        raise Mp3MidiError(f"no dataset named {name!r} in {str(Path(data_dir))!r}")
    return name


def recent_jobs(data_dir: str | Path, *, limit: int = 20) -> pd.DataFrame:
    """The latest generation jobs with their progress: job_id, dataset, status, done, failed, total, audio_s, times.

    A job still marked planning/running whose process on this host is gone (host, pid and start time) reads
    'interrupted', or 'failed' when it left its reason in the dataset's lock file.
    """
    jobs = _query(data_dir, """
        SELECT job_id, dataset, status, done, failed, total, audio_s, workers, cluster, pid, host, process_started,
               started_at, updated_at, finished_at FROM jobs ORDER BY started_at DESC LIMIT ?""", [limit])
    for index in jobs.index[on_this_host_and_dead(jobs)]:
        jobs.loc[index, "status"] = ended_status(data_dir, jobs.at[index, "dataset"], jobs.at[index, "job_id"])[0]
    return jobs.drop(columns="process_started")
