"""Check that each General MIDI bank loads in FluidSynth and renders items through the factory, and what it costs.

For each bank: the load time (FluidSynth reads the file; an .sf3 decompresses its samples), then one item of each
of ``--pieces`` built-in procedural pieces made through the factory with that bank alone, with its CPU seconds per
audio second (this process and the ffmpeg it waits for) and how many items failed. Figures go in docs/BENCHMARKS.md.

    .venv/bin/python benchmarks/banks.py /usr/share/sounds/sf2/OPL-3_FM_128M.sf2 ...
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.expression import cpu_seconds
from pipeline.instruments import DEFAULT_FAMILIES
from pipeline.item import ItemSpec, make_item
from pipeline.render import check_soundfont, default_soundfont
from pipeline.sources import SourceRef


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("banks", nargs="+", help="soundfont files ('default' = the embedded TimGM6mb)")
    parser.add_argument("--pieces", type=int, default=3, help="items made per bank")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="seconds per item")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"{'bank':<28} {'MB':>6} {'load s':>7} {'items':>6} {'failed':>7} {'CPU s / audio s':>16} {'x real time':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for bank in args.banks:
            path = check_soundfont(default_soundfont() if bank == "default" else bank)
            started = time.perf_counter()
            make_item(_spec(path, 0, args.clip_seconds, folder))  # loads the bank (and warms the process)
            loaded = time.perf_counter() - started
            costs, failed = [], 0
            for index in range(1, args.pieces + 1):
                before = cpu_seconds()
                result = make_item(_spec(path, index, args.clip_seconds, folder))
                if result.status != "done":
                    failed += 1
                    print(f"  failed: {result.error}")
                    continue
                costs.append((cpu_seconds() - before) / result.duration_s)
            cost = statistics.median(costs) if costs else float("nan")
            print(f"{Path(path).name:<28} {Path(path).stat().st_size / 1e6:>6.0f} {loaded:>7.1f} {len(costs):>6}"
                  f" {failed:>7} {cost:>16.5f} {1 / cost:>12.0f}")


def _spec(bank: str, index: int, clip_seconds: float, folder: str) -> ItemSpec:
    return ItemSpec(f"{Path(bank).stem}-{index}", SourceRef("procedural", str(index), f"bank{index}"), index,
                    (bank,), DEFAULT_FAMILIES, clip_seconds, 0.25, False, "64k", folder, folder)


if __name__ == "__main__":
    main()
