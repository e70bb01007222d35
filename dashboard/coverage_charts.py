"""Plotly figures for the Dataset coverage page, built from the DataFrames that ``pipeline.coverage`` returns.

Every family keeps one colour in every figure. Keys run along x (or y for an item's preview) as MIDI pitches with
note-name ticks at A0 and every C.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pretty_midi
from PIL import Image
from plotly.colors import qualitative

from pipeline.constants import (FRAMES_PER_SECOND, HIGHEST_PITCH, LOWEST_PITCH, MIDI_VELOCITY_MAX, N_KEYS,
                                SEMITONES_PER_OCTAVE)
from pipeline.coverage import VELOCITY_BIN
from pipeline.instruments import FAMILIES

KEYS = list(range(LOWEST_PITCH, HIGHEST_PITCH + 1))
KEY_TICKS = [LOWEST_PITCH] + [pitch for pitch in KEYS if pitch % SEMITONES_PER_OCTAVE == 0]
FAMILY_COLORS = dict(zip(FAMILIES, qualitative.Dark24))
OTHER_COLOR = "#888888"
NO_NOTES_COLOR = "#e0115f"  # what a key with no notes looks like, in every figure
ALL_FAMILIES = "all families"
NOTE_HALF_HEIGHT = 0.45  # in keys: a note's rectangle on the preview leaves a sliver between neighbouring keys


def note_name(pitch: int) -> str:
    """'A0', 'C#4', ... for a MIDI pitch."""
    return pretty_midi.note_number_to_name(int(pitch))


def instrument_name(program: int) -> str:
    """'0 Acoustic Grand Piano', ... for a General MIDI program."""
    return f"{int(program)} {pretty_midi.program_to_instrument_name(int(program))}"


def family_color(family: str) -> str:
    return FAMILY_COLORS.get(family, OTHER_COLOR)


def _key_axis(title: str = "key") -> dict:
    return dict(title=title, tickvals=KEY_TICKS, ticktext=[note_name(p) for p in KEY_TICKS],
                range=[LOWEST_PITCH - 0.5, HIGHEST_PITCH + 0.5], showgrid=False, zeroline=False)


def notes_per_key(matrix: pd.DataFrame) -> go.Figure:
    """Stacked bars of notes on each of the 88 keys, one colour per family; keys with no notes get a red cross.

    matrix: [families, N_KEYS] note counts, as ``pipeline.coverage.pitch_family_matrix`` returns.
    """
    figure = go.Figure()
    for family, counts in matrix.iterrows():
        figure.add_bar(x=KEYS, y=counts.to_numpy(), name=family, marker_color=family_color(family),
                       customdata=[note_name(p) for p in KEYS],
                       hovertemplate=f"{family}<br>%{{customdata}}: %{{y}} notes<extra></extra>")
    silent = [pitch for pitch, notes in zip(KEYS, matrix.sum(axis=0).reindex(KEYS, fill_value=0)) if notes == 0]
    if silent:
        figure.add_scatter(x=silent, y=[0] * len(silent), mode="markers", name="no notes",
                           marker=dict(symbol="x", size=9, color=NO_NOTES_COLOR),
                           customdata=[note_name(p) for p in silent],
                           hovertemplate="%{customdata}: no notes<extra></extra>")
    figure.update_layout(title="Notes per key, by instrument family", barmode="stack", bargap=0.1,
                         xaxis=_key_axis(), yaxis_title="notes", legend_title_text="family", height=380)
    return figure


def pitch_family_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Notes per family and key on a log colour scale, with an 'all families' row on top; empty cells are red.

    matrix: [families, N_KEYS] note counts, as ``pipeline.coverage.pitch_family_matrix`` returns.
    """
    counts = np.vstack([matrix.to_numpy().sum(axis=0, keepdims=True), matrix.to_numpy()]).astype(float)
    rows = [ALL_FAMILIES, *matrix.index]
    names = [[note_name(p) for p in KEYS]] * len(rows)
    with np.errstate(divide="ignore"):
        level = np.where(counts > 0, np.log10(np.maximum(counts, 1)), np.nan)
    empty = np.where(counts == 0, 1.0, np.nan)
    top = max(1, int(np.ceil(np.nanmax(level, initial=0.0))))
    figure = go.Figure()
    figure.add_heatmap(x=KEYS, y=rows, z=level, customdata=counts, text=names, colorscale="Viridis",
                       zmin=0, zmax=top, xgap=1, ygap=1, name="notes",
                       colorbar=dict(title="notes", tickvals=list(range(top + 1)),
                                     ticktext=[f"{10 ** k:,}" for k in range(top + 1)]),
                       hovertemplate="%{y}, %{text}: %{customdata:,.0f} notes<extra></extra>")
    figure.add_heatmap(x=KEYS, y=rows, z=empty, text=names, colorscale=[[0, NO_NOTES_COLOR], [1, NO_NOTES_COLOR]],
                       showscale=False, xgap=1, ygap=1, name="no notes",
                       hovertemplate="%{y}, %{text}: no notes<extra></extra>")
    figure.update_layout(title="Key by family (red: no notes at all)", xaxis=_key_axis(),
                         yaxis=dict(autorange="reversed", title=None), height=max(260, 60 + 24 * len(rows)))
    return figure


