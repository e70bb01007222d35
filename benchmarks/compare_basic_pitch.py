"""Our model against Spotify's basic-pitch on the same folder, scored by the same code, side by side.

Run by hand with the project venv:
    .venv/bin/python benchmarks/compare_basic_pitch.py --folder DIR [--checkpoint PATH] [--json OUT]
DIR holds audio files (.mp3 .wav .flac .ogg .m4a, in sub-folders or not), each with a reference ``.mid`` of the
same stem beside it: the layout ``python -m model evaluate --folder`` reads.

Why a venv of its own: basic-pitch 0.4.0 declares tensorflow<2.15.1 on Python 3.11, which cannot sit beside our
numpy and torch, and it only needs TensorFlow for formats we do not use. So the first run makes
``benchmarks/.venv-basic-pitch`` (ignored by git) and installs basic-pitch there with ``--no-deps`` plus, pinned,
the packages its inference path imports; onnxruntime runs its bundled ``nmp.onnx`` (no network at run time).
Later runs find it importable and skip the install.

How:
  1. A small helper (``HELPER`` below, written to a temporary file) runs in that venv. It loads the ONNX model once,
     transcribes a short sine tone to pay the one-time costs (numba compilation, about 20 s on a cold cache) outside
     the timings, then calls ``basic_pitch.inference.predict`` with its default thresholds on every file and writes
     the MIDI into a temporary folder that mirrors the input layout, timing each file.
  2. Its MIDI is scored against the reference exactly as our model is: both read with ``read_midi(...).pitched_notes``,
     compared by ``score_notes``, grouped by sub-folder and averaged by ``model.evaluate.report``. A file for which
     basic-pitch failed or wrote no notes counts as one with no notes.
  3. Our model is scored by ``model.evaluate.evaluate_folder`` itself (each file through ``model.transcribe``, as
     users run it), timed in this process.
  4. A markdown table: per group and overall, onset F1, note-with-offset F1 and frame F1 of both systems; then each
     system's wall time and audio seconds per wall second.

What the timings cover: basic-pitch's is the sum of its per-file times (decode, inference, note creation, MIDI
write), after imports, model load and warm-up, which are reported apart as its setup. Ours is the whole
``evaluate_folder`` call (checkpoint load, decode, features, inference, decoding and the few milliseconds of
scoring) after imports. ``--threads N`` gives both the same number of CPU threads (onnxruntime's and the BLAS pools
for basic-pitch, torch's for ours); by default each library picks its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.realdev_errors import mean_with_interval
from model.checkpoints import DEFAULT_CHECKPOINT
from model.evaluate import evaluate_folder, folder_group, format_report, report
from model.metrics import score_notes
from pipeline.errors import Mp3MidiError
from pipeline.midi_io import read_midi
from pipeline.recordings import recording_pairs

ROOT = Path(__file__).resolve().parents[1]
VENV_DIR = Path(__file__).resolve().parent / ".venv-basic-pitch"
VENV_PYTHON = VENV_DIR / "bin" / "python"
BASIC_PITCH_VERSION = "0.4.0"
BASIC_PITCH_REQUIREMENT = f"basic-pitch=={BASIC_PITCH_VERSION}"  # with --no-deps: its metadata wants TensorFlow
# What basic-pitch's ONNX inference path imports, pinned (the numerical stack at the project's own versions).
RUNTIME_REQUIREMENTS = (
    "onnxruntime==1.30.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "librosa==0.11.0",
    "soxr==1.1.0",
    "soundfile==0.14.0",
    "numba==0.68.1",
    "llvmlite==0.50.0",
    "resampy==0.4.2",  # basic-pitch 0.4.0 requires resampy<0.4.3
    "scikit-learn==1.9.1",
    "mir_eval==0.8.2",
    "pretty_midi==0.2.11.post0",
    "mido==1.3.3",
    "typing_extensions==4.16.0",
)
IMPORT_CHECK = "import basic_pitch.inference, onnxruntime"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
WARMUP_SECONDS = 2.0  # length of the sine tone basic-pitch transcribes once before the timed files
WARMUP_HZ = 440.0
WARMUP_AMPLITUDE = 0.5
BASIC_PITCH_MIN_NOTE_MS = 127.70  # predict()'s default minimum_note_length
EXIT_USAGE = 2
BOOTSTRAP_RESAMPLES = 1000  # for the overall means' 95 % intervals
METRICS = (("onset_f1", "onset F1"), ("offset_f1", "note+offset F1"), ("frame_f1", "frame F1"))
SYSTEMS = ("ours", "basic_pitch")
SYSTEM_NAMES = {"ours": "our model", "basic_pitch": f"basic-pitch {BASIC_PITCH_VERSION}"}

# Runs inside the basic-pitch venv: python HELPER JOB.json. The job names the folder, the audio files (relative
# paths), the output folder and the thread count; the helper writes its timings to the job's result path.
HELPER = r'''
import contextlib, json, logging, sys, tempfile, time
from pathlib import Path


def main(job_path):
    job = json.loads(Path(job_path).read_text())
    folder, out_dir = Path(job["folder"]), Path(job["out_dir"])
    started = time.perf_counter()
    logging.disable(logging.WARNING)  # import-time warnings about the TensorFlow, CoreML and TFLite we do not use
    with contextlib.redirect_stdout(sys.stderr):  # predict() prints "Predicting MIDI for ..." to stdout
        import numpy as np
        import onnxruntime
        import soundfile
        from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
        from basic_pitch.constants import AUDIO_SAMPLE_RATE
        from basic_pitch.inference import Model, predict

        model_path = build_icassp_2022_model_path(FilenameSuffix.onnx)
        model = Model(model_path)
        if job["threads"]:  # Model() builds its session with onnxruntime's default pool; rebuild it with ours
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = job["threads"]
            options.inter_op_num_threads = 1
            model.model = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        with tempfile.TemporaryDirectory() as scratch:
            tone = Path(scratch) / "warmup.wav"
            seconds = np.arange(int(job["warmup_seconds"] * AUDIO_SAMPLE_RATE)) / AUDIO_SAMPLE_RATE
            soundfile.write(str(tone), job["warmup_amplitude"] * np.sin(2 * np.pi * job["warmup_hz"] * seconds),
                            AUDIO_SAMPLE_RATE)
            predict(tone, model)
        setup_s = time.perf_counter() - started
        print(f"basic-pitch: model {model_path.name} loaded and warmed up in {setup_s:.1f} s", file=sys.stderr)

        files = []
        for index, relative in enumerate(job["audio"], start=1):
            record = {"audio": relative, "midi": None, "notes": 0, "error": None}
            file_started = time.perf_counter()
            try:
                if job.get("grid"):  # the network once, then its note creation at each (onset, frame) threshold pair
                    from basic_pitch.constants import FFT_HOP
                    from basic_pitch.inference import run_inference
                    from basic_pitch.note_creation import model_output_to_notes

                    output = run_inference(folder / relative, model)
                    min_note_len = int(np.round(job["min_note_ms"] / 1000 * (AUDIO_SAMPLE_RATE / FFT_HOP)))
                    record["grid"] = {}
                    for onset, frame in job["grid"]:
                        midi_data, note_events = model_output_to_notes(
                            output, onset_thresh=onset, frame_thresh=frame, min_note_len=min_note_len)
                        out = out_dir / f"onset{onset:g}-frame{frame:g}" / Path(relative).with_suffix(".mid")
                        out.parent.mkdir(parents=True, exist_ok=True)
                        midi_data.write(str(out))
                        record["grid"][f"{onset:g},{frame:g}"] = str(out)
                    record.update(notes=len(note_events))
                else:
                    _, midi_data, note_events = predict(folder / relative, model)  # default thresholds
                    out = out_dir / Path(relative).with_suffix(".mid")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    midi_data.write(str(out))
                    record.update(midi=str(out), notes=len(note_events))
            except Exception as exc:  # one bad file must not end the run: it is scored as no notes
                record["error"] = f"{type(exc).__name__}: {exc}"
            record["seconds"] = time.perf_counter() - file_started
            files.append(record)
            outcome = record["error"] or f"{record['notes']} notes"
            print(f"basic-pitch [{index}/{len(job['audio'])}] {relative}: {outcome} in {record['seconds']:.2f} s",
                  file=sys.stderr)
    result = {"model": str(model_path), "setup_s": setup_s, "files": files,
              "total_s": sum(record["seconds"] for record in files)}
    Path(job["result_path"]).write_text(json.dumps(result, indent=2))


main(sys.argv[1])
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", required=True,
                        help="audio files with a reference .mid of the same stem beside each")
    parser.add_argument("--checkpoint", default=None,
                        help=f"our model (default: {DEFAULT_CHECKPOINT.relative_to(ROOT)})")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write both full reports and the timings here")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both systems (default: each library's own)")
    parser.add_argument("--keep-midi", metavar="DIR",
                        help="keep basic-pitch's MIDI here (default: a temporary folder)")
    args = parser.parse_args(argv)
    try:
        return _compare(args)
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _compare(args) -> int:
    folder = Path(args.folder).resolve()
    checkpoint = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
    if not checkpoint.is_file():  # checked first: basic-pitch's run is the slow part, not worth doing for nothing
        raise Mp3MidiError(f"no checkpoint at {str(checkpoint)!r}; train one or pass --checkpoint PATH")
    pairs = recording_pairs(folder)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    install_s = _ensure_venv()
    with tempfile.TemporaryDirectory(prefix="basic-pitch-") as scratch:
        out_dir = Path(args.keep_midi).resolve() if args.keep_midi else Path(scratch) / "midi"
        basic_pitch = _run_basic_pitch(folder, [audio for audio, _ in pairs], out_dir, Path(scratch), args.threads)
        basic_pitch["report"] = _score_basic_pitch(folder, pairs, basic_pitch["files"])
        basic_pitch["model"] = _shown(basic_pitch["model"], Path(scratch))
        for record in basic_pitch["files"]:
            record["midi"] = record["midi"] and _shown(record["midi"], Path(scratch))

    print(f"our model: evaluating {checkpoint} ...", file=sys.stderr)
    started = time.perf_counter()
    ours_report = evaluate_folder(checkpoint, folder)
    ours = {"checkpoint": _shown(checkpoint), "total_s": time.perf_counter() - started, "report": ours_report}

    audio_s = sum(_duration_s(audio) for audio, _ in pairs)
    results = {"folder": _shown(folder), "audio_s": audio_s, "threads": args.threads, "install_s": install_s,
               "ours": ours, "basic_pitch": basic_pitch}
    for system in SYSTEMS:
        print(f"\n{SYSTEM_NAMES[system]}\n{format_report(results[system]['report'])}")
    print()
    print(markdown_table(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def _shown(path: str | Path, scratch: Path | None = None) -> str:
    """A path as the report gives it: relative to the project, "(scratch)/..." inside the run's temporary folder
    (gone once the run ends), else as it is; so a committed report names no one's machine."""
    path = Path(path).resolve()
    for base, label in ((scratch, "(scratch)"), (ROOT, None)):
        if base is not None and path.is_relative_to(base.resolve()):
            relative = path.relative_to(base.resolve())
            return f"{label}/{relative}" if label else str(relative)
    return str(path)


