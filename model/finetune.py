"""Fine-tune to my sound: a soundfont (and optionally the user's own recordings) -> a dataset -> a fine-tuned model
-> before/after scores -> a verdict on whether to make it active.

``fine_tune`` runs the stages one after the other in its own process (the dashboard launches
``python -m model finetune ...``), each with a time limit, and records the stage, its progress and the final
report in the catalog's ``finetunes`` table, which the Training page polls:

1. ``sound``: the built-in source rendered with the chosen soundfont (dataset NAME).
2. ``reference``: the same pieces rendered with the default soundfont (a dataset shared by fine-tunes of that
   size), to see what the fine-tune does to the sound the model already knew.
3. ``recordings`` (optional): the user's recordings with aligned MIDI made into dataset NAME-recordings.
4. ``train``: a run NAME that starts ``--init-from`` the active model and trains on NAME (and NAME-recordings).
5. ``calibrate`` (with recordings): the run's thresholds chosen again on the user's recordings.
6. ``compare``: the active model ("before") and the run's best checkpoint ("after") scored on the held-out pieces
   of NAME, of the reference set, and on a folder of the user's recordings never trained on when one is given.

A stage that runs past its limit is stopped in good order (what it made is kept; re-running resumes it). The
verdict keeps the fine-tune only when it helps the user's material by at least ``MIN_GAIN`` onset F1 without
costing the reference set more than ``MAX_FORGETTING``; making it active stays the user's click.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from pipeline.background import is_alive, on_this_host_and_dead, process_id, this_process
from pipeline.catalog import connect, validate_name
from pipeline.errors import Mp3MidiError
from pipeline.sigterm import interrupt_main_thread

MIN_GAIN = 0.01  # onset F1 the user's material must gain
MAX_FORGETTING = 0.02  # onset F1 the reference set may lose
STAGES = ("sound", "reference", "recordings", "train", "calibrate", "compare")
FINE_TUNE_LR = 5e-4  # a quarter of a fresh run's peak: the weights start close to where they should end


@dataclass
class FineTuneOptions:
    name: str
    soundfont: str  # a path, or 'default' for the embedded TimGM6mb
    source: str = "builtin"  # or a folder of MIDI files
    pieces: int = 60
    clip_seconds: float = 15.0
    seed: int = 0
    steps: int = 300
    batch_size: int = 8
    lr: float = FINE_TUNE_LR
    init_from: str | None = None  # default: the active model
    recordings: str | None = None  # audio + .mid pairs to train on (and recalibrate the thresholds with)
    judge: str | None = None  # audio + .mid pairs never trained on, scored before and after
    threads: int | None = None
    workers: int = 1
    stage_limit_s: float = 3600.0
    data_dir: str = "data"

    @property
    def reference(self) -> str:
        return f"reference-{self.pieces}x{self.clip_seconds:g}s-{self.seed}".replace(".", "_")

    @property
    def recordings_dataset(self) -> str:
        return f"{self.name}-recordings"


class _StageTimeout(Exception):
    pass


def check_options(options: FineTuneOptions) -> str:
    """Refuse bad settings before anything is made; returns the checkpoint the fine-tune starts from."""
    from .active import active_model
    from .checkpoints import load_checkpoint

    validate_name(options.name, what="fine-tune")
    validate_name(options.recordings_dataset)
    for label, value in (("pieces", options.pieces), ("steps", options.steps), ("batch size", options.batch_size),
                         ("workers", options.workers)):
        if value < 1:
            raise Mp3MidiError(f"{label} must be at least 1; got {value}")
    if not 1.0 <= options.clip_seconds <= 120.0:
        raise Mp3MidiError(f"clip seconds must lie in 1-120; got {options.clip_seconds}")
    if not options.stage_limit_s > 0:
        raise Mp3MidiError(f"the time limit must be positive; got {options.stage_limit_s}")
    if options.source != "builtin" and not Path(options.source).expanduser().is_dir():
        raise Mp3MidiError(f"the MIDI source {options.source!r} is neither 'builtin' nor a folder")
    if options.soundfont != "default" and not Path(options.soundfont).expanduser().is_file():
        raise Mp3MidiError(f"soundfont {options.soundfont!r} does not exist")
    for folder in (options.recordings, options.judge):
        if folder is not None:
            from pipeline.recordings import recording_pairs

            recording_pairs(folder)
    start = options.init_from or str(active_model(options.data_dir).path)
    load_checkpoint(start)
    with connect(options.data_dir, read_only=True) as connection:
        row = connection.execute("SELECT status, pid, host, process_started FROM finetunes WHERE name = ?",
                                 [options.name]).fetchone()
        run = connection.execute("SELECT 1 FROM runs WHERE name = ?", [options.name]).fetchone()
    if row is not None and row[0] == "running" and is_alive(process_id(row[2], row[1], row[3])):
        raise Mp3MidiError(f"fine-tune {options.name!r} is already running (pid {row[1]})")
    if row is None and run is not None:
        raise Mp3MidiError(f"a training run named {options.name!r} exists; choose another name")
    return start


def fine_tune(options: FineTuneOptions) -> dict:
    """Run every stage (see the module docstring); returns the before/after report. Ctrl-C (or SIGTERM
    to the command line) stops it in good order."""
    start = check_options(options)
    data_dir = options.data_dir
    config = {**asdict(options), "init_from": start, "reference": options.reference}
    me = this_process()
    with connect(data_dir) as connection:
        connection.execute(
            "INSERT OR REPLACE INTO finetunes (name, config, status, pid, host, process_started, started_at,"
            " updated_at) VALUES (?, ?, 'running', ?, ?, ?, now(), now())",
            [options.name, json.dumps(config), me.pid, me.host, me.started])
    try:
        report = _stages(options, start)
    except _StageTimeout as exc:
        _finish(data_dir, options.name, "failed", message=str(exc))
        raise Mp3MidiError(str(exc)) from None
    except KeyboardInterrupt:
        _finish(data_dir, options.name, "cancelled", message="stopped")
        raise Mp3MidiError(f"fine-tune {options.name!r} was stopped; run it again to resume") from None
    except Exception as exc:
        _finish(data_dir, options.name, "failed", message=f"{exc}" if isinstance(exc, Mp3MidiError)
                else f"{type(exc).__name__}: {exc}")
        raise
    _finish(data_dir, options.name, "done", report=report)
    return report


def _stages(options: FineTuneOptions, start: str) -> dict:
    from pipeline.jobs import GenerateOptions, generate

    from .evaluate import evaluate_dataset, evaluate_folder
    from .runs import run_dir
    from .thresholds import calibrate
    from .train import TrainOptions, train

    data_dir = options.data_dir
    common = dict(source=options.source, limit=options.pieces, clip_seconds=options.clip_seconds, seed=options.seed,
                  workers=options.workers, data_dir=data_dir)
    with _stage(options, "sound", dataset=options.name):
        _generated(generate(GenerateOptions(name=options.name, soundfonts=(options.soundfont,), **common)))
    with _stage(options, "reference", dataset=options.reference):
        _generated(generate(GenerateOptions(name=options.reference, soundfonts=("default",), **common)))
    datasets = [options.name]
    if options.recordings:
        from pipeline.recordings import import_recordings

        with _stage(options, "recordings", dataset=options.recordings_dataset):
            summary = import_recordings(options.recordings, name=options.recordings_dataset, data_dir=data_dir)
            if not summary.done:
                raise Mp3MidiError(f"none of the recordings could be read; first reason: {next(iter(summary.failures))}")
        datasets.append(options.recordings_dataset)
    with _stage(options, "train", run=options.name):
        train(TrainOptions(datasets=datasets, run=options.name, steps=options.steps, batch_size=options.batch_size,
                           lr=options.lr, size=None, init_from=start, eval_every=max(1, options.steps // 4),
                           threads=options.threads, data_dir=data_dir))
    after = run_dir(data_dir, options.name) / "best.pt"
    if not after.is_file():
        raise Mp3MidiError(f"run {options.name!r} made no checkpoint")
    calibrated = None
    if options.recordings:
        with _stage(options, "calibrate"):
            calibrated = calibrate(after, [options.recordings_dataset], data_dir=data_dir,
                                   splits=("train", "validation", "test"))
    sets = {}
    with _stage(options, "compare") as progress:
        plans = [("your sound (held-out pieces)", lambda checkpoint: evaluate_dataset(
                      checkpoint, [options.name], split="test", data_dir=data_dir)),
                 ("default sound (held-out pieces)", lambda checkpoint: evaluate_dataset(
                      checkpoint, [options.reference], split="test", data_dir=data_dir))]
        if options.judge:
            plans.append(("your recordings", lambda checkpoint: evaluate_folder(checkpoint, options.judge)))
        for index, (label, score) in enumerate(plans):
            progress(f"scoring {label} ({index + 1} of {len(plans)})")
            before_report, after_report = score(start), score(after)
            sets[label] = {"items": len(after_report["items"]), "before": before_report["overall"],
                           "after": after_report["overall"]}
    report = {"before": start, "after": str(after), "sets": sets, "calibrated": calibrated}
    report["verdict"] = verdict(report)
    return report


def verdict(report: dict) -> dict:
    """Keep the fine-tune only when it helps the user's material (their recordings when scored, else the
    held-out pieces of their sound) by MIN_GAIN onset F1 or more, and costs the default-sound set at most
    MAX_FORGETTING. Returns {"keep", "reason", "gain", "forgetting"}."""
    sets = report["sets"]
    mine = sets.get("your recordings") or sets["your sound (held-out pieces)"]
    gain = mine["after"]["onset_f1"] - mine["before"]["onset_f1"]
    reference = sets["default sound (held-out pieces)"]
    forgetting = reference["before"]["onset_f1"] - reference["after"]["onset_f1"]
    if gain < MIN_GAIN:
        reason = f"it does not help your material enough (onset F1 {gain:+.3f}; {MIN_GAIN:.2f} needed)"
    elif forgetting > MAX_FORGETTING:
        reason = (f"it helps your material (onset F1 {gain:+.3f}) but costs the default sound {forgetting:.3f} "
                  f"onset F1 (at most {MAX_FORGETTING:.2f} allowed)")
    else:
        reason = f"it helps your material (onset F1 {gain:+.3f}) and the default sound moves {-forgetting:+.3f}"
    return {"keep": gain >= MIN_GAIN and forgetting <= MAX_FORGETTING, "reason": reason, "gain": gain,
            "forgetting": forgetting}


class _stage:
    """Record a stage's start in the catalog and stop it in good order past its time limit (an interrupt of the
    main thread, which each stage turns into a cancel that keeps what it made)."""

    def __init__(self, options: FineTuneOptions, name: str, *, dataset: str | None = None, run: str | None = None):
        self.options, self.name, self.fired = options, name, threading.Event()
        self.dataset, self.run = dataset, run

    def __enter__(self):
        with connect(self.options.data_dir) as connection:
            connection.execute("UPDATE finetunes SET stage = ?, stage_limit_s = ?, stage_started_at = now(),"
                               " progress = NULL, updated_at = now() WHERE name = ?",
                               [self.name, self.options.stage_limit_s, self.options.name])
        self.timer = threading.Timer(self.options.stage_limit_s, self._expire)
        self.timer.daemon = True
        self.timer.start()
        return self.progress

    def progress(self, text: str) -> None:
        with connect(self.options.data_dir) as connection:
            connection.execute("UPDATE finetunes SET progress = ?, updated_at = now() WHERE name = ?",
                               [text, self.options.name])

    def _expire(self) -> None:
        self.fired.set()
        interrupt_main_thread()

    def __exit__(self, kind, value, traceback):
        self.timer.cancel()
        stopped = kind is not None and issubclass(kind, (KeyboardInterrupt, Mp3MidiError))
        if self.fired.is_set() and (kind is None or stopped):
            raise _StageTimeout(f"stage {self.name!r} ran past its time limit of {self.options.stage_limit_s:.0f} s"
                                " and was stopped (what it made is kept: run the fine-tune again to resume)")
        if kind is None and self._cancelled():  # a stop (SIGTERM, Ctrl-C) the stage took as its own cancel
            raise KeyboardInterrupt
        return False

    def _cancelled(self) -> bool:
        """Whether the stage's job or run ended cancelled rather than done."""
        if self.dataset is not None:
            from pipeline.background import job_progress

            job = job_progress(self.options.data_dir, self.dataset)
            return job is not None and job.status == "cancelled"
        if self.run is not None:
            from .runs import list_runs

            runs = list_runs(self.options.data_dir)
            return bool((runs.loc[runs["name"] == self.run, "status"] == "cancelled").any())
        return False


