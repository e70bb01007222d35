"""A singing voice, which no General MIDI bank has: a source-filter singer that sings one line of the score.

Source: a Rosenberg glottal-flow pulse train (open and closing phases drawn per singer) on a pitch curve that does
what singers do: scoops into notes from below (or above) inside a semitone, vibrato (4-7 Hz, up to +-50 cents,
often arriving late in the note and fading in), intonation a few cents off per note plus a slow drift, jitter
(period-to-period pitch noise) and shimmer (amplitude noise), legato glides between notes that touch, breath noise
gated by the glottis. Filter: five formant resonators per vowel (the singer's vocal-tract length scales them),
moving to the next note's vowel over 40-150 ms; a block-wise cascade of resonators carries its state across blocks.
Consonant noise (s, sh, f, a plosive burst) sits just before a syllable's note start, so the pitched sound starts
on the label's onset.

Labels follow the sound: each sung note is its written key (scoops, vibrato and intonation stay inside a
semitone), starting at the note's start. ``sung_line`` makes the monophonic line from a part's notes (the top
voice) and moves it by octaves into the singer's range; the labels are that line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import sosfilt

from .constants import A4_HZ, A4_PITCH, MIDI_VELOCITY_MAX, SAMPLE_RATE, SEMITONES_PER_OCTAVE
from .errors import Mp3MidiError
from .notes import Note
from .synth import band_pass, finish, json_ready, slow_noise

# Singers' ranges (MIDI keys): bass E2-E4, baritone G2-G4, tenor C3-C5, alto F3-F5, soprano C4-C6
RANGES = {"bass": (40, 64), "baritone": (43, 67), "tenor": (48, 72), "alto": (53, 77), "soprano": (60, 84)}
FORMANT_SCALE = {"bass": 0.95, "baritone": 1.0, "tenor": 1.05, "alto": 1.15, "soprano": 1.2}
# Vowel formants F1-F3 (Hz, adult male averages), F4 and F5 shared; bandwidths per formant
VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "o": (570, 840, 2410),
          "u": (300, 870, 2240), "ae": (660, 1720, 2410), "m": (250, 1100, 2300)}
UPPER_FORMANTS = (3300.0, 3750.0)
BANDWIDTHS_HZ = (80.0, 90.0, 120.0, 150.0, 200.0)
CONSONANTS = {"s": (4000.0, 7500.0), "sh": (1800.0, 5000.0), "f": (1000.0, 7500.0), "t": (500.0, 7500.0)}
MIN_NOTE_S = 0.03  # shorter notes are dropped from the sung line
LEGATO_GAP_S = 0.03  # notes this close stay voiced in between and glide
BLOCK = 128  # samples per formant-filter block (8 ms)
FORMANT_STEPS = 3  # a vowel change moves the formants in this many stages (each a filter call)
MAX_INSIDE_CENTS = 90.0  # scoops start at most this far from the key: inside a semitone, the key is kept
CENTS = 100.0


@dataclass(frozen=True)
class Singer:
    """One drawn singer; ``record()`` is what the catalog keeps."""

    voice: str  # a key of RANGES
    open_quotient: float  # share of the period the glottis is open
    speed_quotient: float  # opening time over closing time
    jitter_cents: float  # period-to-period pitch noise
    shimmer: float  # amplitude noise, fraction
    breathiness: float  # breath noise against the voiced sound
    vibrato_hz: float
    vibrato_cents: float  # depth: +- this many cents
    vibrato_delay: float  # share of a note before vibrato starts
    vibrato_fade_s: float
    scoop_probability: float
    scoop_cents: float
    scoop_s: float
    intonation_cents: float  # spread of each note's offset from the key
    drift_cents: float  # depth of the slow drift over the line
    attack_s: float
    release_s: float
    glide_s: float  # legato glide between touching notes
    consonant_probability: float
    vowels: tuple[str, ...]  # the vowels this singer sings

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Singer":
        voices = tuple(RANGES)
        vowels = tuple(rng.choice(list(VOWELS), size=int(rng.integers(1, len(VOWELS) + 1)), replace=False))
        return cls(
            voice=voices[int(rng.integers(len(voices)))], open_quotient=float(rng.uniform(0.4, 0.75)),
            speed_quotient=float(rng.uniform(1.5, 4.0)), jitter_cents=float(rng.uniform(0.0, 6.0)),
            shimmer=float(rng.uniform(0.0, 0.15)), breathiness=float(rng.uniform(0.0, 0.4)),
            vibrato_hz=float(rng.uniform(4.0, 7.0)), vibrato_cents=float(rng.uniform(0.0, 50.0)),
            vibrato_delay=float(rng.uniform(0.0, 0.6)), vibrato_fade_s=float(rng.uniform(0.05, 0.4)),
            scoop_probability=float(rng.uniform(0.0, 0.9)), scoop_cents=float(rng.uniform(20.0, MAX_INSIDE_CENTS - 15)),
            scoop_s=float(rng.uniform(0.04, 0.15)), intonation_cents=float(rng.uniform(0.0, 10.0)),
            drift_cents=float(rng.uniform(0.0, 15.0)), attack_s=float(rng.uniform(0.01, 0.06)),
            release_s=float(rng.uniform(0.03, 0.12)), glide_s=float(rng.uniform(0.03, 0.08)),
            consonant_probability=float(rng.uniform(0.0, 1.0)), vowels=vowels)

    def record(self) -> dict:
        return json_ready(asdict(self))


def sung_line(notes: list[Note], singer: Singer) -> list[Note]:
    """The top voice of ``notes``, one note at a time, moved by octaves into the singer's range.

    A chord gives its highest note; a note entering under a held higher note is left out; a higher note cuts the
    held one. The line's median goes into the middle of the range, and notes still outside it fold in by octaves.
    """
    line: list[Note] = []
    for note in sorted(notes, key=lambda n: (n.start_s, -n.pitch)):
        if line and note.start_s < line[-1].end_s:
            if note.start_s == line[-1].start_s or note.pitch < line[-1].pitch:
                continue
            held = line[-1]
            line[-1] = Note(held.start_s, note.start_s, held.pitch, held.velocity)
        line.append(note)
    line = [note for note in line if note.duration_s >= MIN_NOTE_S]
    if not line:
        return []
    low, high = RANGES[singer.voice]
    median = float(np.median([note.pitch for note in line]))
    shift = SEMITONES_PER_OCTAVE * round(((low + high) / 2 - median) / SEMITONES_PER_OCTAVE)
    moved = []
    for note in line:
        pitch = note.pitch + shift
        while pitch < low:
            pitch += SEMITONES_PER_OCTAVE
        while pitch > high:
            pitch -= SEMITONES_PER_OCTAVE
        moved.append(Note(note.start_s, note.end_s, pitch, note.velocity))
    return moved


def sing(line: list[Note], duration_s: float, *, singer: Singer, rng: np.random.Generator, peak_db: float = -1.0,
         noise_snr_db: float | None = None) -> tuple[np.ndarray, dict]:
    """Sing a monophonic ``line`` for ``duration_s`` seconds.

    Returns ([samples] float32 mono at SAMPLE_RATE, its loudest sample at ``peak_db`` dBFS; a record of what each
    note did: vowel, scoop, vibrato, offset). Raises ``Mp3MidiError`` for overlapping notes or an empty line.
    """
    if not line:
        raise Mp3MidiError("nothing to sing: the line holds no notes")
    for first, second in zip(line, line[1:]):
        if second.start_s < first.end_s - 1e-9:
            raise Mp3MidiError(f"the sung line must be monophonic; notes at {first.start_s:.3f} s and"
                               f" {second.start_s:.3f} s overlap")
    total = int(round(duration_s * SAMPLE_RATE))
    t = np.arange(total) / SAMPLE_RATE
    cents = np.zeros(total)  # deviation from the current key
    key = np.full(total, float(line[0].pitch))
    voicing = np.zeros(total)
    formants = np.zeros((total // BLOCK + 1, 5))
    consonants = np.zeros(total, np.float32)
    notes_record = []
    previous_vowel = None
    for index, note in enumerate(line):
        start = int(round(note.start_s * SAMPLE_RATE))
        if start >= total:
            break
        end = min(int(round(note.end_s * SAMPLE_RATE)), total)
        before = line[index - 1] if index else None
        following = line[index + 1] if index + 1 < len(line) else None
        legato_in = before is not None and note.start_s - before.end_s <= LEGATO_GAP_S
        legato_out = following is not None and following.start_s - note.end_s <= LEGATO_GAP_S
        tail = end if legato_out else min(total, end + int(singer.release_s * 4 * SAMPLE_RATE))
        span = slice(start, tail)
        local = t[span] - note.start_s
        key[span] = note.pitch
        offset = float(np.clip(rng.normal(0.0, singer.intonation_cents), -25.0, 25.0))
        contour = np.full(len(local), offset)
        scoop = 0.0
        if legato_in and before.pitch != note.pitch:
            glide = singer.glide_s * float(rng.uniform(0.7, 1.3))
            contour += (before.pitch - note.pitch) * CENTS * _fall_off(local, glide)
        elif rng.random() < singer.scoop_probability:
            scoop = singer.scoop_cents * float(rng.uniform(0.5, 1.0)) * (1 if rng.random() < 0.2 else -1)
            scoop = float(np.clip(scoop + offset, -MAX_INSIDE_CENTS, MAX_INSIDE_CENTS) - offset)
            contour += scoop * _fall_off(local, singer.scoop_s * float(rng.uniform(0.7, 1.3)))
        held = note.end_s - note.start_s
        vibrato_from = singer.vibrato_delay * held * float(rng.uniform(0.5, 1.5))
        depth = singer.vibrato_cents * float(rng.uniform(0.6, 1.0)) if held > 0.25 else 0.0
        if depth:
            reach = np.clip((local - vibrato_from) / singer.vibrato_fade_s, 0.0, 1.0)
            rate = singer.vibrato_hz * float(rng.uniform(0.9, 1.1))
            contour += depth * reach * np.sin(2 * np.pi * rate * np.maximum(local - vibrato_from, 0.0))
        cents[span] = contour
        level = (note.velocity / MIDI_VELOCITY_MAX) ** 1.2
        rise = np.ones(len(local)) if legato_in else np.minimum(local / singer.attack_s, 1.0)
        fall = np.where(local > held, np.exp(-(local - held) / singer.release_s), 1.0)
        voicing[span] = np.maximum(voicing[span], level * rise * fall)
        vowel = str(singer.vowels[int(rng.integers(len(singer.vowels)))])
        _move_formants(formants, start, tail, vowel, previous_vowel, singer, rng)
        previous_vowel = vowel
        consonant = None
        if index == 0 or not legato_in or rng.random() < 0.3:
            if rng.random() < singer.consonant_probability:
                consonant = _add_consonant(consonants, start, before, rng)
        notes_record.append({"pitch": note.pitch, "vowel": vowel, "scoop_cents": round(scoop, 1),
                             "vibrato_cents": round(depth, 1), "offset_cents": round(offset, 1),
                             "consonant": consonant, "legato": bool(legato_in)})
    cents += singer.drift_cents * _slow_curve(total, rng)
    cents += singer.jitter_cents * slow_noise(total, 60.0, rng)
    hz = A4_HZ * 2.0 ** ((key + cents / CENTS - A4_PITCH) / SEMITONES_PER_OCTAVE)
    cycles = np.cumsum(hz / SAMPLE_RATE)
    flow = _rosenberg((cycles - np.floor(cycles)).astype(np.float32), singer.open_quotient, singer.speed_quotient)
    amplitude = (voicing * (1.0 + singer.shimmer * slow_noise(total, 100.0, rng))).astype(np.float32)
    source = np.diff(flow, prepend=np.float32(0.0)) * amplitude
    breath = rng.standard_normal(total, dtype=np.float32) * (0.2 + flow) * amplitude * np.float32(singer.breathiness * 0.05)
    sung = _formant_filter(source + breath, formants)
    sung = sung / max(float(np.max(np.abs(sung))), 1e-9)
    audio = (sung + consonants).astype(np.float32)
    return finish(audio, peak_db=peak_db, noise_snr_db=noise_snr_db, rng=rng), {"notes": notes_record}


def _fall_off(local: np.ndarray, seconds: float) -> np.ndarray:
    """1 at the note start easing to 0 after ``seconds`` (a raised-cosine glide)."""
    u = np.clip(local / seconds, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * u))


def _rosenberg(phase: np.ndarray, open_quotient: float, speed_quotient: float) -> np.ndarray:
    """Glottal flow over one period's phase [0, 1): a cosine opening, a quarter-cosine closing, then closed."""
    opening = open_quotient * speed_quotient / (1.0 + speed_quotient)
    closing = open_quotient - opening
    flow = np.zeros_like(phase)
    rising = phase < opening
    falling = ~rising & (phase < open_quotient)
    flow[rising] = 0.5 * (1.0 - np.cos(np.float32(np.pi / opening) * phase[rising]))
    flow[falling] = np.cos(np.float32(0.5 * np.pi / closing) * (phase[falling] - np.float32(opening)))
    return flow


