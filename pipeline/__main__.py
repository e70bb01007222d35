"""Command line for the dataset factory: ``python -m pipeline generate ...`` and ``python -m pipeline stats ...``."""

from __future__ import annotations

import argparse
import os
import sys

from .constants import LOWEST_PITCH, N_KEYS
from .errors import Mp3MidiError
from .instruments import FAMILIES

EXIT_FAILED = 1  # the job ran and failed (recorded 'failed' with its reason)
EXIT_USAGE = 2  # bad input: nothing was started, or the input was refused
EXIT_STOPPED = 130  # stopped (Ctrl-C, SIGTERM) before the work had anything to keep


def build_parser() -> argparse.ArgumentParser:
    """``python -m pipeline``'s parser: every option has a help text."""
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="Mp3-to-MIDI dataset factory")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="render MIDI into MP3, features and labels (re-run to resume)")
    generate.add_argument("--name", required=True, help="dataset name (a short slug)")
    generate.add_argument("--source", default="builtin", help="'builtin' or a folder of MIDI files (searched recursively)")
    generate.add_argument("--soundfont", nargs="+", default=[], metavar="PATH",
                          help="one or more .sf2/.sf3 files ('default' = the embedded TimGM6mb); each item draws one")
    generate.add_argument("--families", nargs="+", default=[], metavar="FAMILY", choices=FAMILIES,
                          help="General MIDI families to draw instruments from (default: the 12 pitched ones)")
    generate.add_argument("--limit", type=int, default=None, help="at most this many pieces (builtin default: 100)")
    generate.add_argument("--clip-seconds", type=float, default=30.0, help="seconds rendered per piece; 0 for whole pieces")
    generate.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    generate.add_argument("--seed", type=int, default=0,
                          help="everything random (instruments, clips, effects) derives from it and each piece's hash")
    generate.add_argument("--mix-probability", type=float, default=0.25,
                          help="share of items rendered as multi-instrument mixes")
    generate.add_argument("--render-drums", action="store_true", help="render drum tracks into the audio (never labelled)")
    generate.add_argument("--bitrate", default="64k", help="MP3 bitrate (default 64k; a recording chain draws its own)")
    generate.add_argument("--performance-probability", type=float, default=0.0, metavar="P",
                          help="share of items played as performances: vibrato, slides, bends, pedal, dynamics (default 0)")
    generate.add_argument("--chain-probability", type=float, default=0.0, metavar="P",
                          help="share of items recorded through a drawn room, microphone, EQ, compressor, noise and"
                               " bitrate (default 0)")
    generate.add_argument("--synth-probability", type=float, default=0.0, metavar="P",
                          help="share of items played by procedural instruments (additive, FM, plucked, breath) instead"
                               " of a soundfont (default 0)")
    generate.add_argument("--voice-probability", type=float, default=0.0, metavar="P",
                          help="share of items sung by the procedural singing voice: one line, top voice or one part"
                               " (default 0)")
    generate.add_argument("--cluster", metavar="ADDRESS", help="run items on a Dask scheduler, e.g. tcp://host:8786")
    generate.add_argument("--item-timeout", type=float, default=None, metavar="SECONDS",
                          help="time limit per item (default: 60 s + 2 s per second of audio the item can last)")
    generate.add_argument("--data-dir", default="data", help="folder for the catalog and the dataset's files")
    generate.add_argument("--lock-fd", type=int, default=None, metavar="FD",
                          help="an open file already holding the dataset's lock (passed by the dashboard's launch)")

    stats = commands.add_parser("stats", help="print a dataset's coverage summary from the catalog")
    stats.add_argument("--name", required=True, help="the dataset to summarise")
    stats.add_argument("--data-dir", default="data", help="folder holding the catalog")

    export = commands.add_parser("export", help="copy a split's MP3s with reference .mid files into a folder")
    export.add_argument("--name", required=True, help="the dataset to export from")
    export.add_argument("--split", choices=("train", "validation", "test", "all"), default="test",
                        help="which split's items to copy (default: test)")
    export.add_argument("--out", required=True, help="folder to write FAMILY/ITEM.mp3 and .mid into")
    export.add_argument("--data-dir", default="data", help="folder holding the catalog and datasets")
    recordings = commands.add_parser(
        "import-recordings", help="make a dataset of your own recordings: audio files with an aligned .mid beside each")
    recordings.add_argument("--folder", required=True, help="audio files (.mp3 .wav .flac .ogg .m4a), each with a"
                                                            " reference .mid of the same name beside it")
    recordings.add_argument("--name", required=True, help="dataset name (a short slug)")
    recordings.add_argument("--data-dir", default="data", help="folder holding the catalog, datasets and runs")

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import quiet_fluidsynth  # noqa: F401 - before anything imports pretty_midi
    from .jobs import JobFailed

    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "import-recordings":
            return _import_recordings(args)
        if args.command == "export":
            return _export(args)
        return _stats(args)
    except JobFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the work had anything to keep
        print("stopped", file=sys.stderr)
        return EXIT_STOPPED


