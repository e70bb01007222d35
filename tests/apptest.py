"""Open one dashboard page in Streamlit's AppTest, on a given data folder."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def open_page(data: Path, monkeypatch, page: str) -> AppTest:
    """Run the app with MP3_TO_MIDI_DATA=data, switch to ``page`` (e.g. 'app_pages/generate.py'), check it ran."""
    monkeypatch.setenv("MP3_TO_MIDI_DATA", str(data))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page(page)
    app.run()
    assert not app.exception
    return app
