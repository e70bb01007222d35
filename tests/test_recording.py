"""Item results reach the catalog whole, in batches of any mix of made and failed items."""

import json
from pathlib import Path

import pytest

from pipeline.catalog import connect
from pipeline.item import ItemResult
from pipeline.recording import ResultWriter


def _made(item_id: str) -> ItemResult:
    return ItemResult(
        item_id=item_id, status="done", soundfont="/fonts/a.sf2", programs=[0, 40], families=["piano", "strings"],
        is_mix=True, effects={"reverb": 0.3, "chorus": 0.0}, clip_start_s=2.5, duration_s=30.0,
        files={"audio": f"{item_id}.mp3", "features": f"{item_id}.npz", "preview": f"{item_id}.png"},
        mp3_bytes=240_123, timings={"render": 0.1, "encode": 0.08, "decode": 0.01, "features": 0.04,
                                    "labels": 0.02, "preview": 0.005},
        notes=[(60, 0, 90, 0.5, 0.25), (67, 40, 70, 1.0, 2.0)], polyphony=[10, 5, 3])


def _failed(item_id: str) -> ItemResult:
    return ItemResult(item_id=item_id, status="failed", error="not a MIDI file (it starts with b'hello')")


@pytest.mark.parametrize("statuses", [("done",), ("failed",), ("done", "done"), ("failed", "failed"),
                                      ("done", "failed", "done"), ("failed", "done")])
def test_a_batch_is_written_whole(tmp_path: Path, statuses):
    ids = [f"item{index}" for index in range(len(statuses))]
    with connect(tmp_path) as connection:
        connection.execute("INSERT INTO jobs (job_id, dataset, kind, status) VALUES ('job1', 'demo', 'generate', 'running')")
        for item_id in ids:
            connection.execute("INSERT INTO items (item_id, dataset) VALUES (?, 'demo')", [item_id])
    writer = ResultWriter(tmp_path, "job1", "demo", total=len(ids), progress=False)
    for item_id, status in zip(ids, statuses):
        writer.add(_made(item_id) if status == "done" else _failed(item_id))
    writer.close(status="done")

    with connect(tmp_path, read_only=True) as connection:
        rows = connection.execute(
            "SELECT item_id, status, error, soundfont, programs, families, is_mix, effects, clip_start_s, duration_s,"
            " n_notes, audio_path, mp3_bytes, render_s, preview_s, job_id, finished_at IS NOT NULL"
            " FROM items ORDER BY item_id").fetchall()
        notes = connection.execute("SELECT item_id, count(*) FROM item_notes GROUP BY item_id").fetchall()
        job = connection.execute("SELECT done, failed, audio_s, status FROM jobs").fetchone()
    for row, status in zip(rows, statuses):
        item_id = row[0]
        if status == "done":
            assert row[1:] == ("done", None, "/fonts/a.sf2", [0, 40], ["piano", "strings"], True, row[7], 2.5, 30.0, 2,
                               f"{item_id}.mp3", 240_123, 0.1, 0.005, "job1", True)
            assert json.loads(row[7]) == {"reverb": 0.3, "chorus": 0.0}
        else:
            assert row[1:] == ("failed", "not a MIDI file (it starts with b'hello')", None, [], [], False, None, None,
                               None, None, None, None, None, None, "job1", True)
    assert sorted(notes) == [(item_id, 2) for item_id, status in zip(ids, statuses) if status == "done"]
    assert job == (statuses.count("done"), statuses.count("failed"), 30.0 * statuses.count("done"), "done")
