"""Generation on a Dask distributed cluster: a local one on loopback with two worker processes."""

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
