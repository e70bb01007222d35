"""The Training page's "Fine-tune to my sound" flow: launched from the form into its own process, watched through
the catalog, and its before/after report and verdict shown (the model made active only when it is worth it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.active import active_model
from model.finetune import finetune_status
from pipeline.render import default_soundfont
from tests.apptest import open_page
from tests.conftest import write_piece
from tests.test_background import wait_for


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finetune-page")
    for index in range(12):  # two pieces fall in validation, one in test
        write_piece(root / "midi" / f"p{index}.mid", program=index * 5, start_pitch=45 + 2 * index, n_notes=10)
    return root


def fill(app, *, name: str, midi: Path, steps: int = 1) -> None:
    fonts = next(widget for widget in app.selectbox if widget.label == "Your sound (soundfont)")
    fonts.set_value(default_soundfont())
    texts = {widget.label: widget for widget in app.text_input}
    texts["Name"].set_value(name)
    texts["Pieces from a MIDI folder (optional)"].set_value(str(midi))
    numbers = {widget.label: widget for widget in app.number_input}
    numbers["Pieces"].set_value(12)
    numbers["Seconds per piece"].set_value(2.0)
    numbers["Fine-tune steps"].set_value(steps)
    next(button for button in app.button if button.label == "Fine-tune the active model").click().run()


def test_a_bad_fine_tune_is_refused_on_the_page(folders, monkeypatch):
    app = open_page(folders / "data", monkeypatch, "app_pages/training.py")
    fill(app, name="Not A Name", midi=folders / "midi")
    assert "Not started: fine-tune name 'Not A Name' is not allowed" in app.error[0].value
    fill(app, name="fine", midi=folders / "nowhere")
    assert "is neither 'builtin' nor a folder" in app.error[0].value
    assert finetune_status(folders / "data", "fine") is None  # nothing launched


def test_fine_tune_from_the_page_and_see_before_and_after(folders, monkeypatch):
    data = folders / "data"
    app = open_page(data, monkeypatch, "app_pages/training.py")
    fill(app, name="my-sound", midi=folders / "midi")
    assert "Started fine-tune **my-sound**" in app.success[0].value
    wait_for(lambda: (state := finetune_status(data, "my-sound")) is not None and state.status != "running",
             timeout_s=600)
    state = finetune_status(data, "my-sound")
    assert state.status == "done", (state.message, state.log)

    app.run()
    table = next(frame.value for frame in app.dataframe if "set" in frame.value.columns)
    assert list(table["set"]) == ["your sound (held-out pieces)", "default sound (held-out pieces)"]
    assert {"onset F1 before", "onset F1 after", "frame F1 before", "frame F1 after"} <= set(table.columns)
    assert any("Few held-out pieces in your sound (held-out pieces), default sound" in caption.value
               for caption in app.caption)  # 12 pieces leave one in test
    verdict = state.report["verdict"]
    activate = [button for button in app.button if button.label == "Make the fine-tuned model active"]
    if verdict["keep"]:
        assert any(verdict["reason"] in message.value for message in app.success)
        activate[0].click().run()
        assert active_model(data).run == "my-sound"
    else:
        assert not activate and any(verdict["reason"] in message.value for message in app.info)
        assert active_model(data).run is None
