"""A held-out set of timbres that no training bank has: which programs of a test bank share a training bank's samples,
and clips played only by the programs that do not.

Debian's General MIDI banks outside training are not independent of the banks inside it. csound's ``sf_GMbank.sf2``
plays the very samples of TimGM6mb for most programs, and MuseScore General Lite those of FluidR3Mono: scored on
their renders as they come, a model trained on TimGM6mb and FluidR3Mono hears much of what it was trained on.

Lineage: each pitched program of a test bank plays keys 48, 60 and 72 (velocity 100, 0.5 s, dry) and so does the
same program of every training bank, through ``pipeline.render.render``; a program counts as **shared** when its
waveform correlates with a training bank's at ``SHARED_CORRELATION`` or more at any of those keys. Measured on
Debian's banks, a shared sample gives 0.94-1.0 (most above 0.99) and most other programs under 0.7; the few between
0.8 and 0.9 (perhaps one sample with other envelopes) are counted as shared, so no program left plays a sample training has.

Clips: procedural pieces (seeds from ``--first-seed``) made by the factory's own item code (``pipeline.item.make_item``:
clip choice, level, reverb, noise, MP3; no performance, chain or procedural renderer: plain renders, as the other
unseen-bank sets) with only the unshared programs of each test bank: ``--solo`` clips per family that has one and
``--mixes`` mixes per bank; then ``--corpus`` music21 works of the test split per bank (real music, reported apart
from the generator's pieces, which the model trains on). Writes OUT/FAMILY/ITEM.mp3 with its reference ITEM.mid (the layout ``python -m model
evaluate --folder`` and ``benchmarks/compare_basic_pitch.py`` read), and OUT/lineage.json: per bank and program the
closest training bank and correlation, and per clip its bank and programs.

    .venv/bin/python benchmarks/unseen_programs.py --out data/eval/unseen-programs \
        --bank /usr/share/sounds/sf2/sf_GMbank.sf2 /usr/share/sounds/sf3/MuseScore_General_Lite.sf3
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
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
from pipeline.midi_io import write_midi
from pipeline.notes import Note, Part, Score
from pipeline.render import Effects, check_soundfont, default_soundfont, render
from pipeline.sources import PROCEDURAL_VERSION, SourceRef
from pipeline.splits import split_of

EXIT_USAGE = 2
SHARED_CORRELATION = 0.8
PROBE_KEYS = (48, 60, 72)
PROBE_VELOCITY = 100
PROBE_SECONDS = 0.5
TRAINING_BANKS = ("default", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3",
                  "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2")  # the Makefile's TRAIN_SOUNDFONTS
CLIP_SECONDS = 20.0


def probe(bank: str, program: int, key: int) -> np.ndarray:
    """[samples] one dry note of ``program`` on ``bank``; zeros when the bank cannot play it."""
    note = Note(0.0, PROBE_SECONDS, key, PROBE_VELOCITY)
    try:
        return render([Part(program, False, (note,))], PROBE_SECONDS + 0.1, soundfont=bank, effects=Effects())
    except Mp3MidiError:  # silent, or no such preset
        return np.zeros(1, np.float32)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """|Pearson correlation| of two renders over their common length (0 when either is silent)."""
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    if n < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return abs(float(np.corrcoef(a, b)[0, 1]))


def lineage(bank: str, training: list[str], programs: list[int]) -> dict[int, tuple[str, float]]:
    """Program -> (the training bank whose samples it is closest to, the highest correlation at any probe key)."""
    closest = {}
    for program in programs:
        ours = [probe(bank, program, key) for key in PROBE_KEYS]
        scores = {other: max(correlation(mine, probe(other, program, key)) for mine, key in zip(ours, PROBE_KEYS))
                  for other in training}
        name = max(scores, key=scores.get)
        closest[program] = (name, round(scores[name], 4))
    return closest


def make_clips(bank: str, unshared: list[int], out: Path, *, procedural: Iterator[SourceRef], solo: int,
               mixes: int, works: Iterator[SourceRef] | None = None, corpus: int = 0,
               cache_dir: Path = Path("data/cache")) -> list[dict]:
    """Solo clips per family with an unshared program, then mixes of them, from the ``procedural`` pieces; then
    ``corpus`` clips from ``works`` (music21 works of the test split, never trained on), each played by one unshared
    program of any family, in the group ``corpus``. Takes the pieces it uses from the iterators; returns what each
    clip is."""
    families = tuple(family for family in DEFAULT_FAMILIES if any(p in unshared for p in programs_of(family)))
    plan = ([(family, (family,), 0.0) for family in families for _ in range(solo)] + [("mix", families, 1.0)] * mixes
            + [("corpus", families, 0.0)] * corpus)
    made = []
    with tempfile.TemporaryDirectory() as work:
        for group, wanted_families, mix in plan:
            while True:  # a failed item, or a piece whose clip comes out single-voiced for a mix: the next piece
                source = next(works if group == "corpus" else procedural)
                item_id = source.content_hash[:20]
                seed = int(source.locator) if source.kind == "procedural" else int(source.content_hash[:8], 16)
                spec = ItemSpec(item_id, source, seed, (bank,), wanted_families, CLIP_SECONDS, mix, False, "64k",
                                work, str(cache_dir), programs=tuple(unshared))
                result = make_item(spec)
                if result.status == "done" and (mix == 0.0 or result.is_mix):
                    break
                if result.status != "done":
                    print(f"  {source.kind} {source.locator}: {result.error}", file=sys.stderr)
            folder = out / group
            folder.mkdir(parents=True, exist_ok=True)
            shutil.move(Path(work) / f"{item_id}.mp3", folder / f"{item_id}.mp3")  # /tmp may be another disk
            notes = [Note(start, round(start + length, 4), pitch, velocity)
                     for pitch, _, velocity, start, length in result.notes]
            write_midi(Score((Part(0, False, tuple(notes)),), max(n.end_s for n in notes)), folder / f"{item_id}.mid")
            made.append({"clip": f"{group}/{item_id}", "bank": Path(bank).name,
                         "piece": f"{source.kind}:{source.locator}", "programs": result.programs})
    return made


def procedural_sources(first_seed: int) -> Iterator[SourceRef]:
    """Procedural pieces from ``first_seed`` on, named as the factory names them."""
    for seed in itertools.count(first_seed):
        key = f"procedural-v{PROCEDURAL_VERSION}:{seed}"
        yield SourceRef("procedural", str(seed), hashlib.sha1(key.encode()).hexdigest())


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
                        help="music21 works of the test split per bank, one unshared program each (default 4)")
    parser.add_argument("--cache-dir", default="data/cache", help="converted corpus works (the factory's cache)")
    parser.add_argument("--lineage-only", action="store_true", help="measure which programs are shared; no clips")
    args = parser.parse_args(argv)
    try:
        training = [default_soundfont() if bank == "default" else check_soundfont(bank) for bank in args.training_bank]
        banks = list(dict.fromkeys(check_soundfont(bank) for bank in args.bank))  # a link may name a bank twice
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pitched = [program for family in DEFAULT_FAMILIES for program in programs_of(family)]
    report = {"shared_correlation": SHARED_CORRELATION, "banks": {}, "clips": []}
    procedural, works = procedural_sources(args.first_seed), held_out_works(Path(args.cache_dir))
    for bank in banks:
        closest = lineage(bank, training, pitched)
        unshared = [program for program, (_, score) in closest.items() if score < SHARED_CORRELATION]
        report["banks"][Path(bank).name] = {str(p): [Path(name).name, score] for p, (name, score) in closest.items()}
        by_bank: dict[str, int] = {}
        for name, score in closest.values():
            if score >= SHARED_CORRELATION:
                by_bank[Path(name).name] = by_bank.get(Path(name).name, 0) + 1
        families = sorted({family_of(p) for p in unshared}, key=DEFAULT_FAMILIES.index)
        print(f"{Path(bank).name}: {len(pitched) - len(unshared)} of {len(pitched)} pitched programs share a training "
              f"bank's samples {by_bank}; unshared: {unshared} (families: {', '.join(families)})")
        if not args.lineage_only and unshared:
            clips = make_clips(bank, unshared, out, procedural=procedural, solo=args.solo, mixes=args.mixes,
                               works=works, corpus=args.corpus, cache_dir=Path(args.cache_dir))
            report["clips"] += clips
    (out / "lineage.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {len(report['clips'])} clips and lineage.json to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
