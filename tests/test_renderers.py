"""Renderers drawn per item: procedural instruments and the singing voice through the real factory, recorded in
the catalog and counted on the coverage page; FluidSynth alone by default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import coverage
from pipeline.catalog import connect
from pipeline.errors import Mp3MidiError
from pipeline.jobs import GenerateOptions, generate
from pipeline.renderers import FLUIDSYNTH, SYNTH, VOICE, VOICE_PROGRAM, check_probabilities, draw_renderer
from tests.conftest import write_piece

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def procedural(tmp_path_factory) -> Path:
    """Six 2-second items, each played by the synth or sung (half and half, drawn per item)."""
    root = tmp_path_factory.mktemp("procedural")
    for index, program in enumerate((0, 24, 40, 56, 65, 81)):
        write_piece(root / "midi" / f"p{index}.mid", program=program, start_pitch=48 + 2 * index, n_notes=8)
    generate(GenerateOptions(name="timbres", source=str(root / "midi"), data_dir=str(root / "data"), workers=1,
                             clip_seconds=2.0, synth_probability=0.5, voice_probability=0.5, seed=3))
    return root


def _rows(data: Path, name: str):
    with connect(data, read_only=True) as connection:
        rows = connection.execute("SELECT item_id, status, renderer, soundfont, timbre, programs, features_path, effects"
                                  " FROM items WHERE dataset = ? ORDER BY ordinal", [name]).fetchall()
        noted = dict(connection.execute("SELECT item_id, count(*) FROM item_notes GROUP BY item_id").fetchall())
    return rows, noted


def test_every_item_records_its_renderer_and_what_it_drew(procedural: Path):
    data = procedural / "data"
    rows, noted = _rows(data, "timbres")
    assert len(rows) == 6 and all(row[1] == "done" for row in rows)
    assert {row[2] for row in rows} == {SYNTH, VOICE}
    for item_id, _, renderer, soundfont, timbre, programs, features_path, effects in rows:
        drawn = json.loads(timbre)
        assert drawn["renderer"] == renderer == soundfont
        assert json.loads(effects)["reverb"] == 0.0  # FluidSynth's effects do not reach a procedural render
        with np.load(data / "datasets" / "timbres" / "items" / features_path) as stored:
            notes, frame = stored["notes"], stored["frame"]
        assert len(notes) == noted[item_id] and frame.any()
        if renderer == VOICE:
            assert programs == [VOICE_PROGRAM] and drawn["singer"]["voice"]
            assert [n["pitch"] for n in drawn["notes"]] == [int(p) for p in notes[:, 2]]
            assert np.all(notes[1:, 0] >= notes[:-1, 1] - 1e-4)  # one note at a time
        else:
            assert len(drawn["timbres"]) == len(programs) and drawn["timbres"][0]["model"]


def test_coverage_counts_items_by_renderer(procedural: Path):
    table = coverage.renderer_coverage(procedural / "data", "timbres")
    assert int(table["items"].sum()) == 6 and set(table["renderer"]) == {SYNTH, VOICE}
    assert table["hours"].sum() == pytest.approx(6 * 2.0 / 3600)


def test_coverage_page_shows_the_renderers(procedural: Path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MP3_TO_MIDI_DATA", str(procedural / "data"))
    app = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
    app.query_params["dataset"] = "timbres"
    app.run()
    app.switch_page("app_pages/coverage.py").run()
    assert not app.exception
    assert "Renderers" in [header.value for header in app.subheader]
    shown = [table.value for table in app.table if table.value.index.name == "renderer"]
    assert shown and set(shown[0].index) == {SYNTH, VOICE} and int(shown[0]["items"].sum()) == 6


def test_by_default_every_item_is_played_by_fluidsynth(procedural: Path):
    data = procedural / "data"
    generate(GenerateOptions(name="plain", source=str(procedural / "midi"), data_dir=str(data), workers=1,
                             clip_seconds=2.0, limit=2))
    rows, _ = _rows(data, "plain")
    assert [row[2] for row in rows] == [FLUIDSYNTH, FLUIDSYNTH] and all(row[4] is None for row in rows)
    table = coverage.renderer_coverage(data, "plain")
    assert list(table["renderer"]) == [FLUIDSYNTH] and list(table["kind"]) == ["TimGM6mb.sf2"]


@pytest.mark.parametrize("synth, voice, expected", [(0.0, 0.0, {FLUIDSYNTH}), (1.0, 0.0, {SYNTH}),
                                                    (0.0, 1.0, {VOICE}), (0.5, 0.5, {SYNTH, VOICE})])
def test_the_renderer_is_drawn_with_the_given_shares(synth: float, voice: float, expected: set[str]):
    rng = np.random.default_rng(0)
    drawn = [draw_renderer(rng, synth_probability=synth, voice_probability=voice) for _ in range(200)]
    assert set(drawn) == expected


@pytest.mark.parametrize("synth, voice, message", [
    (1.5, 0.0, r"--synth-probability must lie in \[0, 1\]; got 1.5"),
    (0.0, -0.1, r"--voice-probability must lie in \[0, 1\]; got -0.1"),
    (0.7, 0.6, r"add up to more than 1 \(0.7 \+ 0.6\)")])
def test_bad_shares_are_refused(synth: float, voice: float, message: str):
    with pytest.raises(Mp3MidiError, match=message):
        check_probabilities(synth_probability=synth, voice_probability=voice)


def test_bad_shares_stop_generate_with_one_line(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "pipeline", "generate", "--name", "x", "--synth-probability", "0.8",
                           "--voice-probability", "0.4", "--data-dir", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --synth-probability and --voice-probability add up to more than 1"
                                   " (0.8 + 0.4)")


def test_performed_and_chained_items_play_the_performance_notes_procedurally(procedural: Path):
    """A performance's label notes (humanized, pedalled) are what the procedural renderers play and label."""
    data = procedural / "data"
    generate(GenerateOptions(name="performed", source=str(procedural / "midi"), data_dir=str(data), workers=1,
                             clip_seconds=2.0, limit=4, synth_probability=0.5, voice_probability=0.5,
                             performance_probability=1.0, chain_probability=1.0, seed=5))
    rows, noted = _rows(data, "performed")
    assert [row[1] for row in rows] == ["done"] * 4
    with connect(data, read_only=True) as connection:
        performed = connection.execute("SELECT count(*) FROM items WHERE dataset = 'performed'"
                                       " AND performance IS NOT NULL AND chain IS NOT NULL").fetchone()[0]
    assert performed == 4 and {row[2] for row in rows} <= {SYNTH, VOICE}
    for item_id, *_ in rows:
        assert noted[item_id] > 0


def test_a_dashboard_resume_keeps_the_renderer_shares(procedural: Path):
    from pipeline.background import generation_arguments, resume_options

    options = resume_options(procedural / "data", "timbres", workers=1)
    assert (options.synth_probability, options.voice_probability) == (0.5, 0.5)
    arguments = generation_arguments(options)
    assert arguments[arguments.index("--synth-probability") + 1] == "0.5"
    assert arguments[arguments.index("--voice-probability") + 1] == "0.5"
