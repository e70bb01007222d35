"""Which renderer plays an item: FluidSynth with a soundfont, the procedural instruments (``pipeline.synth``) or the
singing voice (``pipeline.voice``), drawn per item from a stream of its own, and the procedural renders themselves.

The procedural renderers play the notes an item's labels hold (a performance's label notes when the item is
performed, so humanized timing, dynamics and the sustain pedal reach them too; pitch-wheel gestures stay
FluidSynth's). The voice sings one line: the top voice of all parts, or of one part drawn at random.
"""

from __future__ import annotations

import numpy as np

from .errors import Mp3MidiError
from .instruments import family_of
from .notes import Note, Part
from .render import Effects, render
from .synth import MODELS, Timbre, finish, render_synth
from .voice import Singer, sing, sung_line

FLUIDSYNTH, SYNTH, VOICE = "fluidsynth", "synth", "voice"
RENDERERS = (FLUIDSYNTH, SYNTH, VOICE)
RENDERER_STREAM = 3  # the renderer's draws leave everything else an item draws as it was
VOICE_PROGRAM = 53  # a sung line is catalogued as General MIDI's "Voice Oohs" (ensemble family)
ONE_PART_PROBABILITY = 0.5  # a voice sings one drawn part of a several-part item this often, else the top voice
FAMILY_MATCH_PROBABILITY = 0.5  # a procedural part takes the model that suits its program's family this often
FAMILY_MODELS = {"piano": "plucked", "chromatic_percussion": "fm", "organ": "additive", "guitar": "plucked",
                 "bass": "plucked", "strings": "breath", "ensemble": "additive", "brass": "fm", "reed": "breath",
                 "pipe": "breath", "synth_lead": "fm", "synth_pad": "additive"}
DRUM_LEVEL_DB = (-14.0, -6.0)  # drums under a procedural render, against its peak


def check_probabilities(*, synth_probability: float, voice_probability: float) -> None:
    for flag, value in (("--synth-probability", synth_probability), ("--voice-probability", voice_probability)):
        if not 0.0 <= value <= 1.0:
            raise Mp3MidiError(f"{flag} must lie in [0, 1]; got {value}")
    if synth_probability + voice_probability > 1.0:
        raise Mp3MidiError(f"--synth-probability and --voice-probability add up to more than 1"
                           f" ({synth_probability} + {voice_probability})")


def draw_renderer(rng: np.random.Generator, *, synth_probability: float, voice_probability: float) -> str:
    draw = rng.random()
    if draw < voice_probability:
        return VOICE
    return SYNTH if draw < voice_probability + synth_probability else FLUIDSYNTH


def render_procedural(renderer: str, played: list[tuple[int, tuple[Note, ...] | list[Note]]], drums: list[Part],
                      duration_s: float, *, soundfont: str, effects: Effects,
                      rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, list[Note]]], dict]:
    """Render ``played`` [(program, notes)] with ``renderer`` ('synth' or 'voice'), drums through FluidSynth.

    Returns ([samples] float32 mono at SAMPLE_RATE, what is labelled as [(program, notes)], the renderer's record).
    The voice's labels are its sung line; the synth's are ``played`` unchanged.
    """
    if renderer == SYNTH:
        timbres = [_timbre_for(program, rng) for program, _ in played]
        parts = [Part(program, False, tuple(notes)) for program, notes in played]
        audio = render_synth(parts, duration_s, timbres=timbres, rng=rng, peak_db=0.0)
        labelled = [(program, list(notes)) for program, notes in played]
        record = {"renderer": SYNTH, "timbres": [timbre.record() for timbre in timbres]}
    elif renderer == VOICE:
        singer = Singer.draw(rng)
        if len(played) > 1 and rng.random() < ONE_PART_PROBABILITY:
            source = list(played[int(rng.integers(len(played)))][1])
        else:
            source = [note for _, notes in played for note in notes]
        line = sung_line(source, singer)
        if not line:
            raise Mp3MidiError("no line to sing: every note is shorter than the voice sings")
        audio, sung = sing(line, duration_s, singer=singer, rng=rng, peak_db=0.0)
        labelled = [(VOICE_PROGRAM, line)]
        record = {"renderer": VOICE, "singer": singer.record(), **sung}
    else:
        raise Mp3MidiError(f"unknown procedural renderer {renderer!r}; choose from {SYNTH!r} or {VOICE!r}")
    if drums:
        kit = render(drums, duration_s, soundfont=soundfont, effects=Effects(peak_db=0.0))
        level = float(rng.uniform(*DRUM_LEVEL_DB))
        audio += np.float32(10 ** (level / 20)) * kit
        record["drums_db"] = round(level, 1)
    audio = finish(audio, peak_db=effects.peak_db, noise_snr_db=effects.noise_snr_db, rng=rng)
    return audio, labelled, record


def _timbre_for(program: int, rng: np.random.Generator) -> Timbre:
    suits = FAMILY_MODELS.get(family_of(program))
    model = suits if suits and rng.random() < FAMILY_MATCH_PROBABILITY else MODELS[int(rng.integers(len(MODELS)))]
    return Timbre.draw(rng, model=model)
