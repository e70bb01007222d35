"""The training loop: random crops, AdamW with warm-up and cosine decay, evaluation into the catalog, checkpoints.

Every ``eval_every`` steps the run is scored on validation items with mir_eval (decoded notes, not just losses),
the metrics go into DuckDB, and ``latest.pt`` (and ``best.pt`` when onset F1 improves) are written. Re-running the
same command after a crash continues from ``latest.pt``; batches are a pure function of (seed, step), so a resumed
run sees the same data it would have seen.

What a run shows is what its checkpoint does:

* Validation items are a seeded random sample (``eval_items``) over every dataset of the run, never training
  items: a run whose datasets hold no validation piece is refused before it starts.
* Each evaluation chooses the decoding thresholds on those items, scores the notes decoded at exactly those
  thresholds, and the checkpoint written with the scores carries the same thresholds (what transcription uses).
* The learning-rate schedule spans ``steps``: continuing a run with another ``--steps`` is refused (it would bend
  the schedule); ``--init-from`` its checkpoint starts a new run with a schedule of its own.
* ``init_from`` starts a new run from a checkpoint's weights: its network (size), features and thresholds come
  along, and it is scored at step 0 with its own thresholds before the first step (the "before" of a fine-tune).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import Mp3MidiError

from . import runs
from .checkpoints import DEFAULT_CHECKPOINT, checkpoint_thresholds, load_checkpoint, model_from_checkpoint, save_checkpoint
from .data import Augment, CropDataset, check_validation_split, load_items, reference_notes
from .decoding import decode
from .inference import activations
from .metrics import mean_scores, score_notes
from .network import ModelConfig, OnsetLoss, Transcriber, config_for, losses, parameter_count
from .thresholds import DEFAULT_RULES, choose_thresholds

WARMUP_STEPS = 200
FINAL_LR_FRACTION = 0.1
CLIP_NORM = 3.0
VALIDATION_CROPS = 32
OPTIONAL_IDENTITY = ("bin_shift", "onset_loss")  # named in a run's identity only when not the default
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # recorded_path() names files inside it relative to it


@dataclass
class TrainOptions:
    datasets: list[str]
    run: str
    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-3
    size: str | None = "small"  # None with init_from: the checkpoint's network, whatever its size
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    data_dir: str = "data"
    crop_frames: int = 320
    eval_every: int = 250
    eval_items: int = 24
    augment: bool = True
    bin_shift: int = 0  # training-time shift of the features by up to this many CQT bins, labels unchanged
    progress: bool = False
    threads: int | None = None  # torch CPU threads: the command line sets them for its process (model.__main__)
    init_from: str | None = None  # a checkpoint whose weights the run starts from ('default': the committed one)
    onset_loss: OnsetLoss = field(default_factory=OnsetLoss)  # how the onset head is taught

    def identity(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        identity = {key: getattr(self, key) for key in ("datasets", "batch_size", "lr", "size", "seed", "crop_frames",
                                                        "augment")}
        if self.bin_shift:  # named only when used, so runs from before the option still resume
            identity["bin_shift"] = self.bin_shift
        if self.init_from:
            identity["init_from"] = recorded_path(init_path(self.init_from))
        if self.onset_loss != OnsetLoss():  # named only when changed, as bin_shift
            identity["onset_loss"] = asdict(self.onset_loss)
        return identity


def init_path(init_from: str) -> Path:
    """The checkpoint file an ``--init-from`` value names ('default': the committed default model)."""
    return DEFAULT_CHECKPOINT if init_from == "default" else Path(init_from).expanduser().resolve()


def recorded_path(path: Path) -> str:
    """How a run and its checkpoints name the file it started from: relative to the project when inside it, so a
    committed checkpoint names no machine's folders (its SHA-256 is recorded beside); otherwise the full path."""
    try:
        return path.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Start:
    """What a run starts from, checked: the device, its network, and the checkpoint it starts from (if any)."""

    device: str
    network: ModelConfig
    source: dict | None  # the --init-from checkpoint's payload
    source_sha256: str | None


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise Mp3MidiError("--device cuda asked for, but this torch build sees no GPU")
    if requested not in ("cpu", "cuda"):
        raise Mp3MidiError(f"unknown device {requested!r}; choose auto, cpu or cuda")
    return requested