def _ensure_venv() -> float:
    """Make the basic-pitch venv and install into it unless basic-pitch already imports there. Returns seconds spent."""
    if VENV_PYTHON.is_file() and _venv_imports_basic_pitch():
        return 0.0
    started = time.perf_counter()
    print(f"basic-pitch: installing {BASIC_PITCH_REQUIREMENT} into {VENV_DIR} (once) ...", file=sys.stderr)
    if not VENV_PYTHON.is_file():
        # This interpreter (3.11, the project's) rather than whatever python3 is on PATH: the pins are for 3.11.
        _run([sys.executable, "-m", "venv", str(VENV_DIR)], "creating the venv")
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, *RUNTIME_REQUIREMENTS], "installing basic-pitch's runtime dependencies")
    _run([*pip, "--no-deps", BASIC_PITCH_REQUIREMENT], f"installing {BASIC_PITCH_REQUIREMENT}")
    if not _venv_imports_basic_pitch():
        raise Mp3MidiError(f"basic-pitch still does not import in {VENV_DIR} after installing it")
    elapsed = time.perf_counter() - started
    print(f"basic-pitch: installed in {elapsed:.0f} s", file=sys.stderr)
    return elapsed


def _venv_imports_basic_pitch() -> bool:
    check = subprocess.run([str(VENV_PYTHON), "-c", IMPORT_CHECK], capture_output=True, check=False)
    return check.returncode == 0


