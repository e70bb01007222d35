"""Decoding thresholds chosen from data: the points of the onset and frame precision-recall curves with the best F1.

A network's probabilities are not calibrated to 0.5 (rare onsets sit lower, weighted losses push them higher), so
every evaluation picks the thresholds on validation items and the checkpoint carries them; transcription uses
them unless the user moves a slider.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import Mp3MidiError

DEFAULT_THRESHOLDS = {"onset_threshold": 0.5, "frame_threshold": 0.3}
# The expression rules of model.decoding.decode (hysteresis, re-strike evidence, semitone fragments, blips), chosen
# on real sung recordings kept for tuning and checked on synthesized instruments from a soundfont never heard (see
# docs/MODEL_CARD.md, "Real singing"). DEFAULT_RULES are what every transcription gets: the two rules that helped
# the voices without hurting the instruments. A checkpoint may carry its own values under the same names in its
# metrics, as it does the thresholds (``model calibrate`` writes them). MONO_RULES go with ``mono`` (one note at a
# time): the voice's full set, which splits fewer held notes but merges legato repeats on other instruments. They
# were chosen again on the same tune half for the 2026-12-01 default model, whose onset peaks at tongued repeats are
# lower (0.87-0.93, so a re-strike threshold of 0.95 merged them); the first model's were gap 300 ms, re-strike 0.95.
DEFAULT_RULES = {"gap_ms": 50.0, "restrike_threshold": 0.0, "fragment_ms": 0.0, "min_sounding_ms": 20.0}
MONO_RULES = {"gap_ms": 100.0, "restrike_threshold": 0.8, "fragment_ms": 240.0, "min_sounding_ms": 50.0}
RULES_OFF = {"gap_ms": 0.0, "restrike_threshold": 0.0, "fragment_ms": 0.0, "min_sounding_ms": 0.0}  # as before


def rules_for(*, mono: bool, polyphonic: dict | None = None, **given) -> dict:
    """decode() keywords for the expression rules: each knob in ``given`` that is not None, else the mode's preset
    (MONO_RULES with ``mono``; otherwise ``polyphonic``, a checkpoint's rules, or DEFAULT_RULES)."""
    unknown = sorted(set(given) - set(DEFAULT_RULES))
    if unknown:
        raise Mp3MidiError(f"unknown decoding rule(s) {', '.join(unknown)}; the rules are {', '.join(DEFAULT_RULES)}")
    preset = MONO_RULES if mono else {**DEFAULT_RULES, **{k: v for k, v in (polyphonic or {}).items()
                                                          if k in DEFAULT_RULES}}
    return {key: preset[key] if given.get(key) is None else given[key] for key in DEFAULT_RULES}


DECODING_SETTINGS = {**DEFAULT_THRESHOLDS, **DEFAULT_RULES}
MAX_CELLS = 2_000_000  # cells sampled per curve: enough for a stable curve, quick to sort
BOUNDS = (0.05, 0.95)


def best_threshold(probabilities: np.ndarray, targets: np.ndarray, *, seed: int = 0) -> float:
    """The threshold with the highest F1 on the precision-recall curve of ``probabilities`` against 0/1 ``targets``."""
    from sklearn.metrics import precision_recall_curve  # imported here: transcription reads only DEFAULT_THRESHOLDS

    probabilities, targets = probabilities.ravel(), targets.ravel()
    if probabilities.size > MAX_CELLS:
        keep = np.random.default_rng(seed).choice(probabilities.size, MAX_CELLS, replace=False)
        probabilities, targets = probabilities[keep], targets[keep]
    if not targets.any():
        return float("nan")
    precision, recall, thresholds = precision_recall_curve(targets, probabilities)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-9)
    return float(np.clip(thresholds[int(np.argmax(f1))], *BOUNDS))


def choose_thresholds(activations: list[dict[str, np.ndarray]], rolls: list[dict[str, np.ndarray]]) -> dict:
    """activations and label rolls of the same items ([frames, 88] each) -> decode() threshold keywords."""
    from .data import widen  # imported here: model.data brings the catalog (DuckDB) along

    onsets = best_threshold(np.concatenate([a["onset"] for a in activations]),
                            np.concatenate([widen(r["onset"]) for r in rolls]))
    frames = best_threshold(np.concatenate([a["frame"] for a in activations]),
                            np.concatenate([r["frame"] for r in rolls]))
    chosen = {"onset_threshold": onsets, "frame_threshold": frames}
    return {key: DEFAULT_THRESHOLDS[key] if np.isnan(value) else value for key, value in chosen.items()}


def calibrate(checkpoint: str | Path, datasets: list[str], *, data_dir: str | Path = "data",
              splits: tuple[str, ...] = ("validation",)) -> dict:
    """Choose thresholds on the items of ``datasets`` in ``splits`` (validation: never trained on; a user's own
    recordings may use all of theirs) and store them in the checkpoint file, with the scores of notes decoded at
    those thresholds on the same items (so what it shows is what it does), and with the expression rules of
    decoding it keeps from now on (its own values if it has them, else ``DEFAULT_RULES``)."""
    from .checkpoints import load_checkpoint, model_from_checkpoint, write_payload
    from .data import load_items, reference_notes
    from .decoding import decode
    from .inference import activations
    from .metrics import mean_scores, score_notes

    payload = load_checkpoint(checkpoint)
    model = model_from_checkpoint(payload)
    items = [item for split in splits for item in load_items(data_dir, datasets, split)]
    if not items:
        raise Mp3MidiError(f"the {' and '.join(splits)} split of {', '.join(datasets)} holds no items")
    outputs = [activations(model, item.features) for item in items]
    thresholds = choose_thresholds(outputs, [item.rolls for item in items])
    metrics = payload.get("metrics", {})
    settings = {**{key: float(metrics.get(key, value)) for key, value in DEFAULT_RULES.items()}, **thresholds}
    scores = mean_scores([
        score_notes(reference_notes(item), decode(out["onset"], out["frame"], offsets=out["offset"],
                                                  velocities=out["velocity"], **settings), duration_s=item.duration_s)
        for item, out in zip(items, outputs)])
    measured = {"onset_f1": scores.onset_f1, "offset_f1": scores.offset_f1, "frame_f1": scores.frame_f1,
                "velocity_f1": scores.velocity_f1}
    payload["metrics"] = {**metrics, **settings, **measured,
                          "calibrated_on": list(datasets), "calibration_splits": list(splits),
                          "calibration_items": len(items)}
    write_payload(checkpoint, payload)
    return {**settings, **measured}
