"""The transcription network: harmonic CQT stack -> 2-D convolutions -> per-key temporal context -> key harmonics
-> four heads.

Design (reasons in docs/MODEL.md):
- Harmonic stacking (from basic-pitch): the CQT is shifted so that channel h holds, at each key's bins, the energy at
  h times that key's frequency. A note of any instrument then looks the same at every pitch, and small kernels see
  its whole harmonic series.
- Convolutions reduce the 264 bins (3 per key) to 88 keys; dilated convolutions along time then give each key
  about half a second of context, shared by all keys (instrument-agnostic, pitch-agnostic).
- Key harmonics: each key then reads the keys 12, 19, 24 and 28 semitones (partials 2-5) below and above it, so
  a partial of a lower note is not taken for a note of its own.
- Heads (from Onsets and Frames): onset, offset, velocity, and a frame head conditioned on the onset and offset
  predictions (detached), so a note is only held where it was started.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.constants import BINS_PER_OCTAVE, BINS_PER_SEMITONE, N_BINS, N_KEYS, SEMITONES_PER_OCTAVE
from pipeline.errors import Mp3MidiError

HEADS = ("onset", "frame", "offset", "velocity")
INITIAL_LOGIT = -3.0  # sigmoid(-3) = 5 %: about how often a key is sounding in a frame
# Onsets and offsets are rare events a frame or two long: weighting their positives keeps the heads from settling
# on "never" (seen in training: onset probabilities stuck near 0.05 at true onsets while frames were learnt).
_POS_WEIGHT = {"offset": torch.tensor(2.0)}  # the onset head's: OnsetLoss


@dataclass(frozen=True)
class ModelConfig:
    harmonics: tuple[float, ...] = (0.5, 1, 2, 3, 4, 5, 6, 7)
    channels: int = 12  # per-bin feature maps
    key_channels: int = 24  # per-key feature maps
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # temporal context blocks: receptive field grows to ~2 * sum frames
    # Key offsets (semitones) each key reads after the temporal context, to tell a note from another note's
    # partial; empty: no such block (checkpoints from before it).
    key_harmonics: tuple[int, ...] = ()
    harmonic_channels: int = 8  # the feature maps each offset key contributes

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})


# Partials 2-5 lie 12, 19, 24 and 28 semitones above a note; each key looks that far down and up.
_PARTIALS = tuple(round(SEMITONES_PER_OCTAVE * math.log2(partial)) for partial in (2, 3, 4, 5))
PARTIAL_OFFSETS = tuple(-offset for offset in reversed(_PARTIALS)) + _PARTIALS

SIZES = {
    "small": ModelConfig(key_harmonics=PARTIAL_OFFSETS),
    "base": ModelConfig(channels=20, key_channels=40, dilations=(1, 2, 4, 8, 16), key_harmonics=PARTIAL_OFFSETS,
                        harmonic_channels=12),
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


class _KeyHarmonics(nn.Module):
    """Residual: each key mixes in (a few channels of) the keys ``offsets`` semitones away, [B, C, T, 88] -> same.

    The harmonic stack shows a key its own partials; this shows it its neighbours' notes, so the 3rd partial of
    A3 (E5, 19 semitones up) can be put down to A3 rather than called a note of its own.
    """

    def __init__(self, channels: int, reduced: int, offsets: tuple[int, ...]):
        super().__init__()
        self.offsets = (0, *offsets)
        self.margin = max(abs(offset) for offset in self.offsets)
        self.reduce = _conv(channels, reduced, 1)
        self.mix = _conv(reduced * len(self.offsets), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys, margin = x.shape[-1], self.margin
        padded = F.pad(self.reduce(x), (margin, margin))  # padded once; each offset is a view of it
        shifted = [padded[..., margin + offset:margin + offset + keys] for offset in self.offsets]
        return x + self.mix(torch.cat(shifted, dim=1))


def _shifted(x: torch.Tensor, offset: int) -> torch.Tensor:
    """[..., n] -> [..., n] where position i holds position i + offset of the last axis (bins or keys; zeros past
    the ends)."""
    if offset >= 0:
        return F.pad(x[..., offset:], (0, offset))
    return F.pad(x[..., :offset], (-offset, 0))


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
        blocks = [_TemporalBlock(k, d) for d in config.dilations]
        if config.key_harmonics:
            blocks.append(_KeyHarmonics(k, config.harmonic_channels, config.key_harmonics))
        self.context = nn.Sequential(*blocks)
        self.onset = nn.Conv2d(k, 1, 1)
        self.offset = nn.Conv2d(k, 1, 1)
        self.velocity = nn.Conv2d(k, 1, 1)
        self.frame = nn.Sequential(_conv(k + 2, k, (3, 1), padding=(1, 0)), nn.Conv2d(k, 1, 1))
        # Notes are rare: start every head at a low prior so early steps do not spend themselves unlearning 0.5.
        self.key_bias = nn.Parameter(torch.full((len(HEADS), N_KEYS), INITIAL_LOGIT))

    def harmonic_stack(self, features: torch.Tensor) -> torch.Tensor:
        """[batch, frames, bins] -> [batch, harmonics, frames, bins]; bin b of channel h holds bin b + shift(h)."""
        return torch.stack([_shifted(features, shift) for shift in self.shifts], dim=1)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if features.ndim != 3 or features.shape[-1] != N_BINS:
            raise Mp3MidiError(f"the network takes features [batch, frames, {N_BINS}]; got {tuple(features.shape)}")
        x = self.harmonic_stack(features).contiguous(memory_format=torch.channels_last)
        x = self.context(self.to_keys(self.front(x)))  # [batch, key_channels, frames, 88]
        onset, offset, velocity = _joint_conv(x, (self.onset, self.offset, self.velocity)).split(1, dim=1)
        conditions = torch.sigmoid(torch.cat([onset, offset], dim=1)).detach()
        conv, norm, relu = self.frame[0]  # the frame head sees x and the onset and offset predictions
        frame = self.frame[1](relu(norm(_conv_of_concatenation(conv, (x, conditions)))))
        logits = {"onset": onset, "frame": frame, "offset": offset, "velocity": velocity}
        return {name: logits[name][:, 0] + self.key_bias[index] for index, name in enumerate(HEADS)}


def _joint_conv(x: torch.Tensor, convs: tuple[nn.Conv2d, ...]) -> torch.Tensor:
    """The outputs of convolutions of one input with the same geometry, in one pass: [B, their channels, ...]."""
    first = convs[0]
    return F.conv2d(x, torch.cat([conv.weight for conv in convs]), torch.cat([conv.bias for conv in convs]),
                    stride=first.stride, padding=first.padding, dilation=first.dilation)


def _conv_of_concatenation(conv: nn.Conv2d, parts: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``conv(torch.cat(parts, dim=1))`` without building the concatenation: each part convolved with its slice of
    the weight, summed. The key channels plus two conditions (26) are a channel count the fast CPU kernels pad or
    refuse; 24 and 2 apart cost less than half (and no copy of the input)."""
    out, first = None, 0
    for part in parts:
        weight = conv.weight[:, first:first + part.shape[1]]
        term = F.conv2d(part, weight, conv.bias if out is None else None, stride=conv.stride, padding=conv.padding,
                        dilation=conv.dilation)
        out = term if out is None else out + term
        first += part.shape[1]
    return out


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class LossWeights:
    onset: float = 1.0
    frame: float = 1.0
    offset: float = 0.5
    velocity: float = 0.5