def _generated(summary) -> None:
    if not summary.done:
        raise Mp3MidiError(f"dataset {summary.dataset!r} has no finished items"
                           + (f"; first failure: {next(iter(summary.failures))}" if summary.failures else ""))



def _finish(data_dir, name: str, status: str, *, report: dict | None = None, message: str | None = None) -> None:
    with connect(data_dir) as connection:
        connection.execute("UPDATE finetunes SET status = ?, report = ?, message = ?, finished_at = now(),"
                           " updated_at = now() WHERE name = ?",
                           [status, json.dumps(report) if report is not None else None, message, name])


def list_finetunes(data_dir) -> pd.DataFrame:
    """Every fine-tune, newest first; one marked running whose process is gone reads 'interrupted'."""
    with connect(data_dir, read_only=True) as connection:
        frame = connection.execute(
            "SELECT *, epoch(now()::TIMESTAMP - stage_started_at) AS stage_elapsed_s FROM finetunes"
            " ORDER BY started_at DESC").df()
    frame.loc[on_this_host_and_dead(frame), "status"] = "interrupted"
    return frame


def finetune_arguments(options: FineTuneOptions) -> list[str]:
    """The ``python -m model finetune`` arguments that reproduce ``options``."""
    arguments = ["finetune", "--name", options.name, "--soundfont", options.soundfont, "--source", options.source,
                 "--pieces",
                 str(options.pieces), "--clip-seconds", repr(options.clip_seconds), "--seed", str(options.seed),
                 "--steps", str(options.steps), "--batch-size", str(options.batch_size), "--lr", repr(options.lr),
                 "--workers", str(options.workers), "--stage-limit", repr(options.stage_limit_s),
                 "--data-dir", str(Path(options.data_dir).resolve())]
    for flag, value in (("--init-from", options.init_from), ("--recordings", options.recordings),
                        ("--judge", options.judge), ("--threads", options.threads)):
        if value:
            arguments += [flag, str(value)]
    return arguments


