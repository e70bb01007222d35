"""The Generate page: its form launches a real job in another process, and it shows that job's progress."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.background import cancel_generation, job_progress, resume_options
from pipeline.item_gate import OPEN, set_gate
from tests.apptest import open_page
from tests.test_background import HELD_JOB_PIECES, gate, many_pieces, wait_for  # noqa: F401 - gate is a fixture

def generate_page(data: Path, monkeypatch) -> AppTest:
    return open_page(data, monkeypatch, "app_pages/generate.py")


def fill_form(app: AppTest, *, name: str, folder: Path, clip_s: float = 2.0) -> None:
    inputs = {widget.label: widget for widget in app.text_input}
    inputs["Dataset name"].set_value(name)
    inputs["MIDI folder (searched recursively)"].set_value(str(folder))
    app.radio[0].set_value("A folder of MIDI files")
    numbers = {widget.label: widget for widget in app.number_input}
    numbers["Clip length, seconds (0: whole pieces)"].set_value(clip_s)
    numbers["Worker processes"].set_value(1)
    numbers["Pieces (at most; 0: all)"].set_value(0)  # a folder is taken whole


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def test_on_an_empty_catalog_the_page_offers_the_form_and_says_what_to_do(tmp_path: Path, monkeypatch):
    app = generate_page(tmp_path, monkeypatch)
    assert "No dataset yet" in app.info[0].value
    assert app.button[0].label == "Start" and app.multiselect[0].value  # the embedded soundfont is preselected


def test_a_bad_name_is_refused_on_the_page_and_nothing_starts(tmp_path: Path, monkeypatch):
    app = generate_page(tmp_path, monkeypatch)
    fill_form(app, name="../escape", folder=tmp_path)
    app.button[0].click().run()
    assert "is not allowed" in app.error[0].value
    assert not (tmp_path / "logs").exists() and not (tmp_path / "datasets").exists()


def test_start_watch_cancel_and_resume_from_the_page(tmp_path: Path, monkeypatch, gate: Path):
    data, source = tmp_path / "data", many_pieces(tmp_path / "midi", HELD_JOB_PIECES)
    set_gate(gate, 1)  # one item finishes, the next waits at the gate until the test opens it
    app = generate_page(data, monkeypatch)
    fill_form(app, name="from-page", folder=source, clip_s=3.0)
    app.button[0].click().run()
    assert "Started generating **from-page**" in app.success[0].value

    wait_for(lambda: (p := job_progress(data, "from-page")) and p.status == "running" and p.done == 1)
    app.run()
    assert app.subheader[0].value.endswith("running")
    cancel = next(button for button in app.button if button.label == "Cancel")
    cancel.click().run()
    wait_for(lambda: job_progress(data, "from-page").status == "cancelled")
    app.run()
    assert app.subheader[0].value.endswith("cancelled") and metrics(app)["Done"] == f"1 / {HELD_JOB_PIECES}"

    set_gate(gate, OPEN)
    resume = next(button for button in app.button if button.label == "Resume")
    resume.click().run()
    wait_for(lambda: job_progress(data, "from-page").status == "done")
    wait_for(lambda: f"from-page: {HELD_JOB_PIECES} done" in job_progress(data, "from-page").log)  # after the status
    app.run()
    assert app.subheader[0].value.endswith("done") and metrics(app)["Done"] == f"{HELD_JOB_PIECES} / {HELD_JOB_PIECES}"
    assert f"from-page: {HELD_JOB_PIECES} done" in app.code[0].value


def test_a_failed_job_shows_failed_with_its_reason_and_can_be_resumed(good_folder: Path, tmp_path: Path,
                                                                      monkeypatch):
    from pipeline.jobs import GenerateOptions, JobFailed, generate

    data = tmp_path / "data"
    with pytest.raises(JobFailed, match="cannot reach the Dask cluster"):
        generate(GenerateOptions(name="broken", source=str(good_folder), data_dir=str(data), clip_seconds=2.0,
                                 cluster="tcp://127.0.0.1:9"))
    app = generate_page(data, monkeypatch)
    assert app.subheader[0].value.endswith(": failed")
    assert "cannot reach the Dask cluster at 'tcp://127.0.0.1:9'" in app.error[0].value
    assert any(button.label == "Resume" for button in app.button)


def test_the_form_sets_the_expression_and_renderer_shares(tmp_path: Path, monkeypatch, gate: Path):
    """Performances, recording chains and the procedural renderers are chosen on the page as on the command line,
    and the dataset keeps them (a resume carries them)."""
    data, source = tmp_path / "data", many_pieces(tmp_path / "midi", HELD_JOB_PIECES)
    set_gate(gate, 0)  # no item starts: the job only has to plan
    app = generate_page(data, monkeypatch)
    fill_form(app, name="shares", folder=source)
    chosen = {"Share performed with expression": 0.5, "Share through a recording chain": 0.25,
              "Share played by procedural instruments": 0.2, "Share sung by the procedural voice": 0.1}
    sliders = {widget.label: widget for widget in app.slider}
    for label, value in chosen.items():
        sliders[label].set_value(value)
    app.button[0].click().run()
    assert "Started generating **shares**" in app.success[0].value
    wait_for(lambda: (p := job_progress(data, "shares")) is not None and p.status == "running")
    options = resume_options(data, "shares", workers=1)
    assert (options.performance_probability, options.chain_probability, options.synth_probability,
            options.voice_probability) == tuple(chosen.values())
    assert cancel_generation(data, "shares")
    wait_for(lambda: job_progress(data, "shares").status == "cancelled")