@dataclass(frozen=True)
class OnsetLoss:
    """How the onset head is taught. The defaults are the first recipe's; the others answer an onset head that fires
    inside held notes (vibrato, scoops), see docs/MODEL_CARD.md.

    pos_weight: weight of an onset positive. tail: target on the widened frames after the onset frame (1: as hard as
    the onset frame itself, 0.5: a soft second frame, so the peak sharpens). inside_weight: weight of a negative frame
    inside a sounding note (frame label 1, onset label 0), the confusion of a vibrato cycle for a re-strike.
    """

    pos_weight: float = 4.0
    tail: float = 1.0
    inside_weight: float = 1.0

    def __post_init__(self):
        if not self.pos_weight > 0:
            raise Mp3MidiError(f"the onset positive weight must be positive; got {self.pos_weight}")
        if not 0 < self.tail <= 1:
            raise Mp3MidiError(f"the onset tail target must be in (0, 1]; got {self.tail}")
        if not self.inside_weight > 0:
            raise Mp3MidiError(f"the weight of onset negatives inside notes must be positive; got {self.inside_weight}")


def onset_loss(logits: torch.Tensor, labels: dict[str, torch.Tensor], recipe: OnsetLoss) -> torch.Tensor:
    """Binary cross-entropy of the onset head [B, T, 88] against its widened labels, shaped by ``recipe``."""
    target = labels["onset"]
    if recipe.tail != 1.0:  # the struck frame is where velocity is labelled; the widened frames after it get ``tail``
        target = torch.maximum((labels["velocity"] > 0).to(target.dtype), target * recipe.tail)
    weight = None
    if recipe.inside_weight != 1.0:
        weight = 1.0 + (recipe.inside_weight - 1.0) * labels["frame"] * (1.0 - labels["onset"])
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight,
                                              pos_weight=torch.tensor(recipe.pos_weight, device=logits.device))


def losses(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
           weights: LossWeights = LossWeights(), *, onset: OnsetLoss = OnsetLoss()) -> dict[str, torch.Tensor]:
    """Per-head losses and their weighted ``total``. labels: onset/frame/offset in {0,1}, velocity in [0,1], [B, T, 88].

    Velocity is learned only where a note starts (Onsets and Frames), as squared error of the sigmoid output.
    Offset positives are weighted (``_POS_WEIGHT``); the onset head as ``onset`` says (:class:`OnsetLoss`).
    """
    parts = {name: F.binary_cross_entropy_with_logits(logits[name], labels[name], pos_weight=_POS_WEIGHT.get(name))
             for name in ("frame", "offset")}
    parts["onset"] = onset_loss(logits["onset"], labels, onset)
    mask = (labels["velocity"] > 0).float()  # the onset frame itself (onset targets are widened)
    velocity_error = (torch.sigmoid(logits["velocity"]) - labels["velocity"]) ** 2
    parts["velocity"] = (velocity_error * mask).sum() / mask.sum().clamp(min=1.0)
    parts["total"] = sum(getattr(weights, name) * parts[name] for name in HEADS)
    return parts
