"""Home: what exists (datasets, jobs) and what to do first."""

import streamlit as st

from dashboard.settings import data_dir
from pipeline import coverage

st.title("Mp3-to-MIDI")
st.write("Turn recordings into MIDI, and build the training data that makes it possible.")

datasets = coverage.list_datasets(data_dir())
if datasets.empty:
    st.info("No datasets yet. Make the built-in one from a terminal:\n\n"
            "`.venv/bin/python -m pipeline generate --name demo --limit 50`")
else:
    st.subheader("Datasets")
    st.dataframe(datasets, hide_index=True, column_config={"hours": st.column_config.NumberColumn(format="%.2f")})

jobs = coverage.recent_jobs(data_dir())
if not jobs.empty:
    st.subheader("Generation jobs")
    st.dataframe(jobs[["dataset", "status", "done", "failed", "total", "started_at", "finished_at"]], hide_index=True)
