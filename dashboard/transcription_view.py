"""Plotly figures for the Transcribe page: the spectrogram with the transcribed notes on top, and a piano roll.

The y axis is in MIDI pitch units for both, labelled with note names: CQT bin b sits at pitch
LOWEST_PITCH + (b - BINS_PER_SEMITONE // 2) / BINS_PER_SEMITONE, so a note's rectangle (pitch +- half a semitone)
covers exactly the three bins of its key. The two panels share both axes: zooming or panning one moves the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import pretty_midi
from plotly.subplots import make_subplots

from pipeline.constants import (BINS_PER_SEMITONE, FRAMES_PER_SECOND, HIGHEST_PITCH, LOWEST_PITCH, N_BINS,
                                SEMITONES_PER_OCTAVE)
from model.beats import BeatGrid
from pipeline.notes import Note

MAX_COLUMNS = 2000  # time columns drawn at most; longer recordings are max-pooled down to this
PIXEL_LEVELS = 255  # the spectrogram travels to the browser as one byte per cell
FIGURE_HEIGHT = 820
HALF_KEY = 0.5
VIEW_MARGIN_KEYS = 7  # keys shown above and below the highest and lowest note when the figure opens
NOTE_OUTLINE = "#39d353"
NOTE_FILL = "rgba(31, 119, 180, 0.75)"
NOTE_EDGE = "#1f4e79"
BEAT_LINE = "rgba(160, 160, 160, 0.45)"
MISSED_COLOR = "#ff2d2d"  # reference notes the transcription lacks
EXTRA_COLOR = "#ff9f1c"  # transcribed notes the reference lacks
EXTRA_FILL = "rgba(255, 159, 28, 0.35)"


def _rgb_scale(colors: list[str]) -> list[list]:
    """A colorscale in rgb() strings: browsers misread some of plotly's six-digit hex stops (Magma's '#000004')."""
    last = len(colors) - 1
    return [[i / last, "rgb({}, {}, {})".format(*plotly.colors.hex_to_rgb(c))] for i, c in enumerate(colors)]


SPECTROGRAM_COLORS = _rgb_scale(plotly.colors.sequential.Magma)


@dataclass(frozen=True)
class SpectrogramImage:
    """A spectrogram reduced for display: values [N_BINS, columns] uint8 (255 = full scale), times_s [columns]."""

    values: np.ndarray
    times_s: np.ndarray


def display_spectrogram(features: np.ndarray, *, max_columns: int = MAX_COLUMNS) -> SpectrogramImage:
    """features [frames, N_BINS] in [0, 1] -> at most ``max_columns`` columns, each the maximum of the frames it
    covers (a short loud note stays visible however long the recording is)."""
    frames = features.shape[0]
    factor = max(1, -(-frames // max_columns))
    columns = -(-frames // factor)
    padded = np.zeros((columns * factor, features.shape[1]), np.float32)
    padded[:frames] = features
    pooled = padded.reshape(columns, factor, features.shape[1]).max(axis=1)
    values = np.round(np.clip(pooled, 0.0, 1.0) * PIXEL_LEVELS).astype(np.uint8).T
    times_s = (np.arange(columns) * factor + (factor - 1) / 2) / FRAMES_PER_SECOND
    return SpectrogramImage(np.ascontiguousarray(values), times_s)


def bin_pitches() -> np.ndarray:
    """[N_BINS] the (fractional) MIDI pitch each CQT bin is centred on."""
    return LOWEST_PITCH + (np.arange(N_BINS) - BINS_PER_SEMITONE // 2) / BINS_PER_SEMITONE


def note_name(pitch: int) -> str:
    return pretty_midi.note_number_to_name(pitch)


def pitch_ticks() -> tuple[list[int], list[str]]:
    """Every C in the piano range, and the lowest and highest keys: (pitches, note names)."""
    values = [LOWEST_PITCH] + [p for p in range(LOWEST_PITCH + 1, HIGHEST_PITCH)
                               if p % SEMITONES_PER_OCTAVE == 0] + [HIGHEST_PITCH]
    return values, [note_name(p) for p in values]


def note_outlines(notes: Sequence[Note]) -> tuple[list, list]:
    """Closed rectangles, one per note, as x and y lists separated by None (one trace draws them all)."""
    xs, ys = [], []
    for note in notes:
        low, high = note.pitch - HALF_KEY, note.pitch + HALF_KEY
        xs += [note.start_s, note.end_s, note.end_s, note.start_s, note.start_s, None]
        ys += [low, low, high, high, low, None]
    return xs, ys


def beat_lines(beats_s: Sequence[float], *, duration_s: float) -> tuple[list, list]:
    """Vertical lines over the whole keyboard at the beats up to ``duration_s``, as x and y lists separated by
    None (one trace draws them all)."""
    xs, ys = [], []
    for beat in beats_s:
        if beat <= duration_s:
            xs += [beat, beat, None]
            ys += [LOWEST_PITCH - HALF_KEY, HIGHEST_PITCH + HALF_KEY, None]
    return xs, ys


def beats_caption(beats: BeatGrid) -> str:
    """One line on the beats the MIDI and the quantization use."""
    if beats.tracked:
        tempi = beats.tempi_bpm[1:]  # the first beat runs from time 0: not a heard interval
        low, high = (float(tempi.min()), float(tempi.max())) if tempi.size else (beats.tempo_bpm, beats.tempo_bpm)
        return (f"Beats (grey lines): {len(beats.beats_s) - 1} followed from the recording, {low:.0f}-{high:.0f} BPM "
                f"(median {beats.tempo_bpm:.1f}, pulse clarity {beats.confidence:.2f}); the MIDI's tempo map "
                "follows them.")
    return f"Beats (grey lines): one tempo, {beats.tempo_bpm:.1f} BPM, from the start."


def transcription_figure(image: SpectrogramImage, notes: Sequence[Note], *, duration_s: float,
                         missed: Sequence[Note] | None = None, extra: Sequence[Note] | None = None,
                         beats_s: Sequence[float] = ()) -> go.Figure:
    """Top: the spectrogram with each note outlined on its pitch row. Bottom: the notes as a piano roll. Both:
    the beats (``beats_s``) as thin vertical lines.

    With a reference to compare against, ``missed`` (reference notes the transcription lacks) are drawn on the
    spectrogram as dashed red outlines and ``extra`` (transcribed notes the reference lacks) filled in orange;
    a legend names them.
    """
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                           subplot_titles=("Spectrogram with the transcribed notes", "Piano roll"))
    figure.add_trace(go.Heatmap(
        z=image.values, x=image.times_s, y=bin_pitches(), zmin=0, zmax=PIXEL_LEVELS, colorscale=SPECTROGRAM_COLORS,
        showscale=False, name="spectrogram", hovertemplate="%{x:.2f} s, pitch %{y:.2f}<extra></extra>"), row=1, col=1)
    beat_xs, beat_ys = beat_lines(beats_s, duration_s=duration_s)
    for row in (1, 2):
        figure.add_trace(go.Scatter(x=beat_xs, y=beat_ys, mode="lines", line=dict(color=BEAT_LINE, width=1),
                                    name="beats", hoverinfo="skip"), row=row, col=1)
    xs, ys = note_outlines(notes)
    figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=NOTE_OUTLINE, width=1.5),
                                name="notes", hoverinfo="skip"), row=1, col=1)
    figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=NOTE_FILL,
                                line=dict(color=NOTE_EDGE, width=1), name="piano roll", hoverinfo="skip"),
                     row=2, col=1)
    figure.add_trace(go.Scatter(
        x=[(n.start_s + n.end_s) / 2 for n in notes], y=[n.pitch for n in notes], mode="markers",
        marker=dict(size=6, opacity=0), name="note details",
        customdata=[(note_name(n.pitch), n.start_s, n.end_s, n.velocity) for n in notes],
        hovertemplate="%{customdata[0]} (%{y})<br>%{customdata[1]:.3f}-%{customdata[2]:.3f} s"
                      "<br>velocity %{customdata[3]}<extra></extra>"), row=2, col=1)
    compared = missed is not None or extra is not None
    if compared:
        xs, ys = note_outlines(extra or [])
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=EXTRA_FILL,
                                    line=dict(color=EXTRA_COLOR, width=2), name=f"extra ({len(extra or [])})",
                                    hoverinfo="skip", showlegend=True), row=1, col=1)
        xs, ys = note_outlines(missed or [])
        figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=MISSED_COLOR, width=2, dash="dot"),
                                    name=f"missed ({len(missed or [])})", hoverinfo="skip", showlegend=True),
                         row=1, col=1)
    ticks, labels = pitch_ticks()
    low, high = _opening_range([*notes, *(missed or [])])
    figure.update_yaxes(tickvals=ticks, ticktext=labels, range=[low, high], title_text="pitch")
    figure.update_yaxes(matches="y", row=2, col=1)
    figure.update_xaxes(range=[0, duration_s])
    figure.update_xaxes(title_text="time (s)", row=2, col=1)
    for trace in figure.data:
        if trace.showlegend is None:
            trace.showlegend = False
    figure.update_layout(height=FIGURE_HEIGHT, showlegend=compared, margin=dict(l=10, r=10, t=40, b=10),
                         dragmode="zoom", hovermode="closest",
                         legend=dict(orientation="h", yanchor="bottom", y=1.03, xanchor="right", x=1.0))
    return figure


def _opening_range(notes: Sequence[Note]) -> tuple[float, float]:
    """The pitch range the figure opens on: the notes with some room, or the whole keyboard when there are none."""
    if not notes:
        return LOWEST_PITCH - HALF_KEY, HIGHEST_PITCH + HALF_KEY
    low = max(LOWEST_PITCH, min(n.pitch for n in notes) - VIEW_MARGIN_KEYS)
    high = min(HIGHEST_PITCH, max(n.pitch for n in notes) + VIEW_MARGIN_KEYS)
    return low - HALF_KEY, high + HALF_KEY
