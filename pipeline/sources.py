"""Where pieces come from: a user's MIDI folder, or the built-in source (procedural pieces and the music21 corpus).

A ``SourceRef`` names one piece and carries its content hash, which identifies the piece everywhere: duplicates are
skipped, and train/validation/test splits group by it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterator

from .errors import Mp3MidiError

BUILTIN = "builtin"
MIDI_SUFFIXES = (".mid", ".midi")
PROCEDURAL_VERSION = 1
PROCEDURAL_SECONDS = 40.0


@dataclass(frozen=True)
class SourceRef:
    """One piece: ``kind`` is 'file', 'music21' or 'procedural'; ``locator`` says where to find it."""

    kind: str
    locator: str
    content_hash: str


def scan_folder(folder: str | Path) -> Iterator[SourceRef]:
    """Every MIDI file below ``folder`` (any depth, .mid/.midi in any case), in path order, each content once."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise Mp3MidiError(f"MIDI source folder {str(folder)!r} does not exist or is not a folder")
    seen: set[str] = set()
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
    for path in paths:
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            yield SourceRef("file", str(path.resolve()), digest)


def procedural_refs(*, first_seed: int = 0) -> Iterator[SourceRef]:
    """An endless run of seeded procedural pieces, from ``first_seed`` on."""
    seed = first_seed
    while True:
        key = f"procedural-v{PROCEDURAL_VERSION}:{seed}"
        yield SourceRef("procedural", str(seed), hashlib.sha1(key.encode()).hexdigest())
        seed += 1


def corpus_refs(cache_dir: Path, convert_many) -> Iterator[SourceRef]:
    """music21 corpus works that convert to MIDI, in the corpus module's interleaved order.

    ``convert_many(works)`` converts a batch (in parallel where it can) and returns, per work, None on success or
    the reason it failed; conversions are cached under ``cache_dir``, so this is quick the second time.
    """
    from . import corpus

    works = iter(corpus.list_works())
    while batch := list(islice(works, 16)):
        for work, failure in zip(batch, convert_many(batch)):
            if failure is None:
                yield SourceRef("music21", work.key, corpus.work_hash(work))


def builtin_refs(limit: int, cache_dir: Path, convert_many) -> list[SourceRef]:
    """``limit`` built-in pieces: procedural and corpus alternately, so both kinds of coverage are there."""
    procedural = procedural_refs()
    corpus_pieces = corpus_refs(cache_dir, convert_many)
    refs: list[SourceRef] = []
    while len(refs) < limit:
        source = procedural if len(refs) % 2 == 0 else corpus_pieces
        ref = next(source, None) or next(procedural)
        refs.append(ref)
    return refs


def convert_many(works: list, cache_dir: Path, *, workers: int) -> list[str | None]:
    """Convert corpus works to MIDI (cached) in a process pool; per work, None or why it failed."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(works))), mp_context=context) as pool:
        return list(pool.map(_try_convert, works, [cache_dir] * len(works)))


def _try_convert(work, cache_dir: Path) -> str | None:
    from . import corpus

    try:
        corpus.convert(work, cache_dir)
    except Mp3MidiError as exc:
        return str(exc)
    return None
