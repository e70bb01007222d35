"""Plotly figures of training runs, drawn from the run_metrics table as DataFrames."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

LOSSES = ("train_loss", "validation_loss")
SCORES = ("onset_f1", "offset_f1", "frame_f1")
LABELS = {"train_loss": "train loss", "validation_loss": "validation loss", "onset_f1": "onset F1",
          "offset_f1": "note-with-offset F1", "frame_f1": "frame F1", "velocity_f1": "velocity F1",
          "learning_rate": "learning rate", "examples_per_s": "crops per second"}
DASHES = ("solid", "dash", "dot", "dashdot")


def curves(metrics: pd.DataFrame, columns: tuple[str, ...], *, title: str) -> go.Figure:
    """One line per (run, metric) against step: a colour per run, a dash pattern per metric."""
    figure = go.Figure()
    palette = qualitative.Plotly
    for run_index, (run, rows) in enumerate(metrics.groupby("run", sort=False)):
        for column_index, column in enumerate(columns):
            figure.add_trace(go.Scatter(
                x=rows["step"], y=rows[column], mode="lines+markers", name=f"{run} · {LABELS[column]}",
                line=dict(color=palette[run_index % len(palette)], dash=DASHES[column_index % len(DASHES)])))
    figure.update_layout(title=title, xaxis_title="step", height=340, margin=dict(l=10, r=10, t=40, b=10),
                         legend=dict(orientation="h", y=-0.25))
    return figure