def _move_formants(formants: np.ndarray, start: int, tail: int, vowel: str, previous: str | None, singer: Singer,
                   rng: np.random.Generator) -> None:
    """Fill the blocks of [start, tail) with the vowel's formants, moving from the previous vowel's."""
    scale = FORMANT_SCALE[singer.voice]
    target = np.array([*VOWELS[vowel], *UPPER_FORMANTS]) * scale
    first, last = start // BLOCK, max(tail // BLOCK, start // BLOCK + 1)
    formants[first:last] = target
    if previous is not None:
        source = np.array([*VOWELS[previous], *UPPER_FORMANTS]) * scale
        blocks = max(1, int(rng.uniform(0.04, 0.15) * SAMPLE_RATE / BLOCK))  # the move, in FORMANT_STEPS stages
        stages = np.repeat(np.arange(1, FORMANT_STEPS + 1) / (FORMANT_STEPS + 1), -(-blocks // FORMANT_STEPS))[:blocks]
        stop = min(first + blocks, last)
        formants[first:stop] = (source + (target - source) * stages[:, None])[:stop - first]
    formants[last:] = target  # a release or gap keeps the last vowel


def _formant_filter(source: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Run [samples] through five resonators whose centres follow ``formants`` [blocks, 5]: one filter call per run
    of blocks with the same formants, the filter state carried from one run to the next."""
    filled = np.nonzero(formants[:, 0])[0]
    formants = formants.copy()
    formants[:filled[0]] = formants[filled[0]]  # blocks before the first note take its vowel
    changes = np.nonzero(np.any(np.diff(formants, axis=0) != 0, axis=1))[0] + 1
    edges = [0, *changes.tolist(), formants.shape[0]]
    out = np.empty(len(source), np.float32)
    state = np.zeros((5, 2))
    for first, last in zip(edges, edges[1:]):
        piece = slice(first * BLOCK, min(last * BLOCK, len(source)))
        if piece.start >= len(source):
            break
        out[piece], state = sosfilt(_resonators(formants[first]), source[piece], zi=state)
    return out


def _resonators(centres: np.ndarray) -> np.ndarray:
    """[5, 6] second-order sections: two-pole resonators with unity gain at 0 Hz."""
    radius = np.exp(-np.pi * np.asarray(BANDWIDTHS_HZ) / SAMPLE_RATE)
    a1 = -2.0 * radius * np.cos(2 * np.pi * np.minimum(centres, 0.45 * SAMPLE_RATE) / SAMPLE_RATE)
    a2 = radius**2
    zeros = np.zeros_like(a1)
    return np.stack([1.0 + a1 + a2, zeros, zeros, np.ones_like(a1), a1, a2], axis=1)


def _add_consonant(consonants: np.ndarray, start: int, before: Note | None, rng: np.random.Generator) -> str | None:
    """Noise of a drawn consonant ending at ``start`` (a plosive: a short burst), at most 80 ms long and at most half
    the time since the previous note began; returns its name, or None where there was no room for it."""
    name = list(CONSONANTS)[int(rng.integers(len(CONSONANTS)))]
    length = 0.012 if name == "t" else float(rng.uniform(0.03, 0.08))
    room = start / SAMPLE_RATE if before is None else max(start / SAMPLE_RATE - before.start_s, 0.0) / 2
    length = min(length, room)
    n = int(length * SAMPLE_RATE)
    if n < 16:
        return None
    low, high = CONSONANTS[name]
    noise = sosfilt(band_pass(low, high), rng.standard_normal(n))
    shape = np.sin(np.pi * np.linspace(0.0, 1.0, n)) ** (0.5 if name != "t" else 4.0)
    consonants[start - n:start] += (float(rng.uniform(0.05, 0.25)) * shape * noise
                                    / max(float(np.sqrt(np.mean(noise**2))), 1e-9)).astype(np.float32)
    return name


def _slow_curve(n: int, rng: np.random.Generator) -> np.ndarray:
    """[n] a smooth curve in about [-1, 1] that wanders over a few seconds."""
    return np.clip(slow_noise(n, 0.5, rng), -1.0, 1.0)
