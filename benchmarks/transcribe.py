"""Transcription speed and memory: our default model and basic-pitch on the same MP3s, side by side.

Run by hand with the project venv (figures go in docs/BENCHMARKS.md):
    .venv/bin/python benchmarks/transcribe.py [--seconds 30 180 300] [--repeats 3] [--long 1800] [--before DIR]

The files: one procedural piece per length (``pipeline.procedural``, piano through FluidSynth and TimGM6mb),
encoded as songs usually come, 44.1 kHz stereo at 128 kbit/s, and cached under ``data/bench/`` (git-ignored), so
later runs and basic-pitch read the same bytes.

What is measured, every figure a median over ``--repeats`` runs (the machine is shared and noisy):
  1. Ours in this process, after imports, model load and one warm-up run: each stage on its own, as audio seconds
     per wall second (decoding the MP3 with ``load_audio``, ``spectrogram``, the network with ``activations``, and
     ``decode`` to notes), and the whole ``transcribe(path)`` call, which streams the same stages.
  2. basic-pitch in its own process, after its imports, model load and a warm-up on the same file: ``predict()``
     (audio loading, network, note creation and MIDI building), as audio seconds per wall second.
  3. Whole processes, from interpreter start to exit, with wall time and peak RSS from ``/usr/bin/time -v``: ours
     is ``python -m model transcribe FILE -o out.mid``; basic-pitch's is a one-file script doing what its CLI
     does (imports, model load, ``predict``, MIDI write) without the CLI's TensorFlow probing. ``--before DIR``
     adds ours from another checkout (e.g. a ``git worktree`` of an older commit), and ``start-up`` is a process
     that only imports and loads our model: the fixed cost in every whole-process figure.
``--long SECONDS`` adds one whole process of ours on a file that long (30 minutes by default), for its memory.
Both systems get 2 CPU threads (torch's default on 2 cores; onnxruntime's intra-op pool and the BLAS pools set).
basic-pitch is installed and run as ``benchmarks/compare_basic_pitch.py`` does it, in ``benchmarks/.venv-basic-pitch``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.compare_basic_pitch import THREAD_ENV_VARS, VENV_PYTHON, _ensure_venv
from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "data" / "bench"
DEFAULT_LENGTHS_S = (30, 180, 300)
LONG_S = 1800
PIECE_SEED = 2026
SONG_RATE = 44_100
SONG_CHANNELS = 2
SONG_BITRATE = "128k"
THREADS = 2
TIME_BINARY = "/usr/bin/time"
STAGES = ("decode_mp3", "features", "network", "notes")
STAGE_NAMES = {"decode_mp3": "decode MP3", "features": "features", "network": "network", "notes": "notes"}
START_UP = "import gc; from model.transcribe import load_model; load_model(); gc.freeze()"  # exits as the CLI does

# Runs in the basic-pitch venv: python SCRIPT AUDIO OUT.mid THREADS REPEATS. It transcribes AUDIO once and writes
# OUT.mid (what a whole-process run measures); with REPEATS > 0 it then times predict() that many more times and
# prints the timings as JSON on its last line.
BASIC_PITCH_ONE_FILE = r'''
import contextlib, json, logging, sys, time
logging.disable(logging.WARNING)  # import-time warnings about the TensorFlow, CoreML and TFLite it does not use
with contextlib.redirect_stdout(sys.stderr):  # predict() prints "Predicting MIDI for ..." to stdout
    import onnxruntime
    from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
    from basic_pitch.inference import Model, predict

    path = build_icassp_2022_model_path(FilenameSuffix.onnx)
    model = Model(path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = int(sys.argv[3]), 1
    model.model = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _, midi, _ = predict(sys.argv[1], model)
    midi.write(sys.argv[2])
    timings = []
    for _ in range(int(sys.argv[4])):
        started = time.perf_counter()
        predict(sys.argv[1], model)
        timings.append(time.perf_counter() - started)
print(json.dumps(timings))
'''


def bench_file(seconds: int) -> Path:
    """data/bench/piece-SECONDSs.mp3: a procedural piano piece, 44.1 kHz stereo 128 kbit/s (made once, then cached)."""
    path = BENCH_DIR / f"piece-{seconds}s.mp3"
    if path.is_file():
        return path
    from pipeline.audio import ffmpeg_exe
    from pipeline.procedural import generate_piece
    from pipeline.render import default_soundfont, render

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    print(f"rendering {path.relative_to(ROOT)} ...", file=sys.stderr)
    audio = render(list(generate_piece(PIECE_SEED, duration_s=seconds).parts), seconds, soundfont=default_soundfont())
    partial = path.with_name(path.name + ".partial.mp3")
    command = [ffmpeg_exe(), "-v", "error", "-y", "-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", "-",
               "-ar", str(SONG_RATE), "-ac", str(SONG_CHANNELS), "-b:a", SONG_BITRATE, str(partial)]
    subprocess.run(command, input=audio.astype("<f4").tobytes(), check=True)
    os.replace(partial, path)
    return path


def in_process(path: Path, repeats: int) -> dict[str, float]:
    """Median wall seconds of each stage of ours, and of the whole ``transcribe()``, on one file, in this process."""
    import torch

    from model.decoding import decode
    from model.inference import activations
    from model.transcribe import load_model, transcribe
    from pipeline.allocator import keep_freed_memory
    from pipeline.audio import load_audio
    from pipeline.features import spectrogram

    torch.set_num_threads(THREADS)
    keep_freed_memory()  # as `python -m model transcribe` does (transcribe() itself leaves the allocator alone)
    model, thresholds = load_model()
    timings: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "transcribe")}
    for repeat in range(repeats + 1):  # the first run is a warm-up: CQT filters, oneDNN kernels
        marks = [time.perf_counter()]
        samples = load_audio(path)
        marks.append(time.perf_counter())
        features = spectrogram(samples)
        marks.append(time.perf_counter())
        heads = activations(model, features)
        marks.append(time.perf_counter())
        decode(heads["onset"], heads["frame"], offsets=heads["offset"], velocities=heads["velocity"], **thresholds)
        marks.append(time.perf_counter())
        del samples, features, heads
        transcribe(path)
        marks.append(time.perf_counter())
        if repeat:
            for stage, begin, end in zip(timings, marks, marks[1:]):
                timings[stage].append(end - begin)
    return {stage: statistics.median(values) for stage, values in timings.items()}


def whole_process(command: list[str], repeats: int, *, cwd: Path = ROOT) -> dict[str, float]:
    """Median wall seconds and the largest peak RSS (MB) of ``command``, run ``repeats`` times under /usr/bin/time."""
    walls, peaks = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run([TIME_BINARY, "-v", *command], cwd=cwd, capture_output=True, text=True,
                                env=_thread_env())
        walls.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise Mp3MidiError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
        peaks.append(_peak_rss_mb(result.stderr))
    return {"wall_s": statistics.median(walls), "peak_rss_mb": max(peaks)}


def _peak_rss_mb(time_report: str) -> float:
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_report)
    if not match:
        raise Mp3MidiError(f"no peak RSS in /usr/bin/time's report:\n{time_report[-1000:]}")
    return int(match.group(1)) / 1024


def _thread_env() -> dict:
    return {**os.environ, **{name: str(THREADS) for name in THREAD_ENV_VARS}}


def ours_command(path: Path, out: Path, python: Path | str = sys.executable) -> list[str]:
    return [str(python), "-m", "model", "transcribe", str(path), "-o", str(out)]


def basic_pitch(path: Path, out: Path, script: Path, repeats: int) -> tuple[float, dict[str, float]]:
    """(median seconds of basic-pitch's predict() in process, its whole-process figures) on one file."""
    command = [str(VENV_PYTHON), str(script), str(path), str(out), str(THREADS)]
    process = whole_process([*command, "0"], repeats)
    result = subprocess.run([*command, str(repeats)], cwd=ROOT, capture_output=True, text=True, env=_thread_env())
    if result.returncode != 0:
        raise Mp3MidiError(f"basic-pitch failed on {path.name}:\n{result.stderr[-2000:]}")
    return statistics.median(json.loads(result.stdout.strip().splitlines()[-1])), process


def markdown(results: dict) -> str:
    rows, before = results["rows"], results["before"]
    lines = ["In one process, after imports, model load and a warm-up (audio seconds per wall second):", "",
             "| file | " + " | ".join(STAGE_NAMES[stage] for stage in STAGES)
             + " | **ours: stages** | **ours: `transcribe()`** | **basic-pitch: `predict()`** |",
             "|---|" + "---:|" * (len(STAGES) + 3)]
    for row in rows:
        seconds, timing = row["seconds"], row["in_process"]
        cells = [_speed(seconds, timing[stage]) for stage in STAGES]
        cells += [_bold(_speed(seconds, sum(timing[stage] for stage in STAGES))),
                  _bold(_speed(seconds, timing["transcribe"])), _bold(_speed(seconds, row.get("basic_pitch_s")))]
        lines.append(f"| {_length(seconds)} | " + " | ".join(cells) + " |")
    header = ["file", "ours", "peak RSS", "basic-pitch", "peak RSS"] + (["ours before", "peak RSS"] if before else [])
    lines += ["", "Whole processes, interpreter start to exit (wall seconds; peak RSS):", "",
              "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows + ([results["long"]] if results["long"] else []):
        cells = _process_cells(row["seconds"], row["ours_process"])
        cells += _process_cells(row["seconds"], row.get("basic_pitch_process"))
        if before:
            cells += _process_cells(row["seconds"], row.get("before_process"))
        lines.append(f"| {_length(row['seconds'])} | " + " | ".join(cells) + " |")
    start_up = results["start_up"]
    lines += ["", f"Start-up alone (imports and model load, no audio, exiting as the CLI does): "
                  f"{start_up['wall_s']:.2f} s, peak RSS {start_up['peak_rss_mb']:.0f} MB."]
    return "\n".join(lines)


def _bold(text: str) -> str:
    return f"**{text}**" if text else ""


def _speed(seconds: float, wall_s: float | None) -> str:
    return "" if wall_s is None else f"{seconds / wall_s:,.0f}x"


def _process_cells(seconds: float, figures: dict | None) -> list[str]:
    if not figures:
        return ["", ""]
    return [f"{figures['wall_s']:.2f} s ({seconds / figures['wall_s']:.0f}x)", f"{figures['peak_rss_mb']:.0f} MB"]


def _length(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=list(DEFAULT_LENGTHS_S), help="file lengths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long", type=int, default=None, nargs="?", const=LONG_S, metavar="SECONDS",
                        help=f"also one whole process of ours on a file this long (default {LONG_S})")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also whole processes of ours from this checkout (same venv)")
    parser.add_argument("--no-basic-pitch", action="store_true", help="measure our model only")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write every figure here")
    args = parser.parse_args(argv)
    try:
        results = run(args)
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def run(args) -> dict:
    print(f"# {platform.machine()}, {os.cpu_count()} cores, {THREADS} threads, {time.strftime('%Y-%m-%d')}",
          file=sys.stderr)
    files = {seconds: bench_file(seconds) for seconds in args.seconds}
    long_path = bench_file(args.long) if args.long else None
    if not args.no_basic_pitch:
        _ensure_venv()
    results = {"machine": platform.machine(), "cores": os.cpu_count(), "threads": THREADS,
               "date": time.strftime("%Y-%m-%d"), "rows": [], "long": None, "before": str(args.before or "")}
    with tempfile.TemporaryDirectory(prefix="bench-transcribe-") as scratch:
        scratch = Path(scratch)
        script = scratch / "basic_pitch_one_file.py"
        script.write_text(BASIC_PITCH_ONE_FILE, encoding="utf-8")
        results["start_up"] = whole_process([sys.executable, "-c", START_UP], args.repeats)
        for seconds, path in files.items():
            row = {"seconds": seconds, "file": str(path.relative_to(ROOT))}
            print(f"{path.name}: ours in process, as a process ...", file=sys.stderr)
            row["in_process"] = in_process(path, args.repeats)
            row["ours_process"] = whole_process(ours_command(path, scratch / "ours.mid"), args.repeats)
            if args.before:
                row["before_process"] = whole_process(ours_command(path, scratch / "before.mid"), args.repeats,
                                                      cwd=args.before)
            if not args.no_basic_pitch:
                print(f"{path.name}: basic-pitch ...", file=sys.stderr)
                row["basic_pitch_s"], row["basic_pitch_process"] = basic_pitch(
                    path, scratch / "theirs.mid", script, args.repeats)
            results["rows"].append(row)
        if long_path:
            print(f"{long_path.name}: ours as a process ...", file=sys.stderr)
            results["long"] = {"seconds": args.long, "file": str(long_path.relative_to(ROOT)),
                               "ours_process": whole_process(ours_command(long_path, scratch / "long.mid"), 1)}
            if args.before:
                results["long"]["before_process"] = whole_process(
                    ours_command(long_path, scratch / "long-before.mid"), 1, cwd=args.before)
    return results


if __name__ == "__main__":
    sys.exit(main())
