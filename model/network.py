"""The transcription network: harmonic CQT stack -> 2-D convolutions -> per-key temporal context -> four heads.

Design (reasons in docs/MODEL.md):
- Harmonic stacking (from basic-pitch): the CQT is shifted so that channel h holds, at each key's bins, the energy at
  h times that key's frequency. A note of any instrument then looks the same at every pitch, and small kernels see
  its whole harmonic series.
- Convolutions reduce the 264 bins (3 per key) to 88 keys; dilated convolutions along time then give each key
  about half a second of context, shared by all keys (instrument-agnostic, pitch-agnostic).
- Heads (from Onsets and Frames): onset, offset, velocity, and a frame head conditioned on the onset and offset
  predictions (detached), so a note is only held where it was started.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.constants import BINS_PER_OCTAVE, BINS_PER_SEMITONE, N_BINS, N_KEYS
from pipeline.errors import Mp3MidiError

HEADS = ("onset", "frame", "offset", "velocity")
INITIAL_LOGIT = -3.0  # sigmoid(-3) = 5 %: about how often a key is sounding in a frame
# Onsets and offsets are rare events a frame or two long: weighting their positives keeps the heads from settling
# on "never" (seen in training: onset probabilities stuck near 0.05 at true onsets while frames were learnt).
_POS_WEIGHT = {"onset": torch.tensor(4.0), "offset": torch.tensor(2.0)}


@dataclass(frozen=True)
class ModelConfig:
    harmonics: tuple[float, ...] = (0.5, 1, 2, 3, 4, 5, 6, 7)
    channels: int = 12  # per-bin feature maps
    key_channels: int = 24  # per-key feature maps
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # temporal context blocks: receptive field grows to ~2 * sum frames

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


SIZES = {
    "small": ModelConfig(),
    "base": ModelConfig(channels=20, key_channels=40, dilations=(1, 2, 4, 8, 16)),
}


def config_for(size: str) -> ModelConfig:
    if size not in SIZES:
        raise Mp3MidiError(f"unknown model size {size!r}; choose from {', '.join(SIZES)}")
    return SIZES[size]


def _conv(in_channels: int, out_channels: int, kernel, *, norm: bool = True, **kwargs) -> nn.Sequential:
    """Convolution, batch norm (where affordable), ReLU."""
    if not norm:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, **kwargs), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, bias=False, **kwargs),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class _TemporalBlock(nn.Module):
    """Residual dilated convolution along time, the same for every key."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = _conv(channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class Transcriber(nn.Module):
    """features [batch, frames, N_BINS] -> dict of logits [batch, frames, 88] for each of HEADS."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        self.shifts = [round(BINS_PER_OCTAVE * math.log2(h)) for h in config.harmonics]
        c, k = config.channels, config.key_channels
        # At 264 bins a layer costs three times one at 88 keys, so there is one, without batch norm (a quarter of
        # the step time on a CPU).
        self.front = _conv(len(self.shifts), c, (3, 3), padding=(1, 1), norm=False)
        self.to_keys = _conv(c, k, (3, BINS_PER_SEMITONE), padding=(1, 0), stride=(1, BINS_PER_SEMITONE))
        self.context = nn.Sequential(*[_TemporalBlock(k, d) for d in config.dilations])
        self.onset = nn.Conv2d(k, 1, 1)
        self.offset = nn.Conv2d(k, 1, 1)
        self.velocity = nn.Conv2d(k, 1, 1)
        self.frame = nn.Sequential(_conv(k + 2, k, (3, 1), padding=(1, 0)), nn.Conv2d(k, 1, 1))
        # Notes are rare: start every head at a low prior so early steps do not spend themselves unlearning 0.5.
        self.key_bias = nn.Parameter(torch.full((len(HEADS), N_KEYS), INITIAL_LOGIT))

    def harmonic_stack(self, features: torch.Tensor) -> torch.Tensor:
        """[batch, frames, bins] -> [batch, harmonics, frames, bins]; bin b of channel h holds bin b + shift(h)."""
        channels = []
        for shift in self.shifts:
            if shift >= 0:
                shifted = F.pad(features[..., shift:], (0, shift))
            else:
                shifted = F.pad(features[..., :shift], (-shift, 0))
            channels.append(shifted)
        return torch.stack(channels, dim=1)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if features.ndim != 3 or features.shape[-1] != N_BINS:
            raise Mp3MidiError(f"the network takes features [batch, frames, {N_BINS}]; got {tuple(features.shape)}")
        x = self.harmonic_stack(features).contiguous(memory_format=torch.channels_last)
        x = self.context(self.to_keys(self.front(x)))  # [batch, key_channels, frames, 88]
        onset, offset = self.onset(x), self.offset(x)
        conditioned = torch.cat([x, torch.sigmoid(onset).detach(), torch.sigmoid(offset).detach()], dim=1)
        logits = {"onset": onset, "frame": self.frame(conditioned), "offset": offset, "velocity": self.velocity(x)}
        return {name: logits[name][:, 0] + self.key_bias[index] for index, name in enumerate(HEADS)}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class LossWeights:
    onset: float = 1.0
    frame: float = 1.0
    offset: float = 0.5
    velocity: float = 0.5


def losses(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
           weights: LossWeights = LossWeights()) -> dict[str, torch.Tensor]:
    """Per-head losses and their weighted ``total``. labels: onset/frame/offset in {0,1}, velocity in [0,1], [B, T, 88].

    Velocity is learned only where a note starts (Onsets and Frames), as squared error of the sigmoid output.
    Onset and offset positives are weighted (``_POS_WEIGHT``).
    """
    parts = {name: F.binary_cross_entropy_with_logits(logits[name], labels[name], pos_weight=_POS_WEIGHT.get(name))
             for name in ("onset", "frame", "offset")}
    mask = (labels["velocity"] > 0).float()  # the onset frame itself (onset targets are widened)
    velocity_error = (torch.sigmoid(logits["velocity"]) - labels["velocity"]) ** 2
    parts["velocity"] = (velocity_error * mask).sum() / mask.sum().clamp(min=1.0)
    parts["total"] = sum(getattr(weights, name) * parts[name] for name in HEADS)
    return parts