def _generate(args) -> int:
    from .jobs import GenerateOptions, generate

    summary = generate(GenerateOptions(
        name=args.name, source=args.source, soundfonts=tuple(args.soundfont), families=tuple(args.families),
        limit=args.limit, clip_seconds=args.clip_seconds, workers=args.workers, seed=args.seed,
        data_dir=args.data_dir, mix_probability=args.mix_probability, render_drums=args.render_drums,
        bitrate=args.bitrate, performance_probability=args.performance_probability,
        chain_probability=args.chain_probability, synth_probability=args.synth_probability,
        voice_probability=args.voice_probability, cluster=args.cluster, progress=sys.stderr.isatty(),
        item_timeout_s=args.item_timeout, lock_fd=args.lock_fd))
    print(f"dataset {summary.dataset}: {summary.done} done, {summary.failed} failed of {summary.total} items;"
          f" made {summary.made_now} now in {summary.wall_s:.1f} s ({summary.speed:.0f}x real time)")
    for reason, count in summary.failures.items():
        print(f"  failed x{count}: {reason}")
    return 0


def _import_recordings(args) -> int:
    from .recordings import import_recordings

    summary = import_recordings(args.folder, name=args.name, data_dir=args.data_dir, progress=sys.stderr.isatty())
    print(f"dataset {summary.dataset}: {summary.done} done, {summary.failed} failed of {summary.total} recordings")
    for reason, count in summary.failures.items():
        print(f"  failed x{count}: {reason}")
    return EXIT_USAGE if summary.failed and not summary.done else 0


def _export(args) -> int:
    from .catalog import validate_name
    from .export import export_split

    count = export_split(args.data_dir, validate_name(args.name), args.split, args.out)
    print(f"exported {count} items of {args.name} ({args.split}) to {args.out}")
    return 0


def _stats(args) -> int:
    from . import coverage
    from .background import job_progress

    totals = coverage.totals(args.data_dir, args.name)
    print(f"dataset {args.name}: {totals.items} items ({totals.done} done, {totals.failed} failed,"
          f" {totals.pending} pending), {totals.hours:.2f} h of audio, {totals.notes} notes,"
          f" {totals.mixes} mixes, {totals.mp3_mb:.1f} MB of MP3")
    latest = job_progress(args.data_dir, args.name)
    if latest is not None:
        print(f"latest job {latest.job_id}: {latest.status}" + (f": {latest.message}" if latest.message else ""))
    pitches = coverage.notes_per_pitch_family(args.data_dir, args.name)
    per_family = pitches.groupby("family")["notes"].sum().sort_values(ascending=False)
    hours = coverage.hours_per_family(args.data_dir, args.name).groupby("family")["hours"].sum()
    print("\nfamily                  notes    hours")
    for family, notes in per_family.items():
        print(f"  {family:<20} {notes:>7} {hours.get(family, 0.0):>8.3f}")
    played = set(pitches["pitch"])
    missing = [p for p in range(LOWEST_PITCH, LOWEST_PITCH + N_KEYS) if p not in played]
    print(f"\nkeys played: {N_KEYS - len(missing)} of {N_KEYS}" + (f"; never played: {missing}" if missing else ""))
    _histogram("polyphony (frames)", coverage.polyphony_histogram(args.data_dir, args.name), "polyphony", "frames")
    _histogram("note durations", coverage.duration_histogram(args.data_dir, args.name), "bin", "notes")
    _histogram("velocities", coverage.velocity_histogram(args.data_dir, args.name), "velocity", "notes")
    stages = coverage.stage_seconds(args.data_dir, args.name)
    print("\nspeed per stage (audio s per worker s): " + ", ".join(
        f"{row.stage} {row.audio_per_wall:.0f}x" for row in stages.itertuples()))
    failures = coverage.failures(args.data_dir, args.name)
    if len(failures):
        print("\nfailures by reason:")
        for row in failures.itertuples():
            print(f"  {row.items:>5}  {row.reason}")
    return 0


def _histogram(title: str, frame, label: str, value: str, width: int = 40) -> None:
    print(f"\n{title}:")
    peak = max(frame[value].max(), 1) if len(frame) else 1
    for row in frame.itertuples():
        count = getattr(row, value)
        print(f"  {str(getattr(row, label)):>10} {count:>9} {'#' * max(1, round(width * count / peak)) if count else ''}")


if __name__ == "__main__":
    from .sigterm import stop_on_sigterm

    stop_on_sigterm()  # the dashboard's Cancel: a job keeps what it made and records itself cancelled
    sys.exit(main())
