"""A held-out set of timbres that no training bank has: which programs of a test bank sound like a training bank's,
and clips played only by the programs left.

Debian's General MIDI banks outside training are not independent of the banks inside it. csound's ``sf_GMbank.sf2``
plays the very samples of TimGM6mb for most programs, and MuseScore General Lite those of FluidR3Mono: scored on
their renders as they come, a model trained on those banks hears much of what it was trained on.

Lineage: each pitched program of a test bank plays keys 48, 60 and 72 (velocity 100, 0.5 s, dry) through
``pipeline.render.render``, and so does every program (all 128: a sample may sit under another number) of every
training bank. A program comes close when its note correlates with a training program's note of the same key at
``SHARED_CORRELATION`` or more (zero lag). The same sample played the same way gives 0.94-1.0, most above 0.99
(``SAME_SAMPLE_CORRELATION`` is reported beside); near-sinusoidal notes of different origin can also pass 0.8 (a
whistle against a tuba), so the programs left are those whose notes match no training note's waveform (zero lag,
same key), not merely those proven to share no sample; a shared sample played with another start, tuning, filter or
envelope could still pass. A program the bank cannot play is left out.

Clips: made by the factory's own item code (``pipeline.item.make_item``: clip choice, level, reverb, noise, MP3; no
performance, chain or procedural renderer: plain renders, as the other unseen-bank sets) with only the programs left
of each test bank: ``--solo`` clips per family that has one and ``--mixes`` mixes per bank, from procedural pieces
(seeds from ``--first-seed``), then ``--corpus`` music21 works of the test split per bank (real music, reported apart
from the generator's pieces, which the model trains on). Writes OUT/GROUP/ITEM.mp3 with its reference ITEM.mid (the
layout ``python -m model evaluate --folder`` and ``benchmarks/compare_basic_pitch.py`` read), and OUT/lineage.json:
per bank and program the closest training bank, program and correlation, and per clip its bank, piece and programs.

    .venv/bin/python benchmarks/unseen_programs.py --out data/eval/unseen-programs \
        --bank /usr/share/sounds/sf2/sf_GMbank.sf2 /usr/share/sounds/sf3/MuseScore_General_Lite.sf3
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.errors import Mp3MidiError
from pipeline.instruments import DEFAULT_FAMILIES, family_of, programs_of
from pipeline.item import ItemSpec, make_item
from pipeline.jobs import corpus_cache_dir
from pipeline.midi_io import write_midi
from pipeline.notes import Note, Part, Score
from pipeline.render import Effects, check_soundfont, default_soundfont, load_soundfont, render
from pipeline.sources import SourceRef, procedural_refs
from pipeline.splits import split_of

EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_TRIES = 20  # pieces in a row that may fail to give a clip before the set is given up
MIDI_PROGRAMS = 128
SHARED_CORRELATION = 0.8
SAME_SAMPLE_CORRELATION = 0.95  # reported beside: above it, the same sample beyond reasonable doubt
PROBE_KEYS = (48, 60, 72)
PROBE_VELOCITY = 100
PROBE_SECONDS = 0.5
TRAINING_BANKS = ("default", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3",
                  "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2")  # the Makefile's TRAIN_SOUNDFONTS
CLIP_SECONDS = 20.0


def probe(bank: str, program: int, key: int) -> np.ndarray | None:
    """[samples] one dry note of ``program`` on ``bank`` (a bank ``load_soundfont`` loaded); None when the bank cannot
    play it (no such preset), or the note is silent or clipped."""
    note = Note(0.0, PROBE_SECONDS, key, PROBE_VELOCITY)
    try:
        return render([Part(program, False, (note,))], PROBE_SECONDS + 0.1, soundfont=bank, effects=Effects())
    except Mp3MidiError:
        return None


def correlation(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """|Pearson correlation| of two renders over their common length (0 when either is missing or silent)."""
    if a is None or b is None:
        return 0.0
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    if n < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return abs(float(np.corrcoef(a, b)[0, 1]))


def training_notes(training: list[str]) -> dict[tuple[str, int], list[np.ndarray | None]]:
    """(training bank, program) -> its notes at PROBE_KEYS, for every program of every training bank: a sample
    may sit under another program number in another bank (a voice under a saxophone, a tuba under a whistle)."""
    notes = {(bank, program): [probe(bank, program, key) for key in PROBE_KEYS]
             for bank in training for program in range(MIDI_PROGRAMS)}
    for bank in training:
        if all(note is None for program in range(MIDI_PROGRAMS) for note in notes[bank, program]):
            raise Mp3MidiError(f"training bank {bank!r} played none of its programs")
    return notes


def lineage(bank: str, references: dict[tuple[str, int], list[np.ndarray | None]],
            programs: list[int]) -> dict[int, tuple[str, int, float] | None]:
    """Program of ``bank`` -> (the training bank and program whose note is closest, the highest correlation at any
    probe key), or None when ``bank`` cannot play it. references: from ``training_notes()``."""
    closest: dict[int, tuple[str, int, float] | None] = {}
    for program in programs:
        ours = [probe(bank, program, key) for key in PROBE_KEYS]
        if all(note is None for note in ours):
            closest[program] = None
            continue
        scores = {reference: max(correlation(mine, theirs) for mine, theirs in zip(ours, notes))
                  for reference, notes in references.items()}
        (name, number), score = max(scores.items(), key=lambda item: item[1])
        closest[program] = (name, number, round(score, 4))
    if programs and all(found is None for found in closest.values()):
        raise Mp3MidiError(f"{bank!r} played none of the programs {programs[0]}-{programs[-1]}")
    return closest


def make_clips(bank: str, left: list[int], out: Path, *, procedural: Iterator[SourceRef], solo: int, mixes: int,
               works: Iterator[SourceRef] | None = None, corpus: int = 0, cache_dir: Path | None = None,
               made: list[dict] | None = None) -> list[dict]:
    """Solo clips per family with a program in ``left``, then mixes of them, from the ``procedural`` pieces; then
    ``corpus`` clips from ``works`` (music21 works of the test split, never trained on), each played by one program
    of ``left``, in the group ``corpus``. Takes the pieces it uses from the iterators; appends what each clip is to
    ``made`` (a new list when None) as it is written, and returns it. Converted works go to ``cache_dir`` (the
    factory's corpus cache; None: a temporary folder). Raises ``Mp3MidiError`` when MAX_TRIES pieces
    in a row give no clip, or the works run out."""
    if corpus and works is None:
        raise Mp3MidiError(f"{corpus} corpus clips asked for, but no works given")
    families = tuple(family for family in DEFAULT_FAMILIES if any(p in left for p in programs_of(family)))
    plan = ([(family, (family,), 0.0) for family in families for _ in range(solo)] + [("mix", families, 1.0)] * mixes
            + [("corpus", families, 0.0)] * corpus)
    made = [] if made is None else made
    with tempfile.TemporaryDirectory() as work:
        for group, wanted_families, mix in plan:
            source, result = _first_clip(bank, left, group, wanted_families, mix, procedural, works, work, cache_dir)
            folder = out / group
            folder.mkdir(parents=True, exist_ok=True)
            item_id = result.item_id
            shutil.move(Path(work) / f"{item_id}.mp3", folder / f"{item_id}.mp3")  # /tmp may be another disk
            notes = [Note(start, round(start + length, 4), pitch, velocity)
                     for pitch, _, velocity, start, length in result.notes]
            write_midi(Score((Part(0, False, tuple(notes)),), max(n.end_s for n in notes)), folder / f"{item_id}.mid")
            made.append({"clip": f"{group}/{item_id}", "bank": Path(bank).name,
                         "piece": f"{source.kind}:{source.locator}", "programs": result.programs})
    return made


def _first_clip(bank, left, group, families, mix, procedural, works, work, cache_dir):
    """The first of the next pieces that makes a clip (a mix: one of more than one part): (its source, its item)."""
    error = None
    for _ in range(MAX_TRIES):
        source = next(works if group == "corpus" else procedural, None)
        if source is None:
            raise Mp3MidiError(f"{Path(bank).name}: the corpus has no more works of the test split")
        seed = int(source.locator) if source.kind == "procedural" else int(source.content_hash[:8], 16)
        spec = ItemSpec(item_id=source.content_hash[:20], source=source, seed=seed, soundfonts=(bank,),
                        families=families, clip_seconds=CLIP_SECONDS, mix_probability=mix, render_drums=False,
                        bitrate="64k", items_dir=work, cache_dir=str(cache_dir or work), programs=tuple(left))
        result = make_item(spec)
        if result.status == "done" and (mix == 0.0 or result.is_mix):
            return source, result
        error = result.error if result.status != "done" else "a single part, not a mix"
    raise Mp3MidiError(f"{Path(bank).name}: no {group} clip from {MAX_TRIES} pieces in a row (the last: {error})")


def held_out_works(cache_dir: Path) -> Iterator[SourceRef]:
    """music21 corpus works of the test split (pieces no training run sees), in the corpus module's order, converted
    (and cached) as the factory converts them; works music21 cannot convert are passed over."""
    from pipeline import corpus

    for work in corpus.list_works():
        content_hash = corpus.work_hash(work)
        if split_of(content_hash) != "test":
            continue
        try:
            corpus.convert(work, cache_dir)
        except Mp3MidiError:
            continue
        yield SourceRef("music21", work.key, content_hash)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--bank", nargs="+", required=True, help="test banks, never trained on")
    parser.add_argument("--training-bank", nargs="+", default=list(TRAINING_BANKS))
    parser.add_argument("--first-seed", type=int, default=910_000)
    parser.add_argument("--solo", type=int, default=3, help="solo clips per family and bank (default 3)")
    parser.add_argument("--mixes", type=int, default=2, help="mixes per bank (default 2)")
    parser.add_argument("--corpus", type=int, default=4,
                        help="music21 works of the test split per bank, one program left each (default 4)")
    parser.add_argument("--data-dir", default="data", help="the factory's data folder, whose corpus cache is shared")
    parser.add_argument("--lineage-only", action="store_true", help="measure which programs are left; no clips")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        for name in ("first_seed", "solo", "mixes", "corpus"):
            if getattr(args, name) < 0:
                raise Mp3MidiError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")
        if out.exists() and not out.is_dir():
            raise Mp3MidiError(f"{str(out)!r} is a file, not a folder")
        if out.is_dir() and any(out.iterdir()):
            raise Mp3MidiError(f"{str(out)!r} is not empty: an earlier set's clips or lineage would be mixed in")
        training = [default_soundfont() if bank == "default" else check_soundfont(bank) for bank in args.training_bank]
        banks = list(dict.fromkeys(check_soundfont(bank) for bank in args.bank))  # a link may name a bank twice
        for bank in [*training, *banks]:
            load_soundfont(bank)  # the check reads headers only: a bank damaged inside fails here, not as silence
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out.mkdir(parents=True, exist_ok=True)
    pitched = [program for family in DEFAULT_FAMILIES for program in programs_of(family)]
    report = {"shared_correlation": SHARED_CORRELATION, "same_sample_correlation": SAME_SAMPLE_CORRELATION,
              "training_banks": [Path(bank).name for bank in training], "banks": {}, "clips": []}
    procedural, works = procedural_refs(first_seed=args.first_seed), held_out_works(corpus_cache_dir(args.data_dir))
    try:
        references = training_notes(training)
        for bank in banks:
            closest = lineage(bank, references, pitched)
            report["banks"][Path(bank).name] = {
                str(program): None if found is None else [Path(found[0]).name, *found[1:]]
                for program, found in closest.items()}
            print(_summary(bank, closest))
            left = [program for program, found in closest.items()
                    if found is not None and found[2] < SHARED_CORRELATION]
            if not args.lineage_only and left:
                make_clips(bank, left, out, procedural=procedural, solo=args.solo, mixes=args.mixes, works=works,
                           corpus=args.corpus, cache_dir=corpus_cache_dir(args.data_dir), made=report["clips"])
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        (out / "lineage.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {len(report['clips'])} clips and lineage.json to {out}")
    return 0


def _summary(bank: str, closest: dict[int, tuple[str, int, float] | None]) -> str:
    """One line: how many programs come close to a training bank's (at two thresholds), which banks, what is left."""
    found = {program: hit for program, hit in closest.items() if hit is not None}
    shared = [hit for hit in found.values() if hit[2] >= SHARED_CORRELATION]
    by_bank: dict[str, int] = {}
    for name, _, _ in shared:
        by_bank[Path(name).name] = by_bank.get(Path(name).name, 0) + 1
    surely = sum(hit[2] >= SAME_SAMPLE_CORRELATION for hit in shared)
    left = [program for program, hit in found.items() if hit[2] < SHARED_CORRELATION]
    families = sorted({family_of(p) for p in left}, key=DEFAULT_FAMILIES.index)
    missing = len(closest) - len(found)
    return (f"{Path(bank).name}: {len(shared)} of {len(closest)} pitched programs come within {SHARED_CORRELATION} of "
            f"a training program's notes ({surely} at {SAME_SAMPLE_CORRELATION} or more) {by_bank}; "
            f"{missing} not in the bank; left: {left} (families: {', '.join(families)})")


if __name__ == "__main__":
    sys.exit(main())
