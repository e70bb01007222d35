"""Files that appear whole or not at all: written under a temporary name beside the target, renamed when complete.

A write that fails part way (a full disk, a quota, a folder that went away) leaves no half-written file behind and
says what could not be written and why, as one ``Mp3MidiError``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import Mp3MidiError

PARTIAL_SUFFIX = ".partial"


class WriteFailed(Mp3MidiError):
    """A file could not be written; ``reason`` is the system's word for why ("No space left on device")."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"cannot write {str(path)!r}: {reason}")
        self.path, self.reason = path, reason


def partial_path(path: str | Path) -> Path:
    """The temporary name ``path`` is written under (a job's start-up removes such leftovers of a killed run)."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; when the block ends, it becomes ``path`` (replacing
    what was there). If the block raises, the temporary file is removed and ``path`` is left as it was; an
    ``OSError`` (ENOSPC: no space left on device, ...) becomes ``WriteFailed`` naming ``path``.

    Write only ``path``'s content in the block (an ``OSError`` there is reported as this file's). For files that
    belong together, open the next block inside this one: a failure in it removes both.
    """
    path = Path(path)
    partial = partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    except OSError as exc:
        raise WriteFailed(path, exc.strerror or str(exc)) from None
    finally:
        partial.unlink(missing_ok=True)
