"""Self-describing checkpoints: a dict with the weights, the model config, the feature settings, the step, the
optimizer state and the metrics. Never a pickled module, and loaded with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pipeline.errors import Mp3MidiError
from pipeline.features import FEATURE_SETTINGS

from .network import ModelConfig, Transcriber

FORMAT = "mp3-to-midi-checkpoint/1"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default.pt"


def save_checkpoint(path: str | Path, *, model: Transcriber, step: int, metrics: dict, optimizer=None, scaler=None,
                    train_config: dict | None = None) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model_config": model.config.to_dict(),
        "feature_settings": FEATURE_SETTINGS,
        "state_dict": model.state_dict(),
        "step": step,
        "metrics": metrics,
        "train_config": train_config or {},
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if scaler is not None:
        payload["scaler"] = scaler.state_dict()
    write_payload(path, payload)


def write_payload(path: str | Path, payload: dict) -> None:
    """torch.save to a temporary name in the same folder, then rename: a crash never leaves half a checkpoint."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def load_checkpoint(path: str | Path | None = None, *, map_location: str = "cpu") -> dict:
    """Read and check a checkpoint (default: the committed default model). Raises ``Mp3MidiError`` with the reason."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise Mp3MidiError(f"no checkpoint at {str(path)!r}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise Mp3MidiError(f"checkpoint {str(path)!r} is damaged or not a checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise Mp3MidiError(f"{str(path)!r} is not an Mp3-to-MIDI checkpoint")
    if payload["feature_settings"] != FEATURE_SETTINGS:
        raise Mp3MidiError(f"checkpoint {str(path)!r} was trained on other features ({payload['feature_settings']});"
                           f" this version computes {FEATURE_SETTINGS}")
    return payload


def checkpoint_thresholds(payload: dict) -> dict:
    """The decoding settings of this checkpoint: the thresholds chosen for it on validation data and the
    expression rules (``model.thresholds.DECODING_SETTINGS`` where it has none of its own), as decode() keywords."""
    from .thresholds import DECODING_SETTINGS

    metrics = payload.get("metrics", {})
    return {key: float(metrics.get(key, value)) for key, value in DECODING_SETTINGS.items()}


def model_from_checkpoint(payload: dict) -> Transcriber:
    model = Transcriber(ModelConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model