def learning_rate(step: int, *, peak: float, total: int) -> float:
    """Linear warm-up over WARMUP_STEPS (or a tenth of a short run), then cosine decay to FINAL_LR_FRACTION."""
    warmup = min(WARMUP_STEPS, max(1, total // 10))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def check_options(options: TrainOptions) -> Start:
    """Refuse bad settings before any work and before anything is written (names, numbers, device, the
    --init-from checkpoint, a dataset without validation pieces, a clash with an existing run)."""
    directory = runs.run_dir(options.data_dir, options.run)
    device = pick_device(options.device)
    if options.size is not None:
        config_for(options.size)
    elif not options.init_from:
        raise Mp3MidiError("choose a model size (or --init-from a checkpoint, whose size comes along)")
    for name, value in (("--steps", options.steps), ("--batch-size", options.batch_size),
                        ("--eval-every", options.eval_every), ("--eval-items", options.eval_items)):
        if value < 1:
            raise Mp3MidiError(f"{name} must be at least 1; got {value}")
    if not 0 <= options.bin_shift <= 2:
        raise Mp3MidiError(f"--bin-shift must be 0, 1 or 2 CQT bins; got {options.bin_shift}")
    if options.bin_shift and not options.augment:
        raise Mp3MidiError("--bin-shift is an augmentation; it needs augmentation on")
    if not options.lr > 0:
        raise Mp3MidiError(f"--lr must be positive; got {options.lr}")
    if not options.datasets:
        raise Mp3MidiError("choose at least one dataset to train on")
    source, digest, network = None, None, config_for(options.size) if options.size else None
    if options.init_from:
        source, digest = _init_checkpoint(options.init_from)
        network = ModelConfig.from_dict(source["model_config"])
        if options.size is not None and network != config_for(options.size):
            raise Mp3MidiError(f"--init-from {options.init_from!r} holds another network than size "
                               f"{options.size!r} ({network}); leave --size out to train the checkpoint's own")
    check_validation_split(options.data_dir, options.datasets)
    latest = directory / "latest.pt"
    if options.resume and not latest.is_file():
        raise Mp3MidiError(f"--resume: run {options.run!r} has no checkpoint to continue from")
    stored = runs.stored_config(options.data_dir, options.run)
    if stored is not None and stored.get("init_from"):  # runs from before recorded_path() stored the full path
        stored = {**stored, "init_from": recorded_path(Path(stored["init_from"]))}
    identity = options.identity()
    named = set(identity) | {key for key in OPTIONAL_IDENTITY if stored is not None and key in stored}
    if stored is not None and {key: stored.get(key) for key in named} != identity and latest.is_file():
        raise Mp3MidiError(f"run {options.run!r} exists with other settings ({stored}); choose another --run")
    if latest.is_file():
        saved = load_checkpoint(latest)
        trained = ModelConfig.from_dict(saved["model_config"])
        if trained != network:
            raise Mp3MidiError(f"run {options.run!r} was trained with another network than today's "
                               f"{options.size!r} ({trained}); choose another --run")
        planned = saved.get("train_config", {}).get("steps")
        if planned is not None and planned != options.steps:
            raise Mp3MidiError(
                f"run {options.run!r} was planned for {planned} steps, and its learning rate (warm-up, then cosine "
                f"decay) is scheduled over them: continuing it with --steps {options.steps} would bend that schedule"
                f" silently. Re-run with --steps {planned} to finish it, or start a new run from its weights with "
                f"a schedule of its own: --init-from {latest} --run NEW-NAME")
    return Start(device, network, source, digest)


def _init_checkpoint(init_from: str) -> tuple[dict, str]:
    """The --init-from checkpoint's payload and its file's SHA-256, checked: readable, our format, today's
    features, weights that fit its network."""
    path = init_path(init_from)
    payload = load_checkpoint(path)
    try:
        model_from_checkpoint(payload)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise Mp3MidiError(f"--init-from {str(path)!r}: its weights do not fit the network it describes "
                           f"({type(exc).__name__}: {reason})") from None
    return payload, hashlib.sha256(path.read_bytes()).hexdigest()


def train(options: TrainOptions) -> dict:
    """Train (or continue) run ``options.run``; returns the final metrics.

    Ctrl-C (or SIGTERM to the command line, pipeline.sigterm) stops it in good order: the current state is saved
    to ``latest.pt`` and the run is marked 'cancelled', so the same command continues it.
    """
    start = check_options(options)
    device = start.device
    directory = runs.run_dir(options.data_dir, options.run)
    latest = directory / "latest.pt"
    torch.manual_seed(options.seed)

    train_items = load_items(options.data_dir, options.datasets, "train")
    validation_items = load_items(options.data_dir, options.datasets, "validation", sample=options.eval_items,
                                  seed=options.seed)
    crops = CropDataset(train_items, crop_frames=options.crop_frames, seed=options.seed,
                        augment=Augment(bin_shift=options.bin_shift) if options.augment else None)
    validation_crops = CropDataset(validation_items, crop_frames=options.crop_frames, augment=None, seed=10**6)

    model = Transcriber(start.network)
    if start.source is not None:
        model.load_state_dict(start.source["state_dict"])
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device, enabled=device == "cuda")
    step, best = 0, (None, -1.0)
    # Until the first evaluation chooses its own, a checkpoint carries the thresholds of the one it started from.
    metrics: dict = checkpoint_thresholds(start.source) if start.source is not None else {}
    record = {**options.identity(), "steps": options.steps}
    if start.source is not None:
        record.update(init_from_sha256=start.source_sha256, init_from_step=int(start.source["step"]))
    fresh = not latest.is_file()
    if latest.is_file():
        payload = load_checkpoint(latest, map_location=device)
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        if "scaler" in payload:
            scaler.load_state_dict(payload["scaler"])
        step = payload["step"]
        best = tuple(payload["train_config"].get("best", (None, -1.0)))
    runs.start_run(options.data_dir, options.run, datasets=options.datasets, config=record,
                   device=device, parameters=parameter_count(model), steps=options.steps)
    if fresh and start.source is not None:  # the "before": the checkpoint as it came, at its own thresholds
        before = evaluate_model(model, validation_items, validation_crops, device=device,
                                thresholds=checkpoint_thresholds(start.source), onset_loss=options.onset_loss)
        runs.record_metrics(options.data_dir, options.run, 0, before, best=None)

    bar = _progress(options, step)
    window_loss, window_examples, window_started = [], 0, time.perf_counter()
    status, saved_step = "done", step
    try:
        while step < options.steps:
            lr = learning_rate(step, peak=options.lr, total=options.steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            batch = _batch(crops, step, options.batch_size, device)
            with torch.autocast(device_type=device, dtype=torch.float16, enabled=device == "cuda"):
                loss = losses(model(batch["features"]), batch, onset=options.onset_loss)["total"]
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_loss.append(loss.item())
            window_examples += options.batch_size
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(window_loss[-20:]):.4f}", refresh=False)
            if step % options.eval_every == 0 or step == options.steps:
                speed = window_examples / (time.perf_counter() - window_started)
                metrics = evaluate_model(model, validation_items, validation_crops, device=device,
                                         onset_loss=options.onset_loss)
                metrics.update(train_loss=float(np.mean(window_loss)), learning_rate=lr, examples_per_s=speed)
                improved = metrics["onset_f1"] > best[1]
                if improved:
                    best = (step, metrics["onset_f1"])
                config = {**record, "best": list(best)}
                if improved:
                    save_checkpoint(directory / "best.pt", model=model, step=step, metrics=metrics, train_config=config)
                save_checkpoint(latest, model=model, step=step, metrics=metrics, optimizer=optimizer, scaler=scaler,
                                train_config=config)
                saved_step = step
                runs.record_metrics(options.data_dir, options.run, step, metrics,
                                    best=best if improved else None)
                window_loss, window_examples, window_started = [], 0, time.perf_counter()
    except KeyboardInterrupt:
        status = "cancelled"
        if step > saved_step:  # keep the steps since the last evaluation
            save_checkpoint(latest, model=model, step=step, metrics=metrics, optimizer=optimizer, scaler=scaler,
                            train_config={**record, "best": list(best)})
    except Exception as exc:
        runs.finish_run(options.data_dir, options.run, status="failed", message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if bar is not None:
            bar.close()
    runs.finish_run(options.data_dir, options.run, status=status)
    return metrics


def _batch(crops: CropDataset, step: int, batch_size: int, device: str) -> dict[str, torch.Tensor]:
    samples = [crops[step * batch_size + index] for index in range(batch_size)]
    return {name: torch.stack([sample[name] for sample in samples]).to(device) for name in samples[0]}


@torch.no_grad()
def evaluate_model(model: Transcriber, items, validation_crops: CropDataset, *, device: str,
                   thresholds: dict | None = None, onset_loss: OnsetLoss = OnsetLoss()) -> dict:
    """Validation loss on fixed crops, and mir_eval scores of notes decoded from whole items at the thresholds
    returned with them: ``thresholds`` when given, else those chosen on these items (what the checkpoint keeps)."""
    model.eval()
    crop_losses = []
    for start in range(0, VALIDATION_CROPS, 8):
        batch = _batch(validation_crops, start // 8, 8, device)
        crop_losses.append(float(losses(model(batch["features"]), batch, onset=onset_loss)["total"]))
    outputs = [activations(model, item.features, device=device) for item in items]
    if thresholds is None:  # with the expression rules of decoding the checkpoint will keep (as transcription does)
        thresholds = {**choose_thresholds(outputs, [item.rolls for item in items]), **DEFAULT_RULES}
    scores = []
    for item, probabilities in zip(items, outputs):
        notes = decode(probabilities["onset"], probabilities["frame"], offsets=probabilities["offset"],
                       velocities=probabilities["velocity"], **thresholds)
        scores.append(score_notes(reference_notes(item), notes, duration_s=item.duration_s))
    mean = mean_scores(scores)
    return {"validation_loss": float(np.mean(crop_losses)), "onset_f1": mean.onset_f1, "offset_f1": mean.offset_f1,
            "frame_f1": mean.frame_f1, "velocity_f1": mean.velocity_f1, **thresholds}


def _progress(options: TrainOptions, step: int):
    if not options.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=options.steps, initial=step, unit="step", desc=options.run, dynamic_ncols=True)
