"""A test hook: dataset items wait at a gate the test controls, so a test can hold a job midway for certain.

Off unless the environment variable ``MP3MIDI_ITEM_GATE`` names a file (nothing else reads it, and nobody sets it
but the tests). Each item then takes one pass from that file before it starts: the file holds the number of passes
left, or ``open`` for no limit. With no pass left (or no file yet) the item waits, looking again every 20 ms, until
the test writes more. A test that writes ``3`` knows that exactly three items can finish and that the job is still
running after them, however fast the machine; ``open`` lets the job finish; ``0`` with a short item time limit is a
deterministic hang. Passes are taken under an exclusive ``flock``, so workers in several processes never share one.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

GATE_VARIABLE = "MP3MIDI_ITEM_GATE"
OPEN = "open"
POLL_S = 0.02


def pass_item_gate() -> None:
    """Return at once when no gate is set; otherwise wait for a pass and take it."""
    path = os.environ.get(GATE_VARIABLE)
    if not path:
        return
    while not _take_pass(Path(path)):
        time.sleep(POLL_S)


def set_gate(path: str | Path, passes: int | str) -> None:
    """Give the gate at ``path`` this many passes (replacing what is left), or ``OPEN`` it for good."""
    if passes != OPEN and (not isinstance(passes, int) or passes < 0):
        raise ValueError(f"passes must be a count of at least 0 or {OPEN!r}; got {passes!r}")
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(str(passes))


def _take_pass(path: Path) -> bool:
    try:
        handle = open(path, "r+")
    except FileNotFoundError:
        return False
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = handle.read().strip()
        if text == OPEN:
            return True
        left = int(text or 0)
        if left <= 0:
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(left - 1))
        return True
