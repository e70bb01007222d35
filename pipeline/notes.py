"""Named records for notes and the scores they come in."""

from __future__ import annotations

from dataclasses import dataclass, field

from .constants import HIGHEST_PITCH, LOWEST_PITCH


@dataclass(frozen=True, slots=True)
class Note:
    """One sounding note. Times in seconds; pitch is a MIDI note number; velocity 1-127."""

    start_s: float
    end_s: float
    pitch: int
    velocity: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def in_piano_range(self) -> bool:
        return LOWEST_PITCH <= self.pitch <= HIGHEST_PITCH


@dataclass(frozen=True, slots=True)
class Part:
    """The notes one instrument plays. ``program`` is the General MIDI program (0-127)."""

    program: int
    is_drum: bool
    notes: tuple[Note, ...]


@dataclass(frozen=True, slots=True)
class Score:
    """A piece as parts; ``duration_s`` is when its last note ends."""

    parts: tuple[Part, ...]
    duration_s: float = field(default=0.0)

    @property
    def pitched_notes(self) -> list[Note]:
        return [note for part in self.parts if not part.is_drum for note in part.notes]


def remove_self_overlaps(notes: list[Note]) -> list[Note]:
    """Cut each note where the next note on the same pitch starts, and drop notes left with no length.

    A synthesizer cannot sound one key twice on one channel, so labels must not claim it does.
    """
    by_pitch: dict[int, list[Note]] = {}
    for note in sorted(notes, key=lambda n: (n.pitch, n.start_s, n.end_s)):
        by_pitch.setdefault(note.pitch, []).append(note)
    cleaned: list[Note] = []
    for same_pitch in by_pitch.values():
        for current, following in zip(same_pitch, same_pitch[1:] + [None]):
            end = current.end_s if following is None else min(current.end_s, following.start_s)
            if end > current.start_s:
                cleaned.append(Note(current.start_s, end, current.pitch, current.velocity))
    return sorted(cleaned, key=lambda n: (n.start_s, n.pitch))
