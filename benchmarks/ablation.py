"""An ablation table: training runs that differ in one thing each, scored on the same files, each beside a baseline.

Every run is given as NAME REALDEV_JSON FOLDER_JSON: the report of ``benchmarks/realdev_errors.py --json`` on
realdev's tune half (per-file rows included) and of ``python -m model evaluate --folder ... --json`` on the
unseen-bank clips. The first run is the baseline. For each measure the table gives the run's mean over files and
its paired difference from the baseline with a bootstrap 95 % interval: the same files are resampled for both
runs, so what the files have in common (some clips are simply hard) cancels and the interval is the run's own.
Figures go in docs/MODEL_CARD.md.

    .venv/bin/python benchmarks/ablation.py --run committed rd.json cs.json --run "no performances" rd2.json cs2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.realdev_errors import mean_with_interval
from pipeline.errors import Mp3MidiError

EXIT_USAGE = 2
# (column, where the per-file values are: a realdev system or the unseen-bank folder, the measure)
COLUMNS = (
    ("realdev onset", "ours", "onset_f1"),
    ("realdev frame", "ours", "frame_f1"),
    ("realdev note+offset", "ours", "offset_f1"),
    ("`--mono` onset", "ours --mono", "onset_f1"),
    ("`--mono` frame", "ours --mono", "frame_f1"),
    ("`--mono` note+offset", "ours --mono", "offset_f1"),
    ("unseen bank onset", None, "onset_f1"),
    ("unseen bank frame", None, "frame_f1"),
)


def per_file(realdev: dict, unseen: dict, system: str | None, measure: str) -> dict[str, float]:
    """File -> value of ``measure``: realdev's per-file rows for ``system``, or (None) the unseen-bank items."""
    if system is None:
        return {item["item"]: item[measure] for item in unseen["items"]}
    files = realdev.get("files")
    if not files or system not in files:
        raise Mp3MidiError(f"the realdev report has no per-file rows for {system!r}: made before they were kept?")
    return {stem: row[measure] for stem, row in files[system].items()}


def paired_difference(base: dict[str, float], other: dict[str, float], *, resamples: int) -> dict[str, float]:
    """Mean of other - base over the files both scored, with its bootstrap interval (files resampled)."""
    shared = sorted(set(base) & set(other))
    if len(shared) != len(base) or len(shared) != len(other):
        raise Mp3MidiError(f"the runs were scored on different files ({len(base)} and {len(other)}, "
                           f"{len(shared)} shared)")
    return mean_with_interval(np.array([other[key] - base[key] for key in shared], float), resamples=resamples)


def table(runs: list[tuple[str, dict, dict]], *, resamples: int) -> str:
    header = "| run | " + " | ".join(name for name, _, _ in COLUMNS) + " |"
    lines = [header, "| --- |" + " ---: |" * len(COLUMNS)]
    _, base_realdev, base_unseen = runs[0]
    for index, (name, realdev, unseen) in enumerate(runs):
        cells = []
        for _, system, measure in COLUMNS:
            values = per_file(realdev, unseen, system, measure)
            cell = f"{np.nanmean(list(values.values())):.3f}"
            if index:
                base = per_file(base_realdev, base_unseen, system, measure)
                difference = paired_difference(base, values, resamples=resamples)
                cell += (f"<br>{difference['mean']:+.3f} [{difference['low']:+.3f}, {difference['high']:+.3f}]"
                         if resamples else f"<br>{difference['mean']:+.3f}")
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", nargs=3, action="append", required=True, metavar=("NAME", "REALDEV_JSON", "FOLDER_JSON"),
                        help="a run's name and its two reports; the first run is the baseline")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95%% intervals (0: none)")
    args = parser.parse_args(argv)
    try:
        runs = [(name, _read(realdev), _read(unseen)) for name, realdev, unseen in args.run]
        print(table(runs, resamples=args.bootstrap))
    except Mp3MidiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _read(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise Mp3MidiError(f"cannot read the report {path!r}: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
