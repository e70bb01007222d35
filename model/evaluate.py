"""Score a checkpoint with mir_eval: on a dataset split, or on a folder of recordings with reference MIDI beside them.

Results are overall (the mean over items) and per instrument family (solo items by their family, multi-instrument
items under "mix"), plus one row per item.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from pipeline.errors import Mp3MidiError
from pipeline.midi_io import read_midi
from pipeline.recordings import recording_pairs

from .checkpoints import checkpoint_thresholds, load_checkpoint, model_from_checkpoint
from .data import load_items, reference_notes
from .decoding import decode
from .inference import activations
from .metrics import Scores, mean_scores, score_notes
from .thresholds import rules_for
from .transcribe import load_model, transcribe

MIX = "mix"


def _transcribe_features(model, features, **decode_options):
    probabilities = activations(model, features)
    return decode(probabilities["onset"], probabilities["frame"], offsets=probabilities["offset"],
                  velocities=probabilities["velocity"], **decode_options)


def evaluate_dataset(checkpoint: str | Path | None, datasets: list[str], *, split: str = "test",
                     data_dir: str | Path = "data", **decode_options) -> dict:
    payload = load_checkpoint(checkpoint)
    settings = checkpoint_thresholds(payload)
    rules = rules_for(mono=bool(decode_options.get("mono")), polyphonic=settings)
    model, decode_options = model_from_checkpoint(payload), {**settings, **rules, **decode_options}
    items = load_items(data_dir, datasets, split)
    if not items:
        raise Mp3MidiError(f"the {split} split of {', '.join(datasets)} holds no items")
    rows = []
    for item in items:
        scores = score_notes(reference_notes(item), _transcribe_features(model, item.features, **decode_options),
                             duration_s=item.duration_s)
        group = MIX if item.is_mix else (item.families[0] if item.families else "unknown")
        rows.append((item.item_id, group, scores))
    return report(rows)


def evaluate_folder(checkpoint: str | Path | None, folder: str | Path, **decode_options) -> dict:
    """Every audio file in ``folder`` (recursively) that has a ``.mid`` with the same stem beside it, transcribed
    by ``model.transcribe.transcribe`` (what users get: the same streaming, network and decoding), with the
    checkpoint's decoding settings unless ``decode_options`` (onset_threshold, frame_threshold, min_note_ms, mono)
    say otherwise.

    A pair that cannot be read (audio that does not decode, a broken reference) is left out of the scores and
    listed under "failed" with its reason; the others are still scored. Raises when no pair can be scored.
    """
    load_model(checkpoint)  # a bad checkpoint is reported before any file is read
    folder = Path(folder).expanduser()
    rows, failed = [], []
    for audio_path, midi_path in recording_pairs(folder):
        name = str(audio_path.relative_to(folder))
        try:
            reference = read_midi(midi_path).pitched_notes
            estimated = transcribe(audio_path, checkpoint=checkpoint, **decode_options).notes
        except Mp3MidiError as exc:
            failed.append({"item": name, "error": str(exc)})
            continue
        rows.append((name, folder_group(audio_path, folder), score_notes(reference, estimated)))
    if not rows:
        raise Mp3MidiError(f"no file in {str(folder)!r} could be scored; first failure: {failed[0]['error']}")
    return {**report(rows), "failed": failed}


def folder_group(audio_path: Path, folder: Path) -> str:
    """Files are grouped by the sub-folder they lie in ("all" for files at the top)."""
    return audio_path.parent.name if audio_path.parent != folder else "all"


def report(rows: list[tuple[str, str, Scores]]) -> dict:
    """rows of (item, group, scores) -> {"overall", "groups", "items"}, means over items."""
    groups: dict[str, list[Scores]] = defaultdict(list)
    for _, group, scores in rows:
        groups[group].append(scores)
    return {
        "overall": asdict(mean_scores([scores for _, _, scores in rows])),
        "groups": {group: {**asdict(mean_scores(scores)), "items": len(scores)} for group, scores in sorted(groups.items())},
        "items": [{"item": name, "group": group, **asdict(scores)} for name, group, scores in rows],
    }


def format_report(report: dict) -> str:
    lines = [f"{'group':<22}{'items':>6}{'onset F1':>10}{'offset F1':>11}{'frame F1':>10}{'vel. F1':>9}"]
    overall = {**report["overall"], "items": len(report["items"])}
    for name, scores in [*report["groups"].items(), ("overall", overall)]:
        lines.append(f"{name:<22}{scores['items']:>6}{scores['onset_f1']:>10.3f}{scores['offset_f1']:>11.3f}"
                     f"{scores['frame_f1']:>10.3f}{scores['velocity_f1']:>9.3f}")
    for failure in report.get("failed", []):
        lines.append(f"not scored: {failure['item']}: {failure['error']}")
    return "\n".join(lines)
