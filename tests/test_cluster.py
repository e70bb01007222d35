"""Generation on a Dask distributed cluster: a local one on loopback with two worker processes."""

import os
from pathlib import Path

import pytest

from pipeline.catalog import connect
from pipeline.errors import Mp3MidiError
from pipeline.jobs import GenerateOptions, generate


@pytest.fixture(scope="module")
def cluster_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster:
        yield cluster.scheduler_address


def test_items_are_made_on_the_cluster(cluster_address, good_folder: Path, bad_folder: Path, tmp_path: Path):
    data = tmp_path / "data"
    for folder, name in ((good_folder, "good"), (bad_folder, "bad")):
        summary = generate(GenerateOptions(name=name, source=str(folder), data_dir=str(data), clip_seconds=2.5,
                                           cluster=cluster_address))
        assert summary.made_now == summary.done
    with connect(data, read_only=True) as connection:
        counts = dict(connection.execute(
            "SELECT dataset || ':' || status, count(*) FROM items GROUP BY ALL").fetchall())
        workers = connection.execute("SELECT DISTINCT cluster FROM jobs").fetchall()
    assert counts == {"good:done": 3, "bad:done": 1, "bad:failed": 5}
    assert workers == [(cluster_address,)]
    assert len(list((data / "datasets" / "good" / "items").glob("*.mp3"))) == 3


def test_an_unreachable_cluster_is_a_clear_error(good_folder: Path, tmp_path: Path):
    with pytest.raises(Mp3MidiError, match="cannot reach the Dask cluster"):
        generate(GenerateOptions(name="x", source=str(good_folder), data_dir=str(tmp_path), cluster="tcp://127.0.0.1:9"))


def test_a_hung_item_on_the_cluster_times_out_and_its_worker_is_replaced(good_folder: Path, tmp_path: Path,
                                                                         monkeypatch):
    """The item gate (read by the workers, which inherit the environment) gives one pass and holds the other
    items forever, as a hung FluidSynth would; their workers are restarted and the job ends."""
    from distributed import Client, LocalCluster

    from pipeline.item_gate import GATE_VARIABLE, set_gate

    gate = tmp_path / "gate"
    set_gate(gate, 1)
    monkeypatch.setenv(GATE_VARIABLE, str(gate))
    data = tmp_path / "data"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as cluster:
        with Client(cluster.scheduler_address) as client:
            before = set(client.run(os.getpid).values())
        summary = generate(GenerateOptions(name="hung", source=str(good_folder), data_dir=str(data),
                                           clip_seconds=2.0, cluster=cluster.scheduler_address,
                                           item_timeout_s=15.0))  # the passed item's first run imports and loads
        with Client(cluster.scheduler_address) as client:
            client.wait_for_workers(2, timeout=60)
            after = set(client.run(os.getpid).values())
    assert (summary.done, summary.failed) == (1, 2)
    assert summary.failures == {"timed out after 15 s": 2}
    assert len(after) == 2 and after - before, "no worker process was replaced"