def _run(command: list[str], what: str) -> None:
    if subprocess.run(command, check=False).returncode != 0:
        raise Mp3MidiError(f"{what} failed (see the output above)")


def _run_basic_pitch(folder: Path, audio: list[Path], out_dir: Path, scratch: Path, threads: int | None,
                     grid: list[tuple[float, float]] | None = None) -> dict:
    """Transcribe every file with basic-pitch in its venv. Returns the helper's result: setup_s, total_s, files.

    With ``grid`` ((onset, frame) threshold pairs), its network runs once per file and its note creation once per
    pair (minimum note length at its default), into ``out_dir/onset{o}-frame{f}/``; each file's record then maps
    "o,f" to its MIDI under "grid"."""
    helper, job_path, result_path = scratch / "basic_pitch_helper.py", scratch / "job.json", scratch / "result.json"
    helper.write_text(HELPER, encoding="utf-8")
    job = {"folder": str(folder), "audio": [str(path.relative_to(folder)) for path in audio], "out_dir": str(out_dir),
           "threads": threads, "result_path": str(result_path), "warmup_seconds": WARMUP_SECONDS,
           "warmup_hz": WARMUP_HZ, "warmup_amplitude": WARMUP_AMPLITUDE, "grid": grid,
           "min_note_ms": BASIC_PITCH_MIN_NOTE_MS}
    job_path.write_text(json.dumps(job), encoding="utf-8")
    environment = dict(os.environ)
    if threads:
        environment.update({name: str(threads) for name in THREAD_ENV_VARS})
    if subprocess.run([str(VENV_PYTHON), str(helper), str(job_path)], env=environment, check=False).returncode != 0:
        raise Mp3MidiError("the basic-pitch helper failed (see the output above)")
    return json.loads(result_path.read_text(encoding="utf-8"))


