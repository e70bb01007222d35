"""Home: what exists (datasets, jobs, runs, the active model) and where to go next."""

import streamlit as st

from dashboard.settings import data_dir
from model.active import active_model, describe
from model.runs import list_runs
from pipeline import coverage

st.title("Mp3-to-MIDI")
st.write("Turn recordings of any instrument into MIDI, and build the training data and models that make it possible.")

links = st.columns(4)
links[0].page_link("app_pages/generate.py", label="Generate a dataset", icon=":material/factory:")
links[1].page_link("app_pages/coverage.py", label="Inspect coverage", icon=":material/bar_chart:")
links[2].page_link("app_pages/training.py", label="Train and compare", icon=":material/model_training:")
links[3].page_link("app_pages/transcribe.py", label="Transcribe an MP3", icon=":material/music_note:")

model = describe(active_model(data_dir()))
st.subheader("Active model")
cells = st.columns(4)
cells[0].metric("Model", model["label"].split(" (")[0], f"{model['parameters']:,} parameters", delta_color="off",
                delta_arrow="off")
cells[1].metric("Validation onset F1", f"{model['onset_f1']:.3f}" if model["onset_f1"] is not None else "–")
cells[2].metric("Note-with-offset F1", f"{model['offset_f1']:.3f}" if model["offset_f1"] is not None else "–")
cells[3].metric("Frame F1", f"{model['frame_f1']:.3f}" if model["frame_f1"] is not None else "–")

datasets = coverage.list_datasets(data_dir())
if datasets.empty:
    st.info("No datasets yet. Start with **Transcribe** to try the default model on an MP3, or make training data "
            "on **Generate** (50 built-in pieces take about a minute). From a terminal: "
            "`.venv/bin/python -m pipeline generate --name demo --limit 50`")
else:
    st.subheader("Datasets")
    st.dataframe(datasets, hide_index=True, column_config={"hours": st.column_config.NumberColumn(format="%.2f")})

jobs = coverage.recent_jobs(data_dir())
if not jobs.empty:
    running = jobs[jobs["status"].isin(["planning", "running"])]
    st.subheader("Generation jobs" + (f" ({len(running)} running)" if len(running) else ""))
    st.dataframe(jobs[["dataset", "status", "done", "failed", "total", "started_at", "finished_at"]], hide_index=True)

runs = list_runs(data_dir())
if not runs.empty:
    st.subheader("Training runs")
    st.dataframe(runs[["name", "status", "step", "steps", "best_onset_f1", "device", "started_at"]], hide_index=True,
                 column_config={"best_onset_f1": st.column_config.NumberColumn("best onset F1", format="%.3f")})
