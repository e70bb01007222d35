"""Write seeded procedural pieces as MIDI files, to use as a generation source (``--source DIR``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import procedural
from pipeline.midi_io import write_midi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=35.0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for index in range(args.count):
        write_midi(procedural.generate_piece(args.first_seed + index, duration_s=args.seconds),
                   out / f"piece{index:04}.mid")
    print(f"wrote {args.count} pieces to {out}")


if __name__ == "__main__":
    main()
