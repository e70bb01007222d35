"""Which General MIDI programs play an item: drawn per family, optionally only from a given set (a held-out set of
timbres no training bank has, benchmarks/unseen_programs.py), and how that set is found (notes that resemble a
training bank's)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import unseen_programs
from benchmarks.unseen_programs import (MAX_TRIES, PROBE_KEYS, correlation, held_out_works, lineage, main,
                                         make_clips, probe)
from pipeline.errors import Mp3MidiError
from pipeline.instruments import DEFAULT_FAMILIES, draw_program, family_of
from pipeline.item import ItemSpec, make_item
from pipeline.midi_io import read_midi
from pipeline.render import default_soundfont
from pipeline.sources import SourceRef, procedural_refs
from pipeline.splits import split_of


def test_without_a_set_the_draws_are_those_of_before():
    """Items made before the option must come out the same: one family draw, then one program draw."""
    for seed in range(20):
        rng, again = np.random.default_rng(seed), np.random.default_rng(seed)
        family = DEFAULT_FAMILIES[again.integers(len(DEFAULT_FAMILIES))]
        expected = int(again.choice(range(DEFAULT_FAMILIES.index(family) * 8, DEFAULT_FAMILIES.index(family) * 8 + 8)))
        assert draw_program(rng, DEFAULT_FAMILIES) == expected


@pytest.mark.parametrize("programs, families, expected", [
    ((3, 73, 75), DEFAULT_FAMILIES, {3, 73, 75}),
    ((3, 73, 75), ("piano",), {3}),
    ((0, 1, 2, 3, 4, 5, 6, 7, 80), DEFAULT_FAMILIES, set(range(8)) | {80}),
])
def test_only_the_given_programs_are_drawn(programs, families, expected):
    rng = np.random.default_rng(0)
    drawn = [draw_program(rng, families, programs=programs) for _ in range(400)]
    assert set(drawn) == expected


def test_families_are_drawn_evenly_whatever_their_number_of_programs():
    rng = np.random.default_rng(1)
    drawn = [family_of(draw_program(rng, DEFAULT_FAMILIES, programs=tuple(range(8)) + (80,))) for _ in range(2000)]
    assert 0.45 < drawn.count("synth_lead") / len(drawn) < 0.55  # one program against eight pianos: still half


def test_a_set_outside_the_families_is_refused():
    with pytest.raises(Mp3MidiError, match=r"none of the programs \[73\] belongs to the families \['piano'\]"):
        draw_program(np.random.default_rng(0), ("piano",), programs=(73,))


def test_an_item_plays_only_the_given_programs(tmp_path):
    for seed in range(3):
        spec = ItemSpec(f"item{seed}", SourceRef("procedural", str(seed), f"h{seed}"), seed, (default_soundfont(),),
                        DEFAULT_FAMILIES, 4.0, 1.0, False, "64k", str(tmp_path), str(tmp_path), programs=(19, 56))
        result = make_item(spec)
        assert result.status == "done", result.error
        assert set(result.programs) <= {19, 56} and result.families and set(result.families) <= {"organ", "brass"}


def test_the_same_sample_correlates_and_another_instrument_does_not():
    bank = default_soundfont()
    piano = probe(bank, 0, 60)
    assert correlation(piano, probe(bank, 0, 60)) > 0.99
    assert correlation(piano, probe(bank, 73, 60)) < 0.5  # a flute
    assert correlation(piano, np.zeros(1, np.float32)) == 0.0 and correlation(piano, None) == 0.0
    references = {(bank, program): [probe(bank, program, key) for key in PROBE_KEYS] for program in (0, 73)}
    closest = lineage(bank, references, [0, 73])
    assert closest[0][:2] == (bank, 0) and closest[73][:2] == (bank, 73)  # each finds itself, not the other
    assert closest[0][2] > 0.99 and closest[73][2] > 0.99


def test_a_bank_against_itself_leaves_nothing_unseen(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--bank", str(tmp_path / "missing.sf2"), "--training-bank", "default",
                 "--lineage-only"]) == 2
    assert "missing.sf2" in capsys.readouterr().err
    bank = default_soundfont()
    assert main(["--out", str(tmp_path), "--bank", bank, "--training-bank", bank, "--lineage-only"]) == 0
    out = capsys.readouterr().out
    assert "96 of 96 pitched programs come within 0.8" in out and "(96 at 0.95 or more)" in out and "left: []" in out
    assert main(["--out", str(tmp_path), "--bank", bank, "--training-bank", bank]) == 2  # it holds lineage.json
    assert "is not empty" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "lineage.json"), "--bank", bank, "--training-bank", bank]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "new"), "--bank", bank, "--solo", "-1"]) == 2
    assert "--solo must be 0 or more, got -1" in capsys.readouterr().err


def fake_notes(program: int, key: int) -> np.ndarray:
    """A distinct waveform per (program, key): what one sample played at one key gives."""
    return np.random.default_rng([program, key]).standard_normal(800).astype(np.float32)


def test_a_sample_is_found_under_another_program_number_and_an_unplayable_program_is_left_out(monkeypatch):
    """The test bank's program 5 is the training bank's program 9; its program 7 is missing; program 6 is new."""
    def probe(bank, program, key):
        if bank == "test":
            return {5: fake_notes(9, key), 6: fake_notes(1000, key), 7: None}[program]
        return fake_notes(program, key)
    monkeypatch.setattr(unseen_programs, "probe", probe)
    references = unseen_programs.training_notes(["training"])
    closest = unseen_programs.lineage("test", references, [5, 6, 7])
    assert closest[5] == ("training", 9, 1.0)
    assert closest[6][2] < 0.3 and closest[7] is None
    summary = unseen_programs._summary("test", closest)
    assert "1 of 3 pitched programs come within 0.8" in summary and "1 not in the bank; left: [6]" in summary
    monkeypatch.setattr(unseen_programs, "probe", lambda bank, program, key: None)
    with pytest.raises(Mp3MidiError, match="training bank 'training' played none of its programs"):
        unseen_programs.training_notes(["training"])
    with pytest.raises(Mp3MidiError, match="'test' played none of the programs 5-7"):
        unseen_programs.lineage("test", references, [5, 6, 7])


def test_the_clips_are_played_by_the_unshared_programs_only(tmp_path):
    clips = make_clips(default_soundfont(), [19, 56], tmp_path, procedural=procedural_refs(first_seed=3), solo=1,
                       mixes=1, works=held_out_works(tmp_path / "cache"), corpus=1, cache_dir=tmp_path / "cache")
    assert [clip["clip"].split("/")[0] for clip in clips] == ["organ", "brass", "mix", "corpus"]
    assert [clip["piece"].split(":")[0] for clip in clips] == ["procedural"] * 3 + ["music21"]
    assert split_of(music21_hash(clips[-1]["piece"].split(":", 1)[1])) == "test"  # a work no training run sees
    for clip in clips:
        assert set(clip["programs"]) <= {19, 56}
        audio, reference = tmp_path / f"{clip['clip']}.mp3", tmp_path / f"{clip['clip']}.mid"
        assert audio.stat().st_size > 0 and read_midi(reference).pitched_notes
    assert len(clips[2]["programs"]) > 1  # a mix: more than one part


def music21_hash(key: str) -> str:
    from pipeline import corpus

    return corpus.work_hash(corpus.work_from_key(key))


def test_a_set_that_cannot_be_made_stops_with_a_reason(tmp_path):
    damaged = tmp_path / "damaged.sf2"
    damaged.write_bytes(b"RIFF" + bytes(64))
    with pytest.raises(Mp3MidiError, match=rf"damaged.sf2: no organ clip from {MAX_TRIES} pieces in a row"):
        make_clips(str(damaged), [19], tmp_path / "out", procedural=procedural_refs(), solo=1, mixes=0)
    with pytest.raises(Mp3MidiError, match="1 corpus clips asked for, but no works given"):
        make_clips(default_soundfont(), [19], tmp_path / "out", procedural=procedural_refs(), solo=0, mixes=0, corpus=1)
    with pytest.raises(Mp3MidiError, match="the corpus has no more works of the test split"):
        make_clips(default_soundfont(), [19], tmp_path / "out", procedural=procedural_refs(), solo=0, mixes=0,
                   works=iter(()), corpus=1)
