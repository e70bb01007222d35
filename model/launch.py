"""Start and stop training runs in their own process (the dashboard's Training page), through the catalog.

``start_training`` checks everything a run needs before launching ``python -m model train`` detached, so a mistake
shows at once instead of in a log; the run then records itself and its metrics in the catalog as it goes.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.background import Launched, launch, log_path, stop
from pipeline.catalog import connect, validate_name
from pipeline.errors import Mp3MidiError

from .runs import list_runs
from .train import TrainOptions, check_options, init_path


def training_arguments(options: TrainOptions) -> list[str]:
    """The ``python -m model train`` arguments that reproduce ``options``."""
    arguments = ["train", "--dataset", *options.datasets, "--run", options.run, "--steps", str(options.steps),
                 "--batch-size", str(options.batch_size), "--lr", repr(options.lr),
                 "--seed", str(options.seed), "--device", options.device, "--eval-every", str(options.eval_every),
                 "--eval-items", str(options.eval_items), "--data-dir", str(Path(options.data_dir).resolve())]
    if options.size:
        arguments += ["--size", options.size]
    if options.init_from:
        arguments += ["--init-from", str(init_path(options.init_from))]
    if options.threads:
        arguments += ["--threads", str(options.threads)]
    return arguments


def start_training(options: TrainOptions) -> Launched:
    """Check ``options`` and the datasets, then launch the run; refuses while a run of that name is running."""
    check_options(options)
    _check_datasets(options.data_dir, options.datasets)
    runs = list_runs(options.data_dir)
    running = runs[(runs["name"] == options.run) & (runs["status"] == "running")]
    if not running.empty:
        raise Mp3MidiError(f"run {options.run!r} is already running (pid {int(running['pid'].iloc[0])})")
    return launch("model", training_arguments(options), log=log_path(options.data_dir, "train", options.run))


def stop_training(data_dir: str | Path, run: str) -> bool:
    """Ask a running run to stop; it saves its latest state first. False when it is not running."""
    runs = list_runs(data_dir)
    row = runs[(runs["name"] == validate_name(run, what="run")) & (runs["status"] == "running")]
    return not row.empty and stop(int(row["pid"].iloc[0]))


def _check_datasets(data_dir: str | Path, datasets: list[str]) -> None:
    with connect(data_dir, read_only=True) as connection:
        done = dict(connection.execute(
            "SELECT d.name, count(i.item_id) FILTER (i.status = 'done') FROM datasets d"
            " LEFT JOIN items i ON i.dataset = d.name GROUP BY d.name").fetchall())
    for name in datasets:
        if validate_name(name) not in done:
            raise Mp3MidiError(f"no dataset named {name!r}")
        if not done[name]:
            raise Mp3MidiError(f"dataset {name!r} has no finished items to train on yet")
