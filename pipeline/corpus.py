"""Works from music21's bundled corpus, listed cheaply and converted to MIDI once, with the result cached.

The corpus ships score files (.krn, .abc, .mxl, .xml, .rntxt, ...), no MIDI. An .abc file may hold several tunes,
each headed by an ``X:<number>`` line; each tune is one work. Listing reads only those header lines, so it needs no
score parsing. Conversion parses one work with music21 and writes it out as MIDI into a cache folder, named by the
SHA-1 of the work's key: ``<sha1>.mid`` on success, ``<sha1>.failed`` (holding the reason) on failure. Either file
answers every later call, so no work is ever converted twice, and a failed one is never retried.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import itertools
import os
import re
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import Mp3MidiError
from .midi_io import read_midi

MAX_WORK_SECONDS = 20 * 60.0  # longer works are refused: they are rare, slow to render and mostly pathological.
DEFAULT_SECONDS_PER_QUARTER = 60.0 / 120  # music21 plays a score without a usable tempo at 120 quarters a minute
DEFAULT_REPEAT_TIMES = 2  # a repeat sign that names no count plays its section twice
ABC_SUFFIX = ".abc"
_ABC_TUNE_HEADER = re.compile(rb"^\s*X:\s*(\d+)\s*$", re.MULTILINE)  # how music21 finds a tune by number
MIDI_SUFFIX = ".mid"
FAILED_SUFFIX = ".failed"
SKIPPED_SUFFIXES = (".rntxt",)  # roman-numeral analyses of pieces the corpus already holds as scores


@dataclass(frozen=True)
class CorpusWork:
    """One work of music21's core corpus: a file, and for an .abc file holding several tunes, which tune."""

    path: str  # relative to music21's corpus root, with "/" separators, e.g. "bach/bwv66.6.mxl"
    number: int | None  # tune number inside an .abc opus; None for a file that holds one work

    @property
    def key(self) -> str:
        """Stable id, e.g. ``"bach/bwv66.6.mxl"`` or ``"essenFolksong/han1.abc#12"``."""
        return self.path if self.number is None else f"{self.path}#{self.number}"

    @property
    def collection(self) -> str:
        """The corpus folder the work lies in: a composer ("bach") or a collection ("essenFolksong")."""
        return self.path.split("/", 1)[0]


def corpus_root() -> Path:
    """music21's core corpus folder."""
    from music21 import common

    return Path(common.getCorpusFilePath())


def list_works(*, composers_first: bool = True) -> list[CorpusWork]:
    """Every work of the core corpus, in an order that depends only on the corpus files.

    With ``composers_first`` (the default) the folders (composers and collections) take turns, one work each, and
    within a folder the files take turns, so any prefix of the list spans as many composers and collections as it
    can. Without it, works come sorted by path and tune number.
    """
    from music21 import corpus

    root = corpus_root()
    paths = sorted(path.relative_to(root).as_posix() for path in corpus.getCorePaths()
                   if path.suffix.lower() not in SKIPPED_SUFFIXES)
    works = [work for path in paths for work in _works_in_file(root, path)]
    if not composers_first:
        return works
    by_folder: dict[str, dict[str, list[CorpusWork]]] = defaultdict(lambda: defaultdict(list))
    for work in works:
        by_folder[work.collection][work.path].append(work)
    return _round_robin([_round_robin(list(files.values())) for files in by_folder.values()])


def convert(work: CorpusWork, cache_dir: Path) -> bytes:
    """Standard MIDI bytes for ``work``, converted by music21 on the first call and read from ``cache_dir`` after.

    Raises ``Mp3MidiError`` when music21 cannot convert the work, when the result has no pitched notes, or when it
    lasts longer than ``MAX_WORK_SECONDS``; the reason is cached and raised again, without retrying, on later calls.
    """
    cache_dir = Path(cache_dir)
    name = hashlib.sha1(work.key.encode()).hexdigest()
    midi_path, failed_path = cache_dir / f"{name}{MIDI_SUFFIX}", cache_dir / f"{name}{FAILED_SUFFIX}"
    if midi_path.exists():
        return midi_path.read_bytes()
    if failed_path.exists():
        raise Mp3MidiError(f"music21 could not convert {work.key}: {failed_path.read_text(encoding='utf-8')}")

    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        data = _convert_with_music21(work)
        read_midi(data, max_seconds=MAX_WORK_SECONDS)  # refuses works too long, empty, or unreadable
    except Exception as exc:  # music21 raises many types (and asserts): each means this work cannot be used
        reason = str(exc) if isinstance(exc, Mp3MidiError) else f"{type(exc).__name__}: {exc}"
        _write_atomically(failed_path, reason.encode("utf-8"))
        raise Mp3MidiError(f"music21 could not convert {work.key}: {reason}") from None
    _write_atomically(midi_path, data)
    return data


