"""The Dataset coverage page, its queries in pipeline.coverage and its figures, on an empty catalog and on small
generated ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import coverage_charts as charts
from pipeline import coverage
from pipeline.catalog import connect
from pipeline.constants import HIGHEST_PITCH, LOWEST_PITCH, N_KEYS
from pipeline.errors import Mp3MidiError
from pipeline.instruments import FAMILIES
from pipeline.jobs import GenerateOptions, dataset_dir, generate
from tests.conftest import write_piece

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGE = "app_pages/coverage.py"
CHART_TITLES = {"Notes per key, by instrument family", "Key by family (red: no notes at all)",
                "Hours of audio per family and program (a mix counts for each instrument)", "Polyphony",
                "Note lengths", "Velocities", "Spectrogram with its labels", "Worker time per stage"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    """Three datasets: 'little' (3 pieces done, 1 failed), 'solo' (1 piece), 'broken' (only a failed item)."""
    root = tmp_path_factory.mktemp("coverage")
    little, solo, broken = root / "little", root / "solo", root / "broken"
    write_piece(little / "one.mid", program=0, start_pitch=48)
    write_piece(little / "two.mid", program=40, start_pitch=60)
    write_piece(little / "three.mid", program=24, start_pitch=52, drums=True)
    (little / "text.mid").write_text("this is a text file named like a MIDI file\n")
    write_piece(solo / "four.mid", program=33, start_pitch=36, n_notes=5)
    broken.mkdir()
    (broken / "text.mid").write_text("this is a text file named like a MIDI file\n")
    data = root / "data"
    for folder in (little, solo, broken):
        generate(GenerateOptions(name=folder.name, source=str(folder), data_dir=str(data), workers=1,
                                 clip_seconds=2.0))
    return data


def sql(data: Path, query: str, *params) -> list[tuple]:
    """Ground truth straight from the catalog, independent of the functions under test."""
    with connect(data, read_only=True) as connection:
        return connection.execute(query, list(params)).fetchall()


def open_page(data: Path, monkeypatch, **query_params: str) -> AppTest:
    monkeypatch.setenv("MP3_TO_MIDI_DATA", str(data))
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params.update(query_params)
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception
    return app


def chart_titles(app: AppTest) -> list[str]:
    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in app.get("plotly_chart")]


def chart(app: AppTest, title: str) -> dict:
    return next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"] == title)


# --- the page ------------------------------------------------------------------------------------------------------

def test_empty_catalog_says_there_is_no_dataset_and_how_to_make_one(tmp_path: Path, monkeypatch):
    app = open_page(tmp_path, monkeypatch)
    assert "no dataset yet" in app.info[0].value
    assert "Generate" in app.info[0].value and "python -m pipeline generate --name demo --limit 50" in app.info[0].value
    assert not app.get("plotly_chart") and not app.selectbox
    assert not (tmp_path / "catalog.duckdb").exists()


def test_page_shows_totals_charts_gaps_and_failures(catalog: Path, monkeypatch):
    app = open_page(catalog, monkeypatch, dataset="little")
    notes = sql(catalog, "SELECT count(*) FROM item_notes JOIN items USING (item_id) WHERE dataset = 'little'")[0][0]
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Items"] == "4" and metrics["Done"] == "3" and metrics["Failed"] == "1"
    assert metrics["Pending"] == "0" and metrics["Notes"] == f"{notes:,}" and notes > 0
    assert set(chart_titles(app)) == CHART_TITLES
    played = {pitch for (pitch,) in sql(catalog, "SELECT DISTINCT pitch FROM item_notes JOIN items USING (item_id)"
                                                 " WHERE dataset = 'little'")}
    gaps = app.warning[0].value
    assert gaps.startswith(f"{N_KEYS - len(played)} of the {N_KEYS} keys have no notes")
    assert "A0" in gaps and all(charts.note_name(pitch) not in gaps.split(": ")[1].split(", ") for pitch in played)
    reasons = app.dataframe[0].value
    assert int(reasons["items"].sum()) == 1 and "MIDI" in reasons["reason"].iloc[0]


@pytest.mark.parametrize("asked, shown, warning", [
    ("little", "little", None),
    ("solo", "solo", None),
    ("nope", "broken", "There is no dataset named 'nope'"),
])
def test_dataset_comes_from_the_query_string(catalog: Path, monkeypatch, asked: str, shown: str, warning):
    app = open_page(catalog, monkeypatch, dataset=asked)
    assert app.selectbox(key="coverage_dataset").value == shown
    assert app.selectbox(key="coverage_dataset").options == ["little", "solo", "broken"]
    warnings = [w.value for w in app.warning if w.value.startswith("There is no dataset")]
    assert warnings == ([f"{warning}; showing {shown!r} instead."] if warning else [])


def test_dataset_with_no_finished_item_says_so_and_lists_its_failure(catalog: Path, monkeypatch):
    app = open_page(catalog, monkeypatch, dataset="broken")
    assert {m.label: m.value for m in app.metric}["Done"] == "0"
    assert "has no finished items yet" in app.info[0].value
    assert "has no finished items yet" in app.warning[0].value  # the item browser
    assert not app.get("plotly_chart") and not app.get("audio")
    assert int(app.dataframe[0].value["items"].sum()) == 1


def test_item_browser_shows_the_chosen_item(catalog: Path, monkeypatch):
    app = open_page(catalog, monkeypatch, dataset="little")
    rows = sql(catalog, "SELECT item_id, source, n_notes FROM items WHERE dataset = 'little' AND status = 'done'"
                        " ORDER BY ordinal")
    picker = app.selectbox(key="coverage_item")
    assert picker.options and len(picker.options) == 3
    item_id, source, n_notes = rows[-1]
    picker.select(item_id).run()
    assert not app.exception
    details = app.markdown[0].value
    assert f"`{source}`" in details and f"**Notes:** {n_notes:,}" in details
    assert len(app.get("audio")) == 1
    preview = chart(app, "Spectrogram with its labels")
    assert len(preview["layout"]["images"]) == 1
    outlines = [trace for trace in preview["data"] if trace.get("mode") == "lines"]
    assert sum(trace["x"].count(None) for trace in outlines) == n_notes


def test_item_browser_filters_by_source_text(catalog: Path, monkeypatch):
    app = open_page(catalog, monkeypatch, dataset="little")
    app.text_input(key="coverage_contains").input("TWO").run()
    options = app.selectbox(key="coverage_item").options
    assert [label.split(" · ")[1].endswith("two.mid") for label in options] == [True]
    app.text_input(key="coverage_contains").input("no such piece").run()
    assert "No finished item matches" in app.warning[-1].value
    assert not app.get("audio")


# --- the queries ---------------------------------------------------------------------------------------------------

def test_pitch_family_matrix_has_every_key_and_counts_every_note(catalog: Path):
    matrix = coverage.pitch_family_matrix(catalog, "little")
    assert matrix.shape[1] == N_KEYS and list(matrix.columns) == list(range(LOWEST_PITCH, HIGHEST_PITCH + 1))
    notes = sql(catalog, "SELECT count(*) FROM item_notes JOIN items USING (item_id) WHERE dataset = 'little'"
                         " AND pitch BETWEEN ? AND ?", LOWEST_PITCH, HIGHEST_PITCH)[0][0]
    assert int(matrix.to_numpy().sum()) == notes > 0
    families = {family for (family,) in sql(catalog, "SELECT DISTINCT family FROM item_notes JOIN items"
                                                     " USING (item_id) WHERE dataset = 'little'")}
    assert set(matrix.index) == families and list(matrix.index) == [f for f in FAMILIES if f in families]
    per_key = dict(sql(catalog, "SELECT pitch, count(*) FROM item_notes JOIN items USING (item_id)"
                                " WHERE dataset = 'little' GROUP BY pitch"))
    assert coverage.keys_without_notes(matrix) == [p for p in matrix.columns if p not in per_key]
    assert all(int(matrix[p].sum()) == count for p, count in per_key.items())


def test_pitch_family_matrix_of_a_dataset_without_notes_is_all_gaps(catalog: Path):
    matrix = coverage.pitch_family_matrix(catalog, "broken")
    assert matrix.shape == (0, N_KEYS)
    assert coverage.keys_without_notes(matrix) == list(range(LOWEST_PITCH, HIGHEST_PITCH + 1))


def test_done_items_filters_by_family_and_source(catalog: Path):
    everything = coverage.done_items(catalog, "little")
    assert len(everything) == 3 and list(everything["ordinal"]) == sorted(everything["ordinal"])
    assert list(coverage.done_items(catalog, "little", contains="TWO")["source"].map(lambda s: Path(s).name)) == \
        ["two.mid"]
    family = everything["families"].iloc[0][0]
    chosen = coverage.done_items(catalog, "little", family=family)
    assert 1 <= len(chosen) and all(family in list(families) for families in chosen["families"])
    assert len(coverage.done_items(catalog, "little", limit=2)) == 2


@pytest.mark.parametrize("call, message", [
    (lambda data: coverage.done_items(data, "little", family="kazoo"), "unknown instrument family 'kazoo'"),
    (lambda data: coverage.done_items(data, "missing"), "no dataset named 'missing'"),
    (lambda data: coverage.pitch_family_matrix(data, "../etc"), "name '../etc' is not allowed"),
    (lambda data: coverage.item_view(data, "little", "no-such-item"), "has no finished item 'no-such-item'"),
    (lambda data: coverage.item_view(data, "solo", coverage.done_items(data, "little")["item_id"].iloc[0]),
     "dataset 'solo' has no finished item"),
])
def test_bad_requests_say_what_was_given(catalog: Path, call, message: str):
    with pytest.raises(Mp3MidiError, match=message):
        call(catalog)


def test_item_view_reads_notes_and_files_inside_the_dataset(catalog: Path):
    items_dir = dataset_dir(catalog, "little") / "items"
    for row in coverage.done_items(catalog, "little").itertuples():
        view = coverage.item_view(catalog, "little", row.item_id)
        assert len(view.notes) == view.n_notes == row.n_notes
        assert list(view.notes.columns) == ["start_s", "end_s", "pitch", "velocity", "program", "family"]
        assert (view.notes["end_s"] > view.notes["start_s"]).all()
        assert view.audio_path.parent == items_dir and view.audio_path.suffix == ".mp3"
        assert view.preview_path.parent == items_dir and view.preview_path.is_file()
        assert view.duration_s <= view.preview_span_s < view.duration_s + 0.1


@pytest.mark.parametrize("stored, message", [
    ("../../../catalog.duckdb", "which is not inside"),
    ("/etc/hostname", "which is not inside"),
    ("gone.mp3", "missing its file"),
])
def test_item_view_refuses_files_outside_the_dataset_or_missing(catalog: Path, tmp_path: Path, stored: str,
                                                               message: str):
    data = tmp_path / "data"
    shutil.copytree(catalog, data)
    item_id = coverage.done_items(data, "little")["item_id"].iloc[0]
    with connect(data) as connection:
        connection.execute("UPDATE items SET audio_path = ? WHERE item_id = ?", [stored, item_id])
    with pytest.raises(Mp3MidiError, match=message):
        coverage.item_view(data, "little", item_id)


def test_broken_item_file_is_an_error_on_the_page_not_a_traceback(catalog: Path, tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(catalog, data)
    with connect(data) as connection:
        connection.execute("UPDATE items SET audio_path = '../../x.mp3' WHERE dataset = 'little'")
    app = open_page(data, monkeypatch, dataset="little")
    assert "which is not inside" in app.error[0].value
    assert not app.get("audio")


# --- the figures ---------------------------------------------------------------------------------------------------

def test_heatmap_paints_exactly_the_empty_cells_red(catalog: Path):
    matrix = coverage.pitch_family_matrix(catalog, "little")
    counts, empty = charts.pitch_family_heatmap(matrix).data
    assert list(counts.y) == [charts.ALL_FAMILIES, *matrix.index] and list(counts.x) == list(matrix.columns)
    totals = matrix.to_numpy().sum(axis=0)
    for row, values in enumerate([totals, *matrix.to_numpy()]):
        assert [cell == 1 for cell in empty.z[row]] == [value == 0 for value in values]


def test_notes_per_key_stacks_families_and_crosses_silent_keys(catalog: Path):
    matrix = coverage.pitch_family_matrix(catalog, "little")
    figure = charts.notes_per_key(matrix)
    bars = [trace for trace in figure.data if trace.type == "bar"]
    assert [bar.name for bar in bars] == list(matrix.index)
    assert sum(sum(bar.y) for bar in bars) == matrix.to_numpy().sum()
    crosses = [trace for trace in figure.data if trace.name == "no notes"]
    assert list(crosses[0].x) == coverage.keys_without_notes(matrix)


def test_item_preview_puts_each_note_on_its_key_and_time(catalog: Path):
    view = coverage.item_view(catalog, "little", coverage.done_items(catalog, "little")["item_id"].iloc[0])
    figure = charts.item_preview(view.preview_path, view.notes, span_s=view.preview_span_s)
    image = figure.layout.images[0]
    assert (image.x, image.sizex, image.y, image.sizey) == (0, view.preview_span_s, HIGHEST_PITCH + 0.5, N_KEYS)
    drawn = []
    for trace in (t for t in figure.data if t.mode == "lines"):
        xs, ys = list(trace.x), list(trace.y)
        for start in range(0, len(xs), 6):
            drawn.append((min(xs[start:start + 5]), max(xs[start:start + 5]),
                          (min(ys[start:start + 5]) + max(ys[start:start + 5])) / 2))
    expected = [(n.start_s, n.end_s, n.pitch) for n in view.notes.itertuples()]
    assert np.array(sorted(drawn)) == pytest.approx(np.array(sorted(expected)))