def resolved_options(options: FineTuneOptions) -> FineTuneOptions:
    """``options`` with every path made absolute (``~`` expanded, the caller's working folder applied), for a child
    process that starts in another folder and must read the same files."""
    def absolute(path: str | None, *, keep: str) -> str | None:
        return path if path in (None, keep) else str(Path(path).expanduser().resolve())

    return replace(options, soundfont=absolute(options.soundfont, keep="default"),
                   source=absolute(options.source, keep="builtin"), recordings=absolute(options.recordings, keep=""),
                   judge=absolute(options.judge, keep=""), init_from=absolute(options.init_from, keep="default"),
                   data_dir=str(Path(options.data_dir).expanduser().resolve()))


def start_fine_tune(options: FineTuneOptions):
    """Check ``options`` and launch the fine-tune in its own process; returns the launcher's record. The child gets
    the paths resolved here (``resolved_options``), never a form's text as typed."""
    from pipeline.background import launch, log_path

    options = resolved_options(options)
    check_options(options)
    return launch("model", finetune_arguments(options), log=log_path(options.data_dir, "finetune", options.name))


def stop_fine_tune(data_dir, name: str) -> bool:
    from pipeline.background import stop

    frame = list_finetunes(data_dir)
    row = frame[(frame["name"] == name) & (frame["status"] == "running")]
    return not row.empty and stop(process_id(row["host"].iloc[0], row["pid"].iloc[0],
                                             row["process_started"].iloc[0]))


