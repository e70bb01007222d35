"""Training runs and their metrics in the catalog, written by the training process with short connections."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.background import on_this_host_and_dead, this_process
from pipeline.catalog import connect, validate_name

METRIC_COLUMNS = ("train_loss", "validation_loss", "onset_f1", "offset_f1", "frame_f1", "velocity_f1",
                  "learning_rate", "examples_per_s")


def run_dir(data_dir: str | Path, name: str) -> Path:
    return Path(data_dir).resolve() / "runs" / validate_name(name, what="run")


def start_run(data_dir, name: str, *, datasets: list[str], config: dict, device: str, parameters: int,
              steps: int) -> None:
    me = this_process()
    with connect(data_dir) as connection:
        connection.execute(
            "INSERT INTO runs (name, datasets, config, status, device, parameters, pid, host, process_started, steps,"
            " checkpoint_dir, updated_at) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, now())"
            " ON CONFLICT (name) DO UPDATE SET status = 'running', config = excluded.config, device = excluded.device, pid = excluded.pid,"
            " host = excluded.host, process_started = excluded.process_started, steps = excluded.steps,"
            " updated_at = now(), finished_at = NULL",
            [name, datasets, json.dumps(config), device, parameters, me.pid, me.host, me.started, steps,
             str(run_dir(data_dir, name))])


def stored_config(data_dir, name: str) -> dict | None:
    with connect(data_dir, read_only=True) as connection:
        row = connection.execute("SELECT config FROM runs WHERE name = ?", [name]).fetchone()
    return json.loads(row[0]) if row else None


def record_metrics(data_dir, name: str, step: int, metrics: dict, *, best: tuple[int, float] | None) -> None:
    values = [metrics.get(column) for column in METRIC_COLUMNS]
    with connect(data_dir) as connection:
        connection.execute("BEGIN")
        connection.execute(
            f"INSERT OR REPLACE INTO run_metrics (run, step, {', '.join(METRIC_COLUMNS)})"
            f" VALUES (?, ?, {', '.join('?' * len(METRIC_COLUMNS))})", [name, step, *values])
        connection.execute("UPDATE runs SET step = ?, updated_at = now() WHERE name = ?", [step, name])
        if best is not None:
            connection.execute("UPDATE runs SET best_step = ?, best_onset_f1 = ? WHERE name = ?", [*best, name])
        connection.execute("COMMIT")


def finish_run(data_dir, name: str, *, status: str, message: str | None = None) -> None:
    with connect(data_dir) as connection:
        connection.execute("UPDATE runs SET status = ?, message = ?, finished_at = now(),"
                           " updated_at = now() WHERE name = ?", [status, message, name])


def list_runs(data_dir) -> pd.DataFrame:
    """Every run, oldest first; a run marked running whose process (host, pid and start time) is gone reads
    'interrupted'."""
    with connect(data_dir, read_only=True) as connection:
        frame = connection.execute("SELECT * FROM runs ORDER BY started_at").df()
    frame.loc[on_this_host_and_dead(frame), "status"] = "interrupted"
    return frame


def final_metrics(data_dir, names: list[str]) -> pd.DataFrame:
    """The last evaluation of each run: one row per run with every metric column."""
    with connect(data_dir, read_only=True) as connection:
        return connection.execute(
            "SELECT * FROM run_metrics WHERE list_contains(?, run)"
            " QUALIFY row_number() OVER (PARTITION BY run ORDER BY step DESC) = 1 ORDER BY run", [names]).df()


def config_differences(data_dir, names: list[str]) -> pd.DataFrame:
    """Settings that differ between the runs: one row per setting, one column per run (datasets included)."""
    runs = list_runs(data_dir).set_index("name")
    configs = {name: {"datasets": ", ".join(runs.at[name, "datasets"]), "device": runs.at[name, "device"],
                      "steps": int(runs.at[name, "steps"]), **json.loads(runs.at[name, "config"])}
               for name in names if name in runs.index}
    keys = sorted({key for config in configs.values() for key in config})
    rows = {key: [str(configs[name].get(key, "–")) for name in configs] for key in keys}
    differing = {key: values for key, values in rows.items() if len(set(values)) > 1}
    return pd.DataFrame.from_dict(differing, orient="index", columns=list(configs)).rename_axis("setting").reset_index()


def run_metrics(data_dir, names: list[str]) -> pd.DataFrame:
    with connect(data_dir, read_only=True) as connection:
        return connection.execute("SELECT * FROM run_metrics WHERE list_contains(?, run) ORDER BY run, step",
                                  [names]).df()
