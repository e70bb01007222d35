"""Dashboard pages through Streamlit's AppTest, on an empty catalog and on a small generated one."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from pipeline.jobs import GenerateOptions, generate

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def run_app(data: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("MP3_TO_MIDI_DATA", str(data))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception
    return app


def test_home_on_an_empty_catalog_says_what_to_do_first(tmp_path: Path, monkeypatch):
    app = run_app(tmp_path, monkeypatch)
    assert "No datasets yet" in app.info[0].value
    shown = {metric.label: metric.value for metric in app.metric}
    assert shown["Model"] == "default" and float(shown["Validation onset F1"]) > 0.3
    assert not (tmp_path / "catalog.duckdb").exists()


def test_home_lists_datasets_and_jobs(good_folder: Path, tmp_path: Path, monkeypatch):
    generate(GenerateOptions(name="little", source=str(good_folder), data_dir=str(tmp_path), workers=1,
                             clip_seconds=2.0))
    app = run_app(tmp_path, monkeypatch)
    datasets = app.dataframe[0].value
    assert list(datasets["name"]) == ["little"] and int(datasets["done"].iloc[0]) == 3
    assert list(app.dataframe[1].value["status"]) == ["done"]
    assert len(app.dataframe) == 2  # no training runs yet, so no runs table


def test_home_marks_a_job_whose_process_died_as_interrupted(good_folder: Path, tmp_path: Path, monkeypatch):
    from pipeline.catalog import connect

    generate(GenerateOptions(name="little", source=str(good_folder), data_dir=str(tmp_path), workers=1,
                             clip_seconds=2.0))
    with connect(tmp_path) as connection:  # as if the machine had been switched off mid-job
        connection.execute("UPDATE jobs SET status = 'running', pid = 2147483000")
    app = run_app(tmp_path, monkeypatch)
    assert list(app.dataframe[1].value["status"]) == ["interrupted"]