@dataclass(frozen=True)
class FineTuneStatus:
    name: str
    status: str  # running, done, failed, cancelled, interrupted (its process died)
    stage: str | None
    stage_elapsed_s: float
    stage_limit_s: float | None
    detail: str  # what the current stage is doing, in words
    fraction: float | None  # of the current stage, when known
    report: dict | None
    message: str | None
    log: str


def finetune_status(data_dir, name: str) -> FineTuneStatus | None:
    """Where fine-tune ``name`` stands: its stage and that stage's own progress (the dataset's job, the run's
    steps, the scoring), its report when done. None when there is no such fine-tune."""
    from pipeline.background import log_path, log_tail
    from pipeline.background import job_progress

    from .runs import list_runs

    frame = list_finetunes(data_dir)
    rows = frame[frame["name"] == name]
    if rows.empty:
        return None
    row = rows.iloc[0]
    config = json.loads(row["config"])
    stage = row["stage"] if pd.notna(row["stage"]) else None
    detail, fraction = "starting", None
    if stage in ("sound", "reference", "recordings"):
        dataset = {"sound": name, "reference": config["reference"], "recordings": f"{name}-recordings"}[stage]
        job = job_progress(data_dir, dataset)
        if job is not None:
            detail = f"dataset {dataset}: {job.status}, {job.done} of {job.total or '?'} items made"
            fraction = job.fraction
    elif stage == "train":
        runs = list_runs(data_dir)
        run = runs[runs["name"] == name]
        if not run.empty:
            step, steps = int(run["step"].iloc[0]), int(run["steps"].iloc[0])
            detail, fraction = f"run {name}: step {step} of {steps}", step / steps
    elif stage is not None:
        detail = row["progress"] if pd.notna(row["progress"]) else stage
    report = json.loads(row["report"]) if pd.notna(row["report"]) else None
    return FineTuneStatus(
        name, row["status"], stage, float(row["stage_elapsed_s"]) if pd.notna(row["stage_elapsed_s"]) else 0.0,
        float(row["stage_limit_s"]) if pd.notna(row["stage_limit_s"]) else None, detail, fraction, report,
        row["message"] if pd.notna(row["message"]) else None, log_tail(log_path(data_dir, "finetune", name)))


def report_table(report: dict) -> pd.DataFrame:
    """One row per scored set: items, onset / note-with-offset / frame F1 before and after."""
    rows = []
    for label, scores in report["sets"].items():
        row = {"set": label, "items": scores["items"]}
        for metric, title in (("onset_f1", "onset F1"), ("offset_f1", "note-with-offset F1"),
                              ("frame_f1", "frame F1")):
            row[f"{title} before"] = scores["before"][metric]
            row[f"{title} after"] = scores["after"][metric]
        rows.append(row)
    return pd.DataFrame(rows)
