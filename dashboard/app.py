"""Mp3-to-MIDI dashboard: ``streamlit run dashboard/app.py``. A router and a shared sidebar; pages hold no logic."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.settings import data_dir, shown_path

ROOT = Path(__file__).resolve().parents[1]
st.set_page_config(page_title="Mp3-to-MIDI", page_icon=":material/piano:", layout="wide")
PAGES = ROOT / "dashboard" / "app_pages"
pages = [
    st.Page(str(PAGES / "home.py"), title="Home", icon=":material/home:", default=True),
    st.Page(str(PAGES / "generate.py"), title="Generate", icon=":material/factory:", url_path="generate"),
    st.Page(str(PAGES / "coverage.py"), title="Dataset coverage", icon=":material/bar_chart:", url_path="coverage"),
    st.Page(str(PAGES / "training.py"), title="Training", icon=":material/model_training:", url_path="training"),
    st.Page(str(PAGES / "transcribe.py"), title="Transcribe", icon=":material/music_note:", url_path="transcribe"),
]
with st.sidebar:
    st.caption(f"Data folder: `{shown_path(data_dir())}`")
st.navigation(pages).run()