def hours_per_program(frame: pd.DataFrame) -> go.Figure:
    """A treemap of audio hours per family, split by program.

    frame: columns family, program, hours (``pipeline.coverage.hours_per_family``).
    """
    families = frame.groupby("family", sort=False)["hours"].sum()
    ids = [*families.index, *(f"{f}/{p}" for f, p in zip(frame["family"], frame["program"]))]
    labels = [*families.index, *(instrument_name(p) for p in frame["program"])]
    parents = ["" for _ in families.index] + list(frame["family"])
    values = [*families.to_numpy(), *frame["hours"].to_numpy()]
    colors = [family_color(f) for f in families.index] + [family_color(f) for f in frame["family"]]
    figure = go.Figure(go.Treemap(ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
                                  marker=dict(colors=colors), texttemplate="%{label}<br>%{value:.2f} h",
                                  hovertemplate="%{label}: %{value:.3f} h<extra></extra>"))
    figure.update_layout(title="Hours of audio per family and program (a mix counts for each instrument)",
                         height=420, margin=dict(t=50, l=10, r=10, b=10))
    return figure


def polyphony(frame: pd.DataFrame) -> go.Figure:
    """Share of time with 0, 1, 2, ... keys sounding at once. frame: columns polyphony, frames."""
    total = float(frame["frames"].sum()) or 1.0
    hours = frame["frames"] / FRAMES_PER_SECOND / 3600
    figure = go.Figure(go.Bar(x=frame["polyphony"], y=100 * frame["frames"] / total, customdata=hours,
                              marker_color="#4c78a8",
                              hovertemplate="%{x} keys: %{y:.1f}% of the time (%{customdata:.3f} h)<extra></extra>"))
    figure.update_layout(title="Polyphony", xaxis=dict(title="keys sounding at once", dtick=1),
                         yaxis_title="% of time", height=320)
    return figure


def note_lengths(frame: pd.DataFrame) -> go.Figure:
    """Notes per length bin. frame: columns bin (label, in order), notes."""
    figure = go.Figure(go.Bar(x=frame["bin"], y=frame["notes"], marker_color="#72b7b2",
                              hovertemplate="%{x}: %{y:,} notes<extra></extra>"))
    figure.update_layout(title="Note lengths", xaxis=dict(title="length", type="category"), yaxis_title="notes",
                         height=320)
    return figure


def velocities(frame: pd.DataFrame) -> go.Figure:
    """Notes per velocity bin. frame: columns velocity (bin start, bins of VELOCITY_BIN), notes."""
    labels = [f"{v}-{min(v + VELOCITY_BIN - 1, MIDI_VELOCITY_MAX)}" for v in frame["velocity"].astype(int)]
    figure = go.Figure(go.Bar(x=labels, y=frame["notes"], marker_color="#f58518",
                              hovertemplate="velocity %{x}: %{y:,} notes<extra></extra>"))
    figure.update_layout(title="Velocities", xaxis=dict(title="velocity", type="category"), yaxis_title="notes",
                         height=320)
    return figure


EXPRESSION_TITLE = "Performances and recording chains (share of items)"
STAGE_COLORS = {"performance": "#b279a2", "chain": "#4c78a8"}


def expression_shares(frame: pd.DataFrame) -> go.Figure:
    """Share of done items with each performance gesture or chain setting.
    frame: columns stage, what, items, share, count (``pipeline.coverage.expression_coverage``)."""
    figure = go.Figure()
    for stage, rows in frame.groupby("stage", sort=False):
        figure.add_trace(go.Bar(
            x=rows["share"], y=rows["what"], orientation="h", name=stage, marker_color=STAGE_COLORS.get(stage),
            customdata=np.stack([rows["items"], rows["count"]], axis=1),
            hovertemplate="%{y}: %{customdata[0]:,} items (%{x:.0%}), count %{customdata[1]:,}<extra></extra>"))
    figure.update_layout(title=EXPRESSION_TITLE, xaxis=dict(title="share of done items", tickformat=".0%"),
                         yaxis=dict(autorange="reversed", title=None), height=max(300, 22 * len(frame) + 120))
    return figure


