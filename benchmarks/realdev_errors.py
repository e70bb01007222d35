"""Where a transcriber's errors lie on recordings with reference MIDI: timing, pitch, or notes split in pieces.

Run by hand with the project venv (the project installed into it, as ``make`` does):
    .venv/bin/python benchmarks/realdev_errors.py --folder DIR --halves DIR/halves.csv --half tune \
        [--checkpoint PATH] [--basic-pitch] [--tune-basic-pitch] [--bootstrap 1000] [--json OUT]
DIR holds audio files with a reference ``.mid`` of the same stem beside each (the layout ``python -m model
evaluate --folder`` reads); ``--halves`` is a CSV of ``clip,half`` (clip = the audio's stem) naming which files
are for tuning and which for reporting. ``--half tune|report|all`` picks the files measured.

Systems, each scored by the same code on the same files:
  * ``ours (rules off)``: our network with the decoding of before the expression rules (thresholds of the
    checkpoint, every onset a note); ``ours``: the checkpoint's decoding settings; ``ours --mono``: one note at a
    time with the mono rules. Each as ``model.transcribe.transcribe`` gives it (rules off by ``redecode``).
  * with ``--basic-pitch``: basic-pitch 0.4.0 at its default thresholds, through ``compare_basic_pitch``'s venv;
    with ``--tune-basic-pitch`` also at the (onset, frame) thresholds with the best mean of onset, frame and
    note-with-offset F1 on the ``tune`` half (chosen there whatever ``--half`` says, then applied to the files
    measured).

Measures per file, then the mean over files with a bootstrap 95% interval over files (``--bootstrap`` resamples):
  * onset_f1, frame_f1, offset_f1: ``model.metrics.score_notes`` (mir_eval; pitch within 50 cents, onset 50 ms).
  * onset_only_f1_50/100/150: mir_eval.onset.f_measure on the onset times alone (pitch ignored) at 50, 100 and
    150 ms; estimated onsets closer than ``SAME_ONSET_S`` are one (an octave or a partial struck with the note is a
    pitch error, not a timing one).
  * onset_bias_ms: the median signed time of estimated minus reference onset over the pairs matched pitch-blind at
    150 ms (negative: early).
  * semitone_onset_f1 and pitch_class_onset_f1: onset F1 (50 ms) with the pitch allowed a semitone off, and with
    pitches folded into one octave (octave errors forgiven).
  * notes_ratio: estimated notes per reference note; split_share: the share of reference notes inside which
    (after its first ``SPLIT_GUARD_S``, before its end) at least one more estimated note begins within a semitone
    of its pitch; fragments_per_note: those extra notes per reference note; short_share: the share of estimated
    notes shorter than ``SHORT_NOTE_S``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import warnings
from pathlib import Path

import mir_eval
import numpy as np

from model.checkpoints import DEFAULT_CHECKPOINT
from model.metrics import score_notes
from pipeline.errors import Mp3MidiError
from pipeline.midi_io import read_midi
from pipeline.notes import Note, remove_self_overlaps
from pipeline.recordings import recording_pairs

EXIT_USAGE = 2
HALVES = ("tune", "report", "all")
SAME_ONSET_S = 0.03
ONSET_WINDOWS_S = (0.05, 0.10, 0.15)
BIAS_WINDOW_S = 0.15
SPLIT_GUARD_S = 0.05
SHORT_NOTE_S = 0.10
SEMITONE_CENTS = 101.0  # mir_eval compares pitch distance <= tolerance: a semitone (100 cents) passes
BOOTSTRAP_SEED = 0
BASIC_PITCH_GRID = [(onset, frame) for onset in (0.3, 0.4, 0.5, 0.6, 0.7) for frame in (0.2, 0.3, 0.4, 0.5)]
BASIC_PITCH_DEFAULT = (0.5, 0.3)
MEASURES = ("onset_f1", "frame_f1", "offset_f1", "onset_precision", "onset_recall", "onset_only_f1_50",
            "onset_only_f1_100", "onset_only_f1_150", "onset_bias_ms", "semitone_onset_f1", "pitch_class_onset_f1",
            "notes_ratio", "split_share", "fragments_per_note", "short_share")


def breakdown(reference: list[Note], estimated: list[Note]) -> dict[str, float]:
    """One file's measures (see the module's docstring). Unison doublings are removed from both sides first."""
    reference, estimated = remove_self_overlaps(reference), remove_self_overlaps(estimated)
    scores = score_notes(reference, estimated)
    row = {"onset_f1": scores.onset_f1, "frame_f1": scores.frame_f1, "offset_f1": scores.offset_f1,
           "onset_precision": scores.onset_precision, "onset_recall": scores.onset_recall}
    ref_onsets = np.array(sorted(n.start_s for n in reference))
    est_onsets = _distinct_onsets(np.array(sorted(n.start_s for n in estimated)))
    for window in ONSET_WINDOWS_S:
        row[f"onset_only_f1_{round(window * 1000)}"] = _onset_f1(ref_onsets, est_onsets, window)
    pairs = mir_eval.util.match_events(ref_onsets, est_onsets, BIAS_WINDOW_S) if len(ref_onsets) and len(
        est_onsets) else []
    row["onset_bias_ms"] = (1000.0 * float(np.median([est_onsets[j] - ref_onsets[i] for i, j in pairs]))
                            if pairs else float("nan"))
    row["semitone_onset_f1"] = _note_onset_f1(reference, estimated, pitch_tolerance=SEMITONE_CENTS)
    row["pitch_class_onset_f1"] = _note_onset_f1(_folded(reference), _folded(estimated), pitch_tolerance=50.0)
    fragments, split = _splits(reference, estimated)
    n_reference = max(len(reference), 1)
    row.update(notes_ratio=len(estimated) / n_reference, split_share=split / n_reference,
               fragments_per_note=fragments / n_reference,
               short_share=(sum(n.end_s - n.start_s < SHORT_NOTE_S for n in estimated) / len(estimated)
                            if estimated else 0.0))
    return row


def _distinct_onsets(onsets: np.ndarray) -> np.ndarray:
    """Sorted onset times with any onset within SAME_ONSET_S of the previous kept one dropped."""
    kept: list[float] = []
    for onset in onsets:
        if not kept or onset - kept[-1] >= SAME_ONSET_S:
            kept.append(float(onset))
    return np.array(kept)


def _onset_f1(reference: np.ndarray, estimated: np.ndarray, window: float) -> float:
    if not len(reference) and not len(estimated):
        return 1.0
    if not len(reference) or not len(estimated):
        return 0.0
    return float(mir_eval.onset.f_measure(reference, estimated, window=window)[0])


def _note_onset_f1(reference: list[Note], estimated: list[Note], *, pitch_tolerance: float) -> float:
    if not reference and not estimated:
        return 1.0
    if not reference or not estimated:
        return 0.0
    ref_intervals, ref_pitches = _intervals_and_hz(reference)
    est_intervals, est_pitches = _intervals_and_hz(estimated)
    return float(mir_eval.transcription.precision_recall_f1_overlap(
        ref_intervals, ref_pitches, est_intervals, est_pitches, pitch_tolerance=pitch_tolerance,
        offset_ratio=None)[2])


def _intervals_and_hz(notes: list[Note]) -> tuple[np.ndarray, np.ndarray]:
    intervals = np.array([[max(n.start_s, 0.0), max(n.end_s, max(n.start_s, 0.0) + 1e-6)] for n in notes])
    return intervals, mir_eval.util.midi_to_hz(np.array([n.pitch for n in notes], dtype=float))


def _folded(notes: list[Note]) -> list[Note]:
    """Every note moved into the octave from MIDI 60: only its pitch class is left."""
    return [Note(n.start_s, n.end_s, 60 + n.pitch % 12, n.velocity) for n in notes]


def _splits(reference: list[Note], estimated: list[Note]) -> tuple[int, int]:
    """(estimated notes beginning inside a reference note within a semitone of it, after its first SPLIT_GUARD_S;
    reference notes holding at least one such note)."""
    fragments = split = 0
    starts = np.array([n.start_s for n in estimated])
    pitches = np.array([n.pitch for n in estimated])
    for note in reference:
        inside = ((starts > note.start_s + SPLIT_GUARD_S) & (starts < note.end_s)
                  & (np.abs(pitches - note.pitch) <= 1)) if len(starts) else np.zeros(0, bool)
        count = int(inside.sum())
        fragments += count
        split += count > 0
    return fragments, split


def summary(rows: list[dict[str, float]], *, resamples: int) -> dict[str, dict[str, float]]:
    """Per measure: the mean over files and the bootstrap 95% interval of that mean (files resampled)."""
    return {measure: mean_with_interval([row[measure] for row in rows], resamples=resamples) for measure in MEASURES}


def mean_with_interval(values, *, resamples: int, seed: int = BOOTSTRAP_SEED) -> dict[str, float]:
    """{'mean'} of per-file values (NaN ignored) and, when ``resamples``, its bootstrap 95% interval {'low', 'high'}:
    the files drawn again with replacement ``resamples`` times (seeded, so a table is the same every run)."""
    values = np.asarray(values, dtype=float)
    entry = {"mean": float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")}
    if resamples:
        picks = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
        with warnings.catch_warnings():  # a resample of files that all lack a measure (no matched onset): NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(values[picks], axis=1)
        entry["low"], entry["high"] = (float(v) for v in np.nanpercentile(means, [2.5, 97.5]))
    return entry


def read_halves(path: Path) -> dict[str, str]:
    """clip stem -> 'tune' or 'report', from a CSV with columns clip,half."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            halves = {row["clip"]: row["half"] for row in csv.DictReader(handle)}
    except (OSError, KeyError) as exc:
        raise Mp3MidiError(f"cannot read the halves from {str(path)!r} (a CSV with columns clip,half): {exc}") from None
    odd = sorted({half for half in halves.values()} - {"tune", "report"})
    if odd:
        raise Mp3MidiError(f"halves in {str(path)!r} must be tune or report; got {', '.join(odd)}")
    return halves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", required=True, help="audio files with a reference .mid of the same stem beside each")
    parser.add_argument("--halves", required=True, help="CSV clip,half (tune or report)")
    parser.add_argument("--half", choices=HALVES, nargs="+", default=["tune"],
                        help="files measured, a table for each (default: tune)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--basic-pitch", action="store_true", help="also basic-pitch 0.4.0 at its defaults")
    parser.add_argument("--tune-basic-pitch", action="store_true",
                        help="also basic-pitch at thresholds chosen on the tune half")
    parser.add_argument("--basic-pitch-midi", metavar="DIR",
                        help="keep basic-pitch's MIDI here and reuse it on later runs (default: a temporary folder)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95%% intervals (0: none)")
    parser.add_argument("--json", dest="json_out", metavar="OUT")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args) -> int:
    folder = Path(args.folder).resolve()
    halves = read_halves(Path(args.halves))
    pairs = [(audio, midi) for audio, midi in recording_pairs(folder) if audio.stem in halves]
    if not pairs:
        raise Mp3MidiError(f"no file of {str(folder)!r} is listed in {args.halves}")
    chosen = [pair for pair in pairs if "all" in args.half or halves[pair[0].stem] in args.half]
    references = {audio.stem: read_midi(midi).pitched_notes for audio, midi in pairs}
    systems: dict[str, dict[str, list[Note]]] = _ours(chosen, args.checkpoint)
    choice = None
    if args.basic_pitch or args.tune_basic_pitch:
        tune = [pair for pair in pairs if halves[pair[0].stem] == "tune"] if args.tune_basic_pitch else []
        needed = sorted({*chosen, *tune})
        grid = BASIC_PITCH_GRID if args.tune_basic_pitch else [BASIC_PITCH_DEFAULT]
        estimates = _basic_pitch(folder, [audio for audio, _ in needed], grid, args.basic_pitch_midi)
        systems["basic-pitch (defaults)"] = {stem: by[BASIC_PITCH_DEFAULT] for stem, by in estimates.items()
                                             if any(stem == audio.stem for audio, _ in chosen)}
        if args.tune_basic_pitch:
            choice = _best_pair(estimates, references, [audio.stem for audio, _ in tune], grid)
            systems[f"basic-pitch (tuned: onset {choice[0]:g}, frame {choice[1]:g})"] = {
                stem: by[choice] for stem, by in estimates.items() if any(stem == a.stem for a, _ in chosen)}
    rows = {name: {audio.stem: breakdown(references[audio.stem], notes_of[audio.stem]) for audio, _ in chosen}
            for name, notes_of in systems.items()}
    tables = {}
    for half in args.half:
        stems = [audio.stem for audio, _ in chosen if half == "all" or halves[audio.stem] == half]
        tables[half] = {name: summary([by_stem[s] for s in stems], resamples=args.bootstrap)
                        for name, by_stem in rows.items()}
        print(f"\n{half}: {len(stems)} files; mean over files [bootstrap 95% interval over files]\n")
        print(markdown(tables[half]))
    if args.json_out:
        files = {name: {stem: by_stem[stem] for stem in sorted(by_stem)} for name, by_stem in rows.items()}
        Path(args.json_out).write_text(json.dumps({"basic_pitch_tuned": choice, "tables": tables, "files": files},
                                                  indent=2))
    return 0


