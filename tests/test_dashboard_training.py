"""The Training page: launch real runs in other processes, watch and compare them, stop one, choose the active model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from model.active import active_model
from model.checkpoints import DEFAULT_CHECKPOINT, load_checkpoint
from model.runs import list_runs, stored_config
from pipeline.jobs import GenerateOptions, generate
from tests.apptest import open_page
from tests.test_background import wait_for

@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    from tests.conftest import write_piece

    root = tmp_path_factory.mktemp("training-page")
    for index, program in enumerate((0, 40, 24, 73)):
        write_piece(root / "midi" / f"p{index}.mid", program=program, start_pitch=45 + 5 * index)
    generate(GenerateOptions(name="tiny", source=str(root / "midi"), data_dir=str(root / "data"), workers=1,
                             clip_seconds=2.0))
    return root / "data"


def training_page(data: Path, monkeypatch) -> AppTest:
    return open_page(data, monkeypatch, "app_pages/training.py")


def launch(app: AppTest, *, run: str, steps: int, lr: float = 2e-3, start: str | None = None, shift: int = 1) -> None:
    app.text_input[0].set_value(run)
    numbers = {widget.label: widget for widget in app.number_input}
    numbers["Steps"].set_value(steps)
    numbers["Batch size"].set_value(2)
    numbers["Learning rate"].set_value(lr)
    numbers["Evaluate every (steps)"].set_value(3)
    numbers["Feature shift (CQT bins)"].set_value(shift)
    if start is not None:
        next(widget for widget in app.selectbox if widget.label == "Start from").set_value(start)
    next(button for button in app.button if button.label == "Start training").click().run()


def status(data: Path, run: str) -> str | None:
    runs = list_runs(data)
    row = runs[runs["name"] == run]
    return None if row.empty else row["status"].iloc[0]


def step(data: Path, run: str) -> int:
    runs = list_runs(data)
    return int(runs.loc[runs["name"] == run, "step"].iloc[0])


def test_on_an_empty_catalog_the_page_says_to_make_a_dataset_first(tmp_path: Path, monkeypatch):
    app = training_page(tmp_path, monkeypatch)
    infos = [info.value for info in app.info]
    assert any("No dataset with finished items yet" in text for text in infos)
    assert any("No training runs yet" in text for text in infos)
    assert any("uses **default (committed)**" in markdown.value for markdown in app.markdown)


def test_bad_run_name_is_refused_on_the_page(catalog: Path, monkeypatch):
    app = training_page(catalog, monkeypatch)
    launch(app, run="No Good", steps=3)
    assert "is not allowed" in app.error[0].value


def test_launch_compare_and_activate_runs(catalog: Path, monkeypatch):
    app = training_page(catalog, monkeypatch)
    launch(app, run="first", steps=6)
    assert "Started run **first**" in app.success[0].value
    wait_for(lambda: status(catalog, "first") == "done", timeout_s=240)
    launch(app, run="second", steps=6, lr=5e-3)
    wait_for(lambda: status(catalog, "second") == "done", timeout_s=240)

    app = training_page(catalog, monkeypatch)
    runs = app.dataframe[0].value
    assert set(runs["name"]) >= {"first", "second"} and set(runs["status"]) == {"done"}
    compare = next(widget for widget in app.multiselect if widget.label == "Runs")
    compare.set_value(["first", "second"]).run()
    assert len(app.get("plotly_chart")) == 2
    final = next(frame.value for frame in app.dataframe if "onset_f1" in frame.value.columns)
    assert list(final["run"]) == ["first", "second"] and list(final["step"]) == [6, 6]
    differences = next(frame.value for frame in app.dataframe if "setting" in frame.value.columns)
    assert list(differences["setting"]) == ["lr"]

    pick = next(widget for widget in app.selectbox if widget.label.startswith("Make a run's best"))
    pick.set_value(next(option for option in pick.options if "run second" in option)).run()
    next(button for button in app.button if button.label == "Make active").click().run()
    assert active_model(catalog).run == "second"
    assert "run second" in app.success[0].value


def test_a_run_launched_from_the_page_starts_from_the_model_and_shift_chosen(catalog: Path, monkeypatch):
    app = training_page(catalog, monkeypatch)
    start = next(widget for widget in app.selectbox if widget.label == "Start from")
    assert start.options[:2] == ["a new network", "default (committed)"] and start.value == ""
    launch(app, run="warm", steps=3, start=str(DEFAULT_CHECKPOINT), shift=2)
    wait_for(lambda: status(catalog, "warm") == "done", timeout_s=240)
    config = stored_config(catalog, "warm")
    assert config["init_from"] == "model/checkpoints/default.pt" and config["size"] is None
    assert config["bin_shift"] == 2 and len(config["init_from_sha256"]) == 64
    trained = load_checkpoint(catalog / "runs" / "warm" / "best.pt")
    assert trained["model_config"] == load_checkpoint(DEFAULT_CHECKPOINT)["model_config"]


def test_stop_a_running_run_from_the_page(catalog: Path, monkeypatch):
    app = training_page(catalog, monkeypatch)
    launch(app, run="long", steps=100_000)
    wait_for(lambda: status(catalog, "long") == "running" and step(catalog, "long") >= 3, timeout_s=120)
    app.run()
    assert any(markdown.value == "**long** is training" for markdown in app.markdown)
    next(button for button in app.button if button.label == "Stop long").click().run()
    wait_for(lambda: status(catalog, "long") == "cancelled", timeout_s=60)
    saved = load_checkpoint(catalog / "runs" / "long" / "latest.pt")
    assert saved["step"] >= step(catalog, "long") >= 3  # the steps since the last evaluation are kept too
