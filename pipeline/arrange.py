"""Turn a source score into what one item renders: a clip window and an instrumentation, drawn from a seed.

Solo items merge every pitched part into one instrument; mix items give each part (or, for one-part pieces, each
register) its own program. Drum parts never reach the labels; they reach the audio only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .instruments import draw_program
from .notes import Note, Part, Score, remove_self_overlaps
from .render import MELODIC_CHANNELS

MAX_MIX_PARTS = 4
SPLIT_PITCH_CHOICES = (48, 55, 60, 67)  # registers a one-part piece is split at for a mix


@dataclass(frozen=True)
class Arrangement:
    """What to render and what to label. Times are relative to the clip start."""

    parts: tuple[Part, ...]  # pitched parts with their programs, then drum parts if rendered
    label_notes: tuple[Note, ...]  # every pitched note, sorted, no self-overlaps
    clip_start_s: float
    duration_s: float
    is_mix: bool

    @property
    def programs(self) -> list[int]:
        return [part.program for part in self.parts if not part.is_drum]


def arrange(score: Score, rng: np.random.Generator, *, families: tuple[str, ...], clip_seconds: float | None,
            mix_probability: float, render_drums: bool, programs: tuple[int, ...] | None = None) -> Arrangement:
    start, duration = _clip_window(score, rng, clip_seconds)
    pitched = [_clip(part, start, duration) for part in score.parts if not part.is_drum]
    pitched = [part for part in pitched if part.notes]
    drums = [_clip(part, start, duration) for part in score.parts if part.is_drum] if render_drums else []
    is_mix = rng.random() < mix_probability
    if is_mix:
        groups = _mix_groups(pitched, rng)
        is_mix = len(groups) > 1
    else:
        groups = [[note for part in pitched for note in part.notes]]
    parts = [Part(draw_program(rng, families, programs=programs), False, tuple(remove_self_overlaps(notes)))
             for notes in groups]
    label_notes = remove_self_overlaps([note for part in parts for note in part.notes])
    drum_notes = remove_self_overlaps([note for part in drums for note in part.notes])
    drum_parts = [Part(0, True, tuple(drum_notes))] if drum_notes else []  # one drum channel: one kit
    return Arrangement(tuple(parts + drum_parts), tuple(label_notes), start, duration, is_mix)


def _clip_window(score: Score, rng: np.random.Generator, clip_seconds: float | None) -> tuple[float, float]:
    """A window of ``clip_seconds`` that starts on a pitched note, or the whole piece."""
    if not clip_seconds or score.duration_s <= clip_seconds:
        return 0.0, score.duration_s
    onsets = sorted({note.start_s for note in score.pitched_notes if note.start_s <= score.duration_s - clip_seconds})
    start = float(onsets[rng.integers(len(onsets))]) if onsets else 0.0
    return start, float(clip_seconds)


def _clip(part: Part, start: float, duration: float) -> Part:
    end = start + duration
    notes = tuple(Note(n.start_s - start, min(n.end_s, end) - start, n.pitch, n.velocity)
                  for n in part.notes if start <= n.start_s < end)
    return Part(part.program, part.is_drum, notes)


def _mix_groups(pitched: list[Part], rng: np.random.Generator) -> list[list[Note]]:
    """Notes grouped into instruments: one per source part (folded round-robin to fit), or split by register."""
    if len(pitched) > 1:
        count = min(len(pitched), MAX_MIX_PARTS, len(MELODIC_CHANNELS))
        groups: list[list[Note]] = [[] for _ in range(count)]
        for index, part in enumerate(pitched):
            groups[index % count].extend(part.notes)
        return groups
    notes = pitched[0].notes if pitched else ()
    split = int(rng.choice(SPLIT_PITCH_CHOICES))
    low = [note for note in notes if note.pitch < split]
    high = [note for note in notes if note.pitch >= split]
    return [group for group in (low, high) if group]
