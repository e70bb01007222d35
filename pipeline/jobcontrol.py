"""Start, watch and stop generation jobs from another process (the dashboard), through the catalog.

``start_generation`` validates the options first, so a mistake is reported at once rather than in a log, then
launches ``python -m pipeline generate`` detached. ``job_progress`` reads the dataset's latest job back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .background import Launched, is_alive, launch, log_path, log_tail, stop
from .catalog import connect
from .errors import Mp3MidiError
from .jobs import GenerateOptions, check_options, resolved_options

ACTIVE = ("planning", "running")


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    dataset: str
    status: str  # planning, running, done, cancelled, failed, interrupted (its process died)
    done: int
    failed: int
    total: int | None
    audio_s: float  # audio made by this job
    elapsed_s: float  # since the job started, planning included
    making_s: float  # since it began making items
    items_per_s: float  # items made by this job per second
    eta_s: float | None
    pid: int | None
    message: str | None
    log: str

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def fraction(self) -> float:
        return (self.done + self.failed) / self.total if self.total else 0.0

    @property
    def speed(self) -> float:
        """Audio seconds made per wall second."""
        return self.audio_s / self.making_s if self.making_s > 0 else 0.0


def generation_arguments(options: GenerateOptions) -> list[str]:
    """The ``python -m pipeline generate`` arguments that reproduce ``options``."""
    arguments = ["generate", "--name", options.name, "--source", options.source, "--workers", str(options.workers),
                 "--seed", str(options.seed), "--mix-probability", str(options.mix_probability),
                 "--bitrate", options.bitrate, "--clip-seconds", str(options.clip_seconds or 0),
                 "--data-dir", str(Path(options.data_dir).resolve())]
    if options.soundfonts:
        arguments += ["--soundfont", *options.soundfonts]
    if options.families:
        arguments += ["--families", *options.families]
    if options.limit is not None:
        arguments += ["--limit", str(options.limit)]
    if options.render_drums:
        arguments.append("--render-drums")
    if options.performance_probability:
        arguments += ["--performance-probability", str(options.performance_probability)]
    if options.chain_probability:
        arguments += ["--chain-probability", str(options.chain_probability)]
    if options.synth_probability:
        arguments += ["--synth-probability", str(options.synth_probability)]
    if options.voice_probability:
        arguments += ["--voice-probability", str(options.voice_probability)]
    if options.cluster:
        arguments += ["--cluster", options.cluster]
    return arguments


def start_generation(options: GenerateOptions) -> Launched:
    """Check ``options`` and launch the job in its own process; refuses while the dataset has a live job. The
    child gets the paths resolved here (``resolved_options``), never the form's text as typed."""
    options = resolved_options(options)
    check_options(options)
    current = job_progress(options.data_dir, options.name)
    if current is not None and current.active:
        raise Mp3MidiError(f"dataset {options.name!r} already has a job running (pid {current.pid})")
    return launch("pipeline", generation_arguments(options), log=log_path(options.data_dir, "generate", options.name))


def resume_options(data_dir: str | Path, dataset: str, *, workers: int) -> GenerateOptions:
    """Options that continue ``dataset`` exactly as planned: its stored settings, limited to its planned items."""
    with connect(data_dir, read_only=True) as connection:
        row = connection.execute("SELECT d.config, count(i.item_id) FROM datasets d LEFT JOIN items i"
                                 " ON i.dataset = d.name WHERE d.name = ? GROUP BY d.config", [dataset]).fetchone()
    if row is None:
        raise Mp3MidiError(f"no dataset named {dataset!r}")
    config, planned = json.loads(row[0]), row[1]
    return GenerateOptions(
        name=dataset, source=config["source"], soundfonts=tuple(config["soundfonts"]),
        families=tuple(config["families"]), limit=planned or None, clip_seconds=config["clip_seconds"],
        workers=workers, seed=config["seed"], data_dir=str(data_dir), mix_probability=config["mix_probability"],
        render_drums=config["render_drums"], bitrate=config["bitrate"],
        performance_probability=config.get("performance_probability", 0.0),
        chain_probability=config.get("chain_probability", 0.0),
        synth_probability=config.get("synth_probability", 0.0), voice_probability=config.get("voice_probability", 0.0))


def cancel_generation(data_dir: str | Path, dataset: str) -> bool:
    """Stop the dataset's running job; items made so far stay. False when none is running."""
    current = job_progress(data_dir, dataset)
    return current is not None and current.active and stop(current.pid)


def job_progress(data_dir: str | Path, dataset: str) -> JobProgress | None:
    """The dataset's latest job, or None when it never had one. A job whose process is gone reads 'interrupted'."""
    with connect(data_dir, read_only=True) as connection:
        frame = connection.execute(
            "SELECT job_id, status, pid, done, failed, total, audio_s, message,"
            " epoch(coalesce(finished_at, now()::TIMESTAMP) - started_at) AS elapsed_s,"
            " epoch(coalesce(finished_at, now()::TIMESTAMP) - coalesce(running_at, started_at)) AS making_s,"
            " (SELECT count(*) FROM items i WHERE i.job_id = j.job_id AND i.status = 'done') AS made"
            " FROM jobs j WHERE dataset = ? ORDER BY started_at DESC LIMIT 1", [dataset]).df()
    if frame.empty:
        return None
    row = frame.iloc[0]
    status = row.status
    if status in ACTIVE and not is_alive(int(row.pid)):
        status = "interrupted"
    elapsed = max(float(row.elapsed_s), 0.0)
    total = None if pd.isna(row.total) else int(row.total)
    done, failed = int(row.done), int(row.failed)
    making = max(float(row.making_s), 0.0) if pd.notna(row.making_s) else 0.0
    rate = int(row.made) / making if making > 0 else 0.0
    remaining = total - done - failed if total is not None else None
    eta = remaining / rate if status == "running" and rate > 0 and remaining is not None else None
    return JobProgress(row.job_id, dataset, status, done, failed, total, float(row.audio_s or 0.0), elapsed, making,
                       rate, eta, int(row.pid), None if pd.isna(row.message) else row.message,
                       generation_log(data_dir, dataset))


def generation_log(data_dir: str | Path, dataset: str) -> str:
    """The end of what the dataset's job processes printed ('' when none was launched from here)."""
    return log_tail(log_path(data_dir, "generate", dataset))