def expression_summary(performance: dict | None, chain: dict | None) -> str:
    """One line on how an item was played and recorded, from its catalog records."""
    if performance is None:
        played = "Played as written"
    else:
        counts = performance.get("counts", {})
        played = "Performed: " + (", ".join(f"{gesture} {count}" for gesture, count in sorted(counts.items()))
                                  or "timing, dynamics and tuning only")
    if chain is None:
        return f"{played} · recorded dry"
    parts = [f"room {chain['room_size_m']:.0f} m, RT60 {chain['rt60_s']:.2f} s" if chain.get("room_size_m") else "no room",
             f"{chain.get('microphone')} microphone"]
    if chain.get("compressor_ratio", 1.0) > 1.0:
        parts.append(f"compressor {chain['compressor_ratio']:.1f}:1")
    if chain.get("noise"):
        parts.append(f"{chain['noise']} noise {chain['noise_snr_db']:.0f} dB down")
    if chain.get("drums"):
        parts.append("drums")
    parts.append(f"MP3 {chain.get('bitrate')}")
    return f"{played} · recorded: " + ", ".join(parts)


def stage_times(frame: pd.DataFrame) -> go.Figure:
    """Worker seconds per item-making stage. frame: columns stage, seconds, audio_per_wall."""
    speed = [f"{s:,.0f}x real time" if np.isfinite(s) else "" for s in frame["audio_per_wall"]]
    figure = go.Figure(go.Bar(x=frame["seconds"], y=frame["stage"], orientation="h", text=speed,
                              marker_color="#54a24b", hovertemplate="%{y}: %{x:,.1f} s<extra></extra>"))
    figure.update_layout(title="Worker time per stage", xaxis_title="seconds (summed over items)",
                         yaxis=dict(autorange="reversed", title=None), height=300)
    return figure


def item_preview(preview_path: str | Path, notes: pd.DataFrame, *, span_s: float) -> go.Figure:
    """An item's spectrogram preview (PNG) with its labelled notes drawn on it as outlined rectangles.

    notes: columns start_s, end_s, pitch, velocity, program, family. span_s: seconds the PNG's full width covers.
    The preview has N_KEYS bands of bins, low keys at the bottom, so y runs in MIDI pitch with each key one unit high.
    """
    with Image.open(preview_path) as opened:
        image = opened.convert("RGB")
    figure = go.Figure()
    figure.add_layout_image(source=image, xref="x", yref="y", x=0, y=HIGHEST_PITCH + 0.5, sizex=span_s,
                            sizey=N_KEYS, sizing="stretch", layer="below")
    shown = notes[notes["pitch"].between(LOWEST_PITCH, HIGHEST_PITCH)]
    for family, group in shown.groupby("family", sort=True):
        color = family_color(family)
        figure.add_scatter(x=_outline(group["start_s"], group["end_s"]),
                           y=_outline(group["pitch"] - NOTE_HALF_HEIGHT, group["pitch"] + NOTE_HALF_HEIGHT,
                                      vertical=True),
                           mode="lines", line=dict(color=color, width=1.5), name=family, legendgroup=family,
                           hoverinfo="skip")
        figure.add_scatter(x=(group["start_s"] + group["end_s"]) / 2, y=group["pitch"], mode="markers",
                           marker=dict(color=color, size=3), legendgroup=family, showlegend=False,
                           hovertext=[f"{note_name(n.pitch)} at {n.start_s:.2f} s for {n.end_s - n.start_s:.2f} s,"
                                      f" velocity {n.velocity}<br>{instrument_name(n.program)}"
                                      for n in group.itertuples()], hoverinfo="text")
    figure.update_layout(title="Spectrogram with its labels", xaxis=dict(title="seconds", range=[0, span_s],
                                                                          showgrid=False, zeroline=False),
                         yaxis=_key_axis(), height=520, plot_bgcolor="black", legend_title_text="labels")
    return figure


def _outline(low: pd.Series, high: pd.Series, *, vertical: bool = False) -> list:
    """Closed rectangles as one polyline: for each note (low, high) corners, then a None to lift the pen."""
    points: list = []
    for lo, hi in zip(low, high):
        points += [lo, lo, hi, hi, lo, None] if vertical else [lo, hi, hi, lo, lo, None]
    return points