def work_hash(work: CorpusWork) -> str:
    """SHA-1 hex of the source file's bytes and the tune number: changes when the piece itself changes."""
    try:
        digest = hashlib.sha1((corpus_root() / work.path).read_bytes())
    except OSError as exc:
        raise Mp3MidiError(f"cannot read corpus file {work.path!r}: {exc.strerror}") from None
    if work.number is not None:
        digest.update(f"#{work.number}".encode())
    return digest.hexdigest()


def _works_in_file(root: Path, path: str) -> list[CorpusWork]:
    """One work per file, except an .abc file with several ``X:`` tunes, which gives one work per tune number."""
    if not path.endswith(ABC_SUFFIX):
        return [CorpusWork(path, None)]
    numbers = sorted({int(match) for match in _ABC_TUNE_HEADER.findall((root / path).read_bytes())})
    if len(numbers) <= 1:
        return [CorpusWork(path, None)]
    return [CorpusWork(path, number) for number in numbers]


def _round_robin(groups: list[list[CorpusWork]]) -> list[CorpusWork]:
    """First item of every group, then the second of every group, and so on."""
    rounds = itertools.zip_longest(*groups)
    return [work for round_ in rounds for work in round_ if work is not None]


def _convert_with_music21(work: CorpusWork) -> bytes:
    """Parse one work from its source file (never from music21's pickle cache) and write it as MIDI bytes.

    A score too long is refused on an estimate of its length, before the costly repeat expansion and MIDI writing.
    A score whose repeats music21 cannot expand (badly formed, or in a part without measures) is written once
    through instead.
    """
    from music21 import converter, exceptions21, midi, repeat, stream

    with _silenced():
        source = corpus_root() / work.path
        score = converter.parseFile(source, number=work.number, forceSource=True, storePickle=False)
        if isinstance(score, stream.Opus):
            raise Mp3MidiError(f"file holds {len(score.scores)} works but no tune number was given")
        seconds = _estimated_seconds(score)
        if seconds > MAX_WORK_SECONDS:
            limit = f"{MAX_WORK_SECONDS / 60:g} min limit"
            raise Mp3MidiError(f"score lasts about {seconds / 60:.1f} min with its repeats, over the {limit}")
        _unshare_signatures(score)
        try:
            return midi.translate.music21ObjectToMidiFile(score).writestr()
        except (repeat.ExpanderException, exceptions21.StreamException):
            return midi.translate.music21ObjectToMidiFile(_once_through(score)).writestr()


def _estimated_seconds(score) -> float:
    """How long the score plays, at its metronome marks (or music21's default tempo), its repeats counted.

    Repeats are counted from the first part's repeat barlines without expanding them, which for a long score with
    many repeats costs music21 minutes. A rough guide: first endings count as replayed, and jumps (D.C., D.S.) not.
    The exact length is checked again on the written MIDI.
    """
    from music21 import bar, stream, tempo

    once = 0.0
    for start, end, mark in score.flatten().metronomeMarkBoundaries():
        try:
            once += (end - start) * mark.secondsPerQuarter()
        except tempo.TempoException:  # a mark in words only ("Langsam"): assume the default tempo
            once += (end - start) * DEFAULT_SECONDS_PER_QUARTER
    part = score.parts.first() if isinstance(score, stream.Score) else score
    if part is None or not score.highestTime:
        return once
    repeated, section_start = 0.0, 0.0
    for measure in part.getElementsByClass(stream.Measure):
        left, right = measure.leftBarline, measure.rightBarline
        if isinstance(left, bar.Repeat) and left.direction == "start":
            section_start = measure.offset
        if isinstance(right, bar.Repeat) and right.direction == "end":
            section_end = measure.offset + measure.quarterLength
            repeated += (section_end - section_start) * ((right.times or DEFAULT_REPEAT_TIMES) - 1)
            section_start = section_end
    return once * (1 + repeated / score.highestTime)


def _unshare_signatures(score) -> None:
    """Give each measure its own signature objects: music21's ABC reader can put one object in several measures,
    which its MIDI writer then refuses ("the object ... is already found in this Stream")."""
    from music21 import key, meter, stream, tempo

    seen: set[int] = set()
    for measure in score.recurse().getElementsByClass(stream.Measure):
        for sign in list(measure.getElementsByClass((meter.TimeSignature, key.KeySignature, tempo.MetronomeMark))):
            if id(sign) in seen:
                measure.replace(sign, copy.deepcopy(sign))
            seen.add(id(sign))


def _once_through(score):
    """The score with every part flattened out of its measures, so the MIDI writer plays it once, without repeats."""
    from music21 import stream

    if isinstance(score, stream.Score):
        return stream.Score([part.flatten() for part in score.parts])
    return score.flatten()


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Keep music21's warnings and prints off the console."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield


def _write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so readers see the whole file or none."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def work_from_key(key: str) -> CorpusWork:
    """The inverse of ``CorpusWork.key``: ``"path"`` or ``"path#number"``."""
    path, _, number = key.partition("#")
    return CorpusWork(path, int(number) if number else None)
