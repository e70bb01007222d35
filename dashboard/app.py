"""Mp3-to-MIDI dashboard: ``streamlit run dashboard/app.py``. A router and a shared sidebar; pages hold no logic."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard.settings import data_dir  # noqa: E402

st.set_page_config(page_title="Mp3-to-MIDI", page_icon="🎹", layout="wide")
pages = [st.Page(str(ROOT / "dashboard" / "app_pages" / "home.py"), title="Home", icon="🏠", default=True)]
with st.sidebar:
    st.caption(f"Data folder: `{data_dir()}`")
st.navigation(pages).run()
