"""Listing and converting music21 corpus works: order, MIDI that reads back, and a cache that is never bypassed."""

from __future__ import annotations

import hashlib

import music21.converter
import pytest

from pipeline import corpus
from pipeline.corpus import CorpusWork, convert, list_works, work_hash
from pipeline.errors import Mp3MidiError
from pipeline.midi_io import read_midi

CHORALE = CorpusWork("bach/bwv66.6.mxl", None)
FOLK_TUNE = CorpusWork("essenFolksong/han1.abc", 12)
MISSING = CorpusWork("no/such/work.krn", None)
MIN_COLLECTIONS_IN_FIRST_50 = 20


@pytest.fixture(scope="module")
def works() -> list[CorpusWork]:
    return list_works()


def _forbid_music21(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("music21 was called although the cache holds the answer")

    monkeypatch.setattr(music21.converter, "parseFile", fail)


def test_listing_is_deterministic_and_spread(works):
    assert list_works() == works
    assert len({work.key for work in works}) == len(works)
    assert CHORALE in works and FOLK_TUNE in works
    assert len({work.collection for work in works[:50]}) >= MIN_COLLECTIONS_IN_FIRST_50
    plain = list_works(composers_first=False)
    assert plain == sorted(works, key=lambda work: (work.path, work.number or 0))


def test_keys_name_the_tune_of_an_opus_only():
    assert CHORALE.key == "bach/bwv66.6.mxl"
    assert FOLK_TUNE.key == "essenFolksong/han1.abc#12"


AWKWARD_WORKS = [
    CorpusWork("chopin/mazurka06-2.krn", None),  # badly formed repeats: converted played once through
    CorpusWork("oneills1850/0001-0050.abc", 1),  # one time signature object shared by several measures
    CorpusWork("webern/webern_dormi_jesu_op_16_no_2.mxl", None),  # a tempo in words only
]


@pytest.mark.parametrize("work", [CHORALE, FOLK_TUNE, *AWKWARD_WORKS], ids=lambda w: w.key)
def test_convert_gives_midi_with_notes(work, tmp_path):
    score = read_midi(convert(work, tmp_path))
    assert score.pitched_notes
    assert [path.name for path in tmp_path.iterdir()] == [hashlib.sha1(work.key.encode()).hexdigest() + ".mid"]


def test_second_conversion_comes_from_the_cache(tmp_path, monkeypatch):
    first = convert(FOLK_TUNE, tmp_path)
    _forbid_music21(monkeypatch)
    assert convert(FOLK_TUNE, tmp_path) == first


def test_failure_is_cached_and_not_retried(tmp_path, monkeypatch):
    with pytest.raises(Mp3MidiError, match=r"music21 could not convert no/such/work\.krn: .*no such file"):
        convert(MISSING, tmp_path)
    assert [path.suffix for path in tmp_path.iterdir()] == [".failed"]
    _forbid_music21(monkeypatch)
    with pytest.raises(Mp3MidiError, match=r"music21 could not convert no/such/work\.krn: .*no such file"):
        convert(MISSING, tmp_path)


def test_too_long_work_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "MAX_WORK_SECONDS", 10.0)  # the chorale lasts about a minute
    with pytest.raises(Mp3MidiError, match=r"could not convert bach/bwv66\.6\.mxl: .*over the .* min limit"):
        convert(CHORALE, tmp_path)


def test_work_hash_identifies_the_piece():
    assert work_hash(FOLK_TUNE) == work_hash(CorpusWork(FOLK_TUNE.path, FOLK_TUNE.number))
    assert work_hash(FOLK_TUNE) != work_hash(CorpusWork(FOLK_TUNE.path, FOLK_TUNE.number + 1))
    assert work_hash(FOLK_TUNE) != work_hash(CHORALE)
    with pytest.raises(Mp3MidiError, match="cannot read corpus file"):
        work_hash(MISSING)


def test_length_estimate_counts_repeats():
    from music21 import bar, note, stream, tempo

    part = stream.Part([tempo.MetronomeMark(number=60)])
    for number in (1, 2):
        part.append(stream.Measure([note.Note("C4", type="whole")], number=number))
    once = corpus._estimated_seconds(stream.Score([part]))
    assert once == pytest.approx(8.0)  # two whole notes at 60 quarters a minute
    part.getElementsByClass(stream.Measure).last().rightBarline = bar.Repeat(direction="end")
    assert corpus._estimated_seconds(stream.Score([part])) == pytest.approx(2 * once)
