"""General MIDI instrument families and the seeded choice of programs for an item."""

from __future__ import annotations

import numpy as np

from .constants import PROGRAMS_PER_FAMILY
from .errors import Mp3MidiError

FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive", "sound_effects",
)
# Families whose programs hold a clear pitch; the rest are offered but not chosen by default.
DEFAULT_FAMILIES = FAMILIES[:12]
DRUMS = "drums"


def family_of(program: int) -> str:
    """The General MIDI family name of a program number (0-127)."""
    if not 0 <= program < len(FAMILIES) * PROGRAMS_PER_FAMILY:
        raise Mp3MidiError(f"program {program!r} is not a General MIDI program (0-127)")
    return FAMILIES[program // PROGRAMS_PER_FAMILY]


def programs_of(family: str) -> range:
    start = FAMILIES.index(family) * PROGRAMS_PER_FAMILY
    return range(start, start + PROGRAMS_PER_FAMILY)


def parse_families(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Validate family names given by a user; ``None`` or empty gives the defaults."""
    if not names:
        return DEFAULT_FAMILIES
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise Mp3MidiError(f"unknown instrument families {unknown}; choose from {', '.join(FAMILIES)}")
    return tuple(dict.fromkeys(names))


def draw_program(rng: np.random.Generator, families: tuple[str, ...], *,
                 programs: tuple[int, ...] | None = None) -> int:
    """One program, uniform over the families first so that no family is drowned by another.

    ``programs``: only these may be drawn (None: any of the families'); the families are those holding one of them.
    Raises ``Mp3MidiError`` when none of ``programs`` belongs to ``families``.
    """
    if programs is None:
        family = families[rng.integers(len(families))]
        return int(rng.choice(programs_of(family)))
    allowed = {family: [p for p in programs_of(family) if p in programs] for family in families}
    allowed = {family: choices for family, choices in allowed.items() if choices}
    if not allowed:
        raise Mp3MidiError(f"none of the programs {sorted(programs)} belongs to the families {list(families)}")
    choices = list(allowed.values())[rng.integers(len(allowed))]
    return int(rng.choice(choices))