def _score_basic_pitch(folder: Path, pairs: list[tuple[Path, Path]], files: list[dict]) -> dict:
    """basic-pitch's MIDI against the reference, row for row as ``evaluate_folder`` scores our model."""
    midi_of = {record["audio"]: record["midi"] for record in files}
    failed = [record["audio"] for record in files if record["error"]]
    if failed:
        print(f"basic-pitch failed on {len(failed)} file(s), scored as no notes: {', '.join(failed)}", file=sys.stderr)
    rows = []
    for audio_path, midi_path in pairs:
        name = str(audio_path.relative_to(folder))
        reference = read_midi(midi_path).pitched_notes
        estimated = []
        if midi_of.get(name):
            try:
                estimated = read_midi(midi_of[name]).pitched_notes
            except Mp3MidiError:  # "MIDI has no notes": basic-pitch heard nothing
                estimated = []
        rows.append((name, folder_group(audio_path, folder), score_notes(reference, estimated)))
    return report(rows)


def _duration_s(path: Path) -> float:
    """Seconds of audio: from the header where libsndfile reads it, else by decoding (M4A and the like)."""
    import soundfile

    try:
        return float(soundfile.info(str(path)).duration)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        from pipeline.audio import load_audio
        from pipeline.constants import SAMPLE_RATE

        return len(load_audio(path)) / SAMPLE_RATE


def markdown_table(results: dict) -> str:
    """Scores per group and overall for both systems side by side, then each system's speed."""
    header = ["group", "items"] + [f"{label} {SYSTEM_NAMES[system]}" for _, label in METRICS for system in SYSTEMS]
    lines = [f"Folder `{results['folder']}`: {len(results['ours']['report']['items'])} files, "
             f"{results['audio_s']:.1f} s of audio; our checkpoint `{results['ours']['checkpoint']}`.", "",
             _row(header), _row(["---"] + ["---:"] * (len(header) - 1))]
    reports = {system: results[system]["report"] for system in SYSTEMS}
    groups = [(name, reports["ours"]["groups"][name]["items"], {s: reports[s]["groups"][name] for s in SYSTEMS})
              for name in reports["ours"]["groups"]]
    groups.append(("**overall**", len(reports["ours"]["items"]), {s: reports[s]["overall"] for s in SYSTEMS}))
    for name, items, scores in groups:
        cells = [f"{scores[system][key]:.3f}" for key, _ in METRICS for system in SYSTEMS]
        lines.append(_row([name, str(items), *cells]))

    lines += ["", f"Overall, bootstrap 95 % interval of the mean over files ({BOOTSTRAP_RESAMPLES} resamples):"]
    for system in SYSTEMS:
        items = reports[system]["items"]
        spans = [mean_with_interval([item[key] for item in items], resamples=BOOTSTRAP_RESAMPLES)
                 for key, _ in METRICS]
        lines.append(f"- {SYSTEM_NAMES[system]}: " + ", ".join(
            f"{label} {span['mean']:.3f} [{span['low']:.3f}, {span['high']:.3f}]" for (_, label), span in
            zip(METRICS, spans)))
    lines += ["", _row(["system", "wall s", "audio s / wall s", "not timed"]), _row(["---", "---:", "---:", "---"])]
    threads = f"{results['threads']} thread(s)" if results["threads"] else "library default threads"
    setups = {"ours": "imports",
              "basic_pitch": f"imports, model load, warm-up: {results['basic_pitch']['setup_s']:.1f} s"
                             + (f"; install: {results['install_s']:.0f} s" if results["install_s"] else "")}
    for system in SYSTEMS:
        wall_s = results[system]["total_s"]
        speed = results["audio_s"] / wall_s if wall_s > 0 else float("inf")
        lines.append(_row([SYSTEM_NAMES[system], f"{wall_s:.2f}", f"{speed:.1f}", setups[system]]))
    lines += ["", f"CPU, {threads}. basic-pitch with its default thresholds;"
                  " both scored by `model.metrics.score_notes`."]
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    sys.exit(main())
