"""Recording chains (deterministic, onsets kept, levels in range) and the factory with performances and chains on:
what the catalog records, what the coverage query and page show, the options' checks."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline import coverage
from pipeline.catalog import connect
from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.jobs import GenerateOptions, generate
from pipeline.recording_chain import (MICROPHONES, NOISES, ONSET_TOLERANCE_S, Chain, apply_chain, backing_drums,
                                      impulse_response)
from tests.conftest import write_piece

REPO = Path(__file__).resolve().parents[1]
CLICKS_S = (0.25, 0.9, 1.55, 2.3, 3.1)


def _clicks(seconds: float = 4.0) -> np.ndarray:
    audio = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    for at in CLICKS_S:
        start = int(at * SAMPLE_RATE)
        audio[start:start + 32] = np.hanning(64)[32:] * 0.8  # a sharp attack, 2 ms long
    return audio


def _busy_chain(seed: int) -> Chain:
    """A drawn chain with a room, a compressor and noise forced on, so every stage is exercised."""
    rng = np.random.default_rng(seed)
    drawn = Chain.draw(rng)
    return replace(drawn, room_size_m=drawn.room_size_m or 12.0, rt60_s=drawn.rt60_s or 1.2,
                   room_wet_db=max(drawn.room_wet_db, -10.0), reflections=drawn.reflections or 4,
                   compressor_ratio=max(drawn.compressor_ratio, 4.0), compressor_threshold_db=-20.0,
                   noise=drawn.noise or NOISES[seed % len(NOISES)], noise_snr_db=min(drawn.noise_snr_db, 30.0),
                   microphone=list(MICROPHONES)[seed % len(MICROPHONES)])


@pytest.mark.parametrize("seed", range(4))
def test_a_chain_is_the_same_for_the_same_seed_and_differs_for_another(seed):
    assert Chain.draw(np.random.default_rng(seed)) == Chain.draw(np.random.default_rng(seed))
    chain = _busy_chain(seed)
    one = apply_chain(_clicks(), chain, np.random.default_rng(seed))
    two = apply_chain(_clicks(), chain, np.random.default_rng(seed))
    np.testing.assert_array_equal(one, two)
    other = apply_chain(_clicks(), chain, np.random.default_rng(seed + 100))
    assert not np.array_equal(one, other)


@pytest.mark.parametrize("seed", range(10))
def test_a_chain_keeps_each_onset_in_place_and_the_level_in_range(seed):
    chain = _busy_chain(seed)
    out = apply_chain(_clicks(), chain, np.random.default_rng(seed))
    assert out.dtype == np.float32 and out.shape == _clicks().shape and np.isfinite(out).all()
    assert float(np.abs(out).max()) == pytest.approx(10 ** (chain.peak_db / 20), rel=1e-4)
    assert np.abs(out).max() < 1.0
    tolerance = int(ONSET_TOLERANCE_S * SAMPLE_RATE)
    for at in CLICKS_S:
        start = int(at * SAMPLE_RATE)
        window = np.abs(out[start - 160:start + 480])  # 10 ms before to 30 ms after
        onset = int(np.argmax(window > 0.5 * window.max())) - 160
        assert -tolerance <= onset <= tolerance, (chain, at, onset)


def test_a_room_starts_with_the_direct_sound_and_decays():
    chain = replace(Chain.draw(np.random.default_rng(0)), room_size_m=20.0, rt60_s=1.5, room_wet_db=-6.0,
                    reflections=5)
    ir = impulse_response(chain, np.random.default_rng(0))
    assert ir[0] == 1.0 and np.abs(ir[1:]).max() < 1.0
    tail = ir[int(0.05 * SAMPLE_RATE):]
    energy = lambda part: float(np.sum(part**2))
    assert energy(tail[: len(tail) // 4]) > 100 * energy(tail[-len(tail) // 4:])
    assert -8.5 < 10 * np.log10(energy(tail)) < -5.9  # the diffuse tail (after the echoes) sits at room_wet_db


@pytest.mark.parametrize("audio, message", [
    (np.zeros(1000, np.float32), "silent or non-finite"),
    (np.full(1000, np.nan, np.float32), "silent or non-finite"),
    (np.zeros((10, 2), np.float32), "mono audio"),
])
def test_bad_audio_is_refused_with_one_line(audio, message):
    with pytest.raises(Mp3MidiError, match=message):
        apply_chain(audio, Chain(), np.random.default_rng(0))


def test_backing_drums_are_a_drum_part_inside_the_clip():
    part = backing_drums(8.0, np.random.default_rng(4))
    assert part.is_drum and len(part.notes) > 16
    assert all(0.0 <= n.start_s < n.end_s <= 8.0 for n in part.notes)


# --- the factory -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def expressive(tmp_path_factory) -> Path:
    """A dataset made with every item performed and recorded through a chain."""
    root = tmp_path_factory.mktemp("expressive")
    for index, program in enumerate((0, 40, 25, 81)):
        write_piece(root / "midi" / f"p{index}.mid", program=program, start_pitch=50 + 3 * index, n_notes=10)
    generate(GenerateOptions(name="expressive", source=str(root / "midi"), data_dir=str(root / "data"), workers=1,
                             clip_seconds=3.0, performance_probability=1.0, chain_probability=1.0))
    return root


def test_every_item_records_its_performance_and_chain_and_labels_follow_the_performance(expressive: Path):
    data = expressive / "data"
    with connect(data, read_only=True) as connection:
        rows = connection.execute("SELECT item_id, status, performance, chain, perform_s, chain_s, features_path,"
                                  " effects FROM items WHERE dataset = 'expressive'").fetchall()
        noted = connection.execute("SELECT item_id, count(*) FROM item_notes GROUP BY item_id").fetchall()
    assert len(rows) == 4 and all(row[1] == "done" for row in rows)
    for item_id, _, performance, chain, perform_s, chain_s, features_path, effects in rows:
        performance, chain, effects = json.loads(performance), json.loads(chain), json.loads(effects)
        if chain["room_size_m"] is not None:  # the room is the reverb: no FluidSynth reverb on top of it
            assert effects["reverb"] == 0.0
        if chain["noise"] is not None:
            assert effects["noise_snr_db"] is None
        assert performance["parts"] and "timing_sd_s" in performance["parts"][0] and chain["bitrate"].endswith("k")
        assert perform_s > 0 and chain_s > 0
        with np.load(data / "datasets" / "expressive" / "items" / features_path) as stored:
            notes = stored["notes"]
        assert len(notes) == dict(noted)[item_id]  # the catalog's notes are the labelled ones
        assert np.all(notes[:, 1] > notes[:, 0])


def test_coverage_counts_gestures_and_chain_settings(expressive: Path):
    table = coverage.expression_coverage(expressive / "data", "expressive")
    shares = {(row.stage, row.what): row.share for row in table.itertuples()}
    assert shares[("performance", "performed")] == 1.0 and shares[("chain", "chain")] == 1.0
    bitrates = table[table["what"].str.startswith("bitrate: ")]
    assert int(bitrates["items"].sum()) == 4
    assert table["share"].between(0, 1).all()


def test_coverage_page_shows_the_expression_chart(expressive: Path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard.coverage_charts import EXPRESSION_TITLE

    monkeypatch.setenv("MP3_TO_MIDI_DATA", str(expressive / "data"))
    app = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
    app.query_params["dataset"] = "expressive"
    app.run()
    app.switch_page("app_pages/coverage.py").run()
    assert not app.exception
    titles = [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in app.get("plotly_chart")]
    assert EXPRESSION_TITLE in titles
    item = app.selectbox(key="coverage_item").value
    view = coverage.item_view(expressive / "data", "expressive", item)
    assert view.performance and view.chain
    assert any(c.value.startswith("Performed") and f"MP3 {view.chain['bitrate']}" in c.value for c in app.caption)


def test_a_dataset_from_before_the_options_resumes_with_them_off(expressive: Path):
    data = expressive / "data"
    write_piece(expressive / "old" / "a.mid", program=0)
    generate(GenerateOptions(name="old", source=str(expressive / "old"), data_dir=str(data), workers=1,
                             clip_seconds=2.0))
    with connect(data) as connection:  # as a catalog written before the options existed stored it
        config = json.loads(connection.execute("SELECT config FROM datasets WHERE name = 'old'").fetchone()[0])
        for key in ("performance_probability", "chain_probability"):
            config.pop(key)
        connection.execute("UPDATE datasets SET config = ? WHERE name = 'old'", [json.dumps(config)])
    assert generate(GenerateOptions(name="old", source=str(expressive / "old"), data_dir=str(data), workers=1,
                                    clip_seconds=2.0)).done == 1
    with pytest.raises(Mp3MidiError, match=r"performance_probability: 0.0 -> 0.5"):
        generate(GenerateOptions(name="old", source=str(expressive / "old"), data_dir=str(data), workers=1,
                                 clip_seconds=2.0, performance_probability=0.5))


@pytest.mark.parametrize("flag", ["--performance-probability", "--chain-probability"])
def test_a_probability_outside_zero_to_one_stops_generate_with_one_line(tmp_path: Path, flag: str):
    done = subprocess.run([sys.executable, "-m", "pipeline", "generate", "--name", "x", flag, "1.5",
                           "--data-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {flag} must lie in [0, 1]; got 1.5"


@pytest.mark.parametrize("seed", [3, 11])
def test_an_item_performed_and_chained_is_the_same_for_the_same_seed(tmp_path: Path, seed: int):
    from pipeline.item import ItemSpec, make_item
    from pipeline.instruments import DEFAULT_FAMILIES
    from pipeline.render import default_soundfont
    from pipeline.sources import SourceRef

    made = []
    for copy in ("a", "b"):
        spec = ItemSpec(f"item{seed}", SourceRef("procedural", str(seed), f"h{seed}"), seed, (default_soundfont(),),
                        DEFAULT_FAMILIES, 4.0, 0.25, False, "64k", str(tmp_path / copy), str(tmp_path / "cache"),
                        performance_probability=1.0, chain_probability=1.0)
        result = make_item(spec)
        assert result.status == "done", result.error
        with np.load(tmp_path / copy / result.files["features"]) as stored:
            made.append((result.performance, result.chain, result.notes, stored["features"], stored["notes"]))
    (performance, chain, notes, features, labels), again = made
    assert performance == again[0] and chain == again[1] and notes == again[2]
    np.testing.assert_array_equal(features, again[3])
    np.testing.assert_array_equal(labels, again[4])


def test_a_dashboard_resume_keeps_the_performance_and_chain_settings(expressive: Path):
    from pipeline.background import generation_arguments, resume_options

    options = resume_options(expressive / "data", "expressive", workers=1)
    assert (options.performance_probability, options.chain_probability) == (1.0, 1.0)
    arguments = generation_arguments(options)
    assert arguments[arguments.index("--performance-probability") + 1] == "1.0"
    assert arguments[arguments.index("--chain-probability") + 1] == "1.0"