def _ours(pairs, checkpoint) -> dict[str, dict[str, list[Note]]]:
    """Our notes per system and file stem: the network once per file, each decoding by ``redecode``."""
    from model.thresholds import RULES_OFF
    from model.transcribe import load_model, transcribe

    checkpoint = checkpoint or DEFAULT_CHECKPOINT
    _, settings = load_model(checkpoint)
    systems = {"ours (rules off)": {}, "ours": {}, "ours --mono": {}}
    for audio, _ in pairs:
        result = transcribe(audio, checkpoint=checkpoint)
        systems["ours"][audio.stem] = result.notes
        systems["ours (rules off)"][audio.stem] = result.redecode(**{**settings, **RULES_OFF}).notes
        systems["ours --mono"][audio.stem] = transcribe(audio, checkpoint=checkpoint, mono=True).notes
    return systems


def _basic_pitch(folder: Path, audio: list[Path], grid, keep: str | None) -> dict[str, dict[tuple, list[Note]]]:
    """basic-pitch's notes per file stem and (onset, frame) thresholds, through compare_basic_pitch's venv; from
    ``keep`` when a previous run left every file's MIDI there."""
    from benchmarks.compare_basic_pitch import _ensure_venv, _run_basic_pitch

    def midi_path(out_dir: Path, onset: float, frame: float, path: Path) -> Path:
        return out_dir / f"onset{onset:g}-frame{frame:g}" / path.relative_to(folder).with_suffix(".mid")

    with tempfile.TemporaryDirectory(prefix="basic-pitch-") as scratch:
        out_dir = Path(keep).resolve() if keep else Path(scratch) / "midi"
        done = out_dir / "done.json"  # the files (and the grid) a previous run finished
        previous = json.loads(done.read_text()) if done.is_file() else {}
        finished = previous.get("files", []) if previous.get("grid") == [list(pair) for pair in grid] else []
        missing = [path for path in audio if str(path) not in finished]
        if missing:
            _ensure_venv()
            _run_basic_pitch(folder, missing, out_dir, Path(scratch), None, grid=grid)
            done.write_text(json.dumps({"grid": [list(pair) for pair in grid],
                                        "files": sorted({*finished, *map(str, missing)})}))
        return {path.stem: {(onset, frame): _notes_or_none(midi_path(out_dir, onset, frame, path))
                            for onset, frame in grid} for path in audio}


def _notes_or_none(midi: Path) -> list[Note]:
    if not midi.is_file():  # basic-pitch failed on the file: scored as no notes
        return []
    try:
        return read_midi(midi).pitched_notes
    except Mp3MidiError:  # "MIDI has no notes"
        return []


def _best_pair(estimates, references, stems, grid) -> tuple[float, float]:
    """The (onset, frame) pair with the best mean of onset, frame and note-with-offset F1 over ``stems``."""
    def objective(pair):
        scores = [score_notes(remove_self_overlaps(references[s]), remove_self_overlaps(estimates[s][pair]))
                  for s in stems]
        return float(np.mean([(x.onset_f1 + x.frame_f1 + x.offset_f1) / 3 for x in scores]))

    return max(grid, key=objective)


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    names = list(results)
    lines = ["| measure | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for measure in MEASURES:
        cells = []
        for name in names:
            entry = results[name][measure]
            digits = 0 if measure.endswith("_ms") else 3
            cell = f"{entry['mean']:.{digits}f}"
            if "low" in entry:
                cell += f" [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"
            cells.append(cell)
        lines.append(f"| {measure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
