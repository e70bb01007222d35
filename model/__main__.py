"""Command line for the network: ``python -m model train|evaluate|transcribe|calibrate ...``, installed as the
``mp3-to-midi`` command too (the same parser)."""

from __future__ import annotations

import argparse
import gc
import json
import sys

from model.quantize import QUANTIZE_GRIDS
from pipeline.allocator import TRAINING_BLOCK_BYTES, WORKING_BLOCK_BYTES, keep_freed_memory
from pipeline.constants import MAX_AUDIO_MINUTES
from pipeline.errors import Mp3MidiError
from pipeline.sigterm import stop_on_sigterm

EXIT_USAGE = 2
EXIT_STOPPED = 130  # as a shell reports a command stopped by Ctrl-C
PROG = "python -m model"
MONO_HELP = "one note at a time: for a voice, a wind or a bass line"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The one parser behind ``python -m model`` and the ``mp3-to-midi`` command: every option has a help text."""
    parser = argparse.ArgumentParser(prog=prog, description="Mp3-to-MIDI: transcribe recordings to MIDI, and train, "
                                     "calibrate and evaluate the network that does it.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a run (re-run or --resume to continue it)",
                                description="Train a network on generated datasets; re-run to continue the run.")
    train.add_argument("--dataset", nargs="+", required=True, metavar="NAME",
                       help="one or more datasets made by `python -m pipeline generate` to train on")
    train.add_argument("--run", required=True, help="the run's name: its checkpoints go to DATA_DIR/runs/RUN/")
    train.add_argument("--steps", type=int, default=2000, help="optimizer steps in all (default 2000)")
    train.add_argument("--batch-size", type=int, default=8, help="clips per optimizer step (default 8)")
    train.add_argument("--lr", type=float, default=2e-3,
                       help="peak AdamW learning rate, reached after warm-up, then cosine decay (default 0.002)")
    train.add_argument("--size", choices=("small", "base"), default=None,
                       help="network size: small (the default model's) or base (wider, slower); default small, or "
                            "the --init-from checkpoint's")
    train.add_argument("--init-from", metavar="CHECKPOINT", default=None,
                       help="start a new run from this checkpoint's weights ('default': the committed model); its "
                            "network, features and thresholds come along, and the run's config records it")
    train.add_argument("--eval-items", type=int, default=24,
                       help="validation items scored at each evaluation: a seeded sample over all the datasets")
    train.add_argument("--seed", type=int, default=0, help="seed of the weights' initialisation and the batches")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where to train: auto takes a CUDA GPU when there is one, else the CPU")
    train.add_argument("--resume", action="store_true",
                       help="continue from the run's latest.pt; fails when there is none (a plain re-run continues)")
    train.add_argument("--eval-every", type=int, default=250,
                       help="steps between validation scores; each writes latest.pt (best.pt when onset F1 improves)")
    train.add_argument("--bin-shift", type=int, choices=(0, 1, 2), default=0,
                       help="shift features by up to this many CQT bins (33 cents each), labels unchanged (default off)")
    train.add_argument("--onset-pos-weight", type=float, default=4.0,
                       help="weight of an onset positive in the onset head's loss (default 4)")
    train.add_argument("--onset-tail", type=float, default=1.0,
                       help="target of the frame after an onset (onset targets are two frames wide); 0.5 makes it "
                            "soft so the peak sharpens (default 1)")
    train.add_argument("--inside-onset-weight", type=float, default=1.0,
                       help="weight of the onset head's negatives inside sounding notes, where vibrato and scoops "
                            "tempt it to fire (default 1)")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--data-dir", default="data", help="folder holding the catalog, datasets and runs")

    evaluate = commands.add_parser("evaluate", help="score a checkpoint with mir_eval",
                                   description="Score a checkpoint: onset, note-with-offset and frame F1 (mir_eval).")
    evaluate.add_argument("--checkpoint", default=None, help="the checkpoint to score (default: the committed "
                          "default model)")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", nargs="+", metavar="NAME", help="generated datasets to score on (see --split)")
    source.add_argument("--folder", help="audio files with a reference .mid of the same name beside each")
    evaluate.add_argument("--split", choices=("train", "validation", "test"), default="test",
                          help="which split of the datasets to score (default: test)")
    evaluate.add_argument("--json", dest="json_out", metavar="OUT", help="write the full report here")
    evaluate.add_argument("--data-dir", default="data", help="folder holding the catalog and datasets")
    evaluate.add_argument("--max-minutes", type=float, default=MAX_AUDIO_MINUTES,
                          help=f"with --folder: leave out recordings longer than this (default {MAX_AUDIO_MINUTES})")
    evaluate.add_argument("--mono", action="store_true", help=MONO_HELP)

    transcribe = commands.add_parser("transcribe", help="audio files to MIDI",
                                     description="Transcribe recordings (MP3, WAV, FLAC, OGG, M4A) to MIDI files.")
    transcribe.add_argument("inputs", nargs="+", metavar="INPUT", help="one or more audio files")
    transcribe.add_argument("-o", "--output", required=True, help="a .mid file for one input, else a folder")
    transcribe.add_argument("--checkpoint", default=None, help="the model to use (default: the committed default)")
    transcribe.add_argument("--onset-threshold", type=float, default=None,
                            help="onset probability that starts a note; lower finds more (default: the checkpoint's)")
    transcribe.add_argument("--frame-threshold", type=float, default=None,
                            help="frame probability that keeps a note sounding (default: the checkpoint's)")
    transcribe.add_argument("--min-note-ms", type=float, default=50.0,
                            help="notes shorter than this many milliseconds are dropped (default 50)")
    transcribe.add_argument("--program", type=int, default=0,
                            help="General MIDI program (0-127) of the MIDI track (default 0, acoustic grand piano)")
    transcribe.add_argument("--tempo", default="auto",
                            help="'auto' (default): a tempo map that follows the tracked beats (one tempo, with a "
                                 "warning, when the beat is not steady enough to follow); or a fixed BPM")
    transcribe.add_argument("--quantize", choices=("none", *QUANTIZE_GRIDS), default="none",
                            help="snap note starts and ends to this subdivision of the beats (t: triplets; default: "
                                 "none)")
    transcribe.add_argument("--csv", action="store_true", help="also write start_s,end_s,pitch,velocity per note")
    transcribe.add_argument("--musicxml", action="store_true",
                            help="also write sheet music, NAME.musicxml, beside each MIDI (on the --quantize grid, "
                                 "sixteenths by default)")
    transcribe.add_argument("--pitch-bends", action="store_true",
                            help="write each note's measured pitch contour (vibrato, bends) as pitch-wheel events, "
                            "a channel per sounding note")
    transcribe.add_argument("--max-minutes", type=float, default=MAX_AUDIO_MINUTES,
                            help=f"refuse recordings longer than this (default {MAX_AUDIO_MINUTES}; memory grows by"
                                 " about 160 MB an hour)")
    transcribe.add_argument("--mono", action="store_true", help=MONO_HELP)

    calibrate = commands.add_parser("calibrate", help="choose a checkpoint's decoding thresholds on validation data",
                                    description="Choose the onset and frame thresholds that score best on the "
                                    "datasets' validation split and store them in the checkpoint.")
    calibrate.add_argument("--checkpoint", required=True, help="the checkpoint to calibrate (rewritten in place)")
    calibrate.add_argument("--dataset", nargs="+", required=True, metavar="NAME",
                           help="datasets whose validation split chooses the thresholds")
    calibrate.add_argument("--data-dir", default="data", help="folder holding the catalog and datasets")
    finetune = commands.add_parser(
        "finetune", help="fine-tune a model to a soundfont (and your recordings), then score it before and after")
    finetune.add_argument("--name", required=True, help="names the fine-tune, its dataset and its run")
    finetune.add_argument("--soundfont", required=True, help="the .sf2/.sf3 of your sound ('default': TimGM6mb)")
    finetune.add_argument("--source", default="builtin", help="'builtin' or a folder of MIDI files to render")
    finetune.add_argument("--pieces", type=int, default=60, help="pieces rendered with the soundfont (and with the"
                                                                  " default one, to check what is forgotten)")
    finetune.add_argument("--clip-seconds", type=float, default=15.0, help="seconds rendered per piece")
    finetune.add_argument("--seed", type=int, default=0, help="seeds the datasets and the run")
    finetune.add_argument("--steps", type=int, default=300, help="training steps from the starting model")
    finetune.add_argument("--batch-size", type=int, default=8, help="crops per step")
    finetune.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (a fresh run uses 2e-3)")
    finetune.add_argument("--init-from", default=None, metavar="CHECKPOINT", help="default: the active model")
    finetune.add_argument("--recordings", default=None, metavar="FOLDER",
                          help="your recordings (audio + a .mid of the same name) to train on and recalibrate with")
    finetune.add_argument("--judge", default=None, metavar="FOLDER",
                          help="your recordings (audio + .mid) never trained on, scored before and after")
    finetune.add_argument("--threads", type=int, default=None, help="torch CPU threads while training")
    finetune.add_argument("--workers", type=int, default=1, help="processes rendering the datasets")
    finetune.add_argument("--stage-limit", type=float, default=3600.0, metavar="SECONDS",
                          help="a stage running longer is stopped in good order (re-run to resume)")
    finetune.add_argument("--data-dir", default="data", help="folder holding the catalog, datasets and runs")
    return parser


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    from pipeline import quiet_fluidsynth  # noqa: F401 - before anything imports pretty_midi
    # This process is ours: its buffers (network windows, CQT chunks, training batches) are kept for reuse.
    keep_freed_memory(TRAINING_BLOCK_BYTES if args.command in ("train", "finetune") else WORKING_BLOCK_BYTES)
    if getattr(args, "threads", None):  # torch's CPU threads, for everything this process trains or scores
        import torch

        torch.set_num_threads(args.threads)
    try:
        if args.command == "finetune":
            return _finetune(args)
        if args.command == "calibrate":
            return _calibrate(args)
        if args.command == "transcribe":
            return _transcribe(args)
        return _train(args) if args.command == "train" else _evaluate(args)
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the work had anything to keep
        print("stopped", file=sys.stderr)
        return EXIT_STOPPED


def train_options(args):
    """The ``model.train.TrainOptions`` a parsed ``train`` command line asks for."""
    from .network import OnsetLoss
    from .train import TrainOptions

    onset_loss = OnsetLoss(pos_weight=args.onset_pos_weight, tail=args.onset_tail,
                           inside_weight=args.inside_onset_weight)
    return TrainOptions(
        datasets=args.dataset, run=args.run, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        size=args.size or (None if args.init_from else "small"), seed=args.seed, device=args.device,
        resume=args.resume, data_dir=args.data_dir, eval_every=args.eval_every, eval_items=args.eval_items,
        bin_shift=args.bin_shift, threads=args.threads, init_from=args.init_from, onset_loss=onset_loss,
        progress=sys.stderr.isatty())


def _train(args) -> int:
    from .train import train

    metrics = train(train_options(args))
    print(json.dumps({key: round(value, 4) for key, value in metrics.items()}))
    return 0


def _evaluate(args) -> int:
    from .evaluate import evaluate_dataset, evaluate_folder, format_report

    if args.folder:
        report = evaluate_folder(args.checkpoint, args.folder, max_minutes=args.max_minutes, mono=args.mono)
    else:
        report = evaluate_dataset(args.checkpoint, args.dataset, split=args.split, data_dir=args.data_dir,
                                  mono=args.mono)
    print(format_report(report))
    if args.json_out:
        from pipeline.atomic import atomic_path

        with atomic_path(args.json_out) as partial:
            partial.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return EXIT_USAGE if report.get("failed") else 0  # as transcribe: the others were still scored and written


def _finetune(args) -> int:
    from .finetune import FineTuneOptions, fine_tune

    report = fine_tune(FineTuneOptions(
        name=args.name, soundfont=args.soundfont, source=args.source, pieces=args.pieces,
        clip_seconds=args.clip_seconds, seed=args.seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        init_from=args.init_from, recordings=args.recordings, judge=args.judge, threads=args.threads,
        workers=args.workers, stage_limit_s=args.stage_limit, data_dir=args.data_dir))
    print(f"{'set':<34}{'items':>6}{'onset F1 before':>17}{'after':>8}{'frame F1 before':>17}{'after':>8}")
    for label, scores in report["sets"].items():
        print(f"{label:<34}{scores['items']:>6}{scores['before']['onset_f1']:>17.3f}{scores['after']['onset_f1']:>8.3f}"
              f"{scores['before']['frame_f1']:>17.3f}{scores['after']['frame_f1']:>8.3f}")
    verdict = report["verdict"]
    print(("keep: " if verdict["keep"] else "do not keep: ") + verdict["reason"])
    return 0


def _calibrate(args) -> int:
    from .thresholds import calibrate

    print(json.dumps(calibrate(args.checkpoint, args.dataset, data_dir=args.data_dir)))
    return 0


def _transcribe(args) -> int:
    from pathlib import Path

    from pipeline.atomic import atomic_path

    from .musicxml import musicxml_bytes
    from .pitch_bends import DeviationGatherer, midi_with_bends
    from .transcribe import transcribe

    output = Path(args.output)
    to_folder = len(args.inputs) > 1 or output.is_dir() or output.suffix.lower() not in (".mid", ".midi")
    targets = {name: output / f"{Path(name).stem}.mid" if to_folder else output for name in args.inputs}
    _refuse_shared_targets(targets)
    failed = 0
    for name, target in targets.items():
        contours = DeviationGatherer() if args.pitch_bends else None
        try:
            result = transcribe(Path(name), checkpoint=args.checkpoint, onset_threshold=args.onset_threshold,
                                frame_threshold=args.frame_threshold, min_note_ms=args.min_note_ms,
                                program=args.program, tempo=args.tempo, quantize=args.quantize, on_features=contours,
                                max_minutes=args.max_minutes, mono=args.mono)
            _make_folder(target.parent)
            with atomic_path(target) as midi_partial:  # a .csv that cannot be written takes its .mid along
                if contours is not None:
                    midi_partial.write_bytes(midi_with_bends(result.midi, result.notes, contours.result()))
                else:
                    result.midi.write(str(midi_partial))
                if args.csv:
                    with atomic_path(target.with_suffix(".csv")) as csv_partial:
                        csv_partial.write_text(_notes_csv(result.notes), encoding="utf-8")
                if args.musicxml:  # likewise the sheet music (refused for an absurd length: no files then)
                    score = musicxml_bytes(result.notes, result.beats, grid=args.quantize, title=Path(name).stem)
                    with atomic_path(target.with_suffix(".musicxml")) as score_partial:
                        score_partial.write_bytes(score)
        except Mp3MidiError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        for warning in result.warnings:
            print(f"warning: {name}: {warning}", file=sys.stderr)
        beats = result.beats
        described = f"a tempo map of {len(beats.beats_s) - 1} beats" if beats.tracked else "one tempo"
        print(f"{name} -> {target}: {len(result.notes)} notes, {result.tempo_bpm:.1f} BPM ({described})")
    return EXIT_USAGE if failed else 0


def _notes_csv(notes) -> str:
    rows = ["start_s,end_s,pitch,velocity"] + [f"{n.start_s:.4f},{n.end_s:.4f},{n.pitch},{n.velocity}" for n in notes]
    return "\n".join(rows) + "\n"


def _refuse_shared_targets(targets: dict) -> None:
    """Two inputs with one stem (song.mp3, song.wav) would write one .mid over the other: refuse before any work."""
    first_of = {}
    for name, target in targets.items():
        if target in first_of:
            raise Mp3MidiError(f"{first_of[target]!r} and {name!r} would both be written to {str(target)!r};"
                               " transcribe them into separate folders")
        first_of[target] = name


def _make_folder(folder) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Mp3MidiError(f"cannot make the folder {str(folder)!r}: {exc.strerror or exc}") from None


def console() -> None:
    """The ``mp3-to-midi`` command (installed by ``pip install -e .``): ``python -m model`` under its own name."""
    stop_on_sigterm()
    _exit(main(prog="mp3-to-midi"))


def _exit(code: int) -> None:
    # After torch's import the collector tracks some 180,000 objects, and the interpreter's exit runs full
    # collections over them (0.1 s each, 0.3-0.5 s in all) before freeing them anyway; frozen, they are skipped.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    stop_on_sigterm()  # the dashboard's Stop: a run saves its state and records itself cancelled
    _exit(main())
