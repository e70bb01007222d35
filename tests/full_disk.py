"""A disk that fills up, faked at the write: for the tests of what a full disk does to a job or a transcription.

``sitecustomize_folder(tmp, watched, full_after=K)`` writes a ``sitecustomize.py`` that every Python process
started with that folder first on PYTHONPATH imports at start-up (the command, the pool's fork server and so its
workers). From then on, Python-level writes to files under ``watched`` succeed while fewer than K ``.png``
previews (the last file of a dataset item) lie there, and raise ``OSError(ENOSPC)`` after that, as ``write(2)``
does on a full file system. So with one worker, the first K dataset items are made and every later one fails part
way (K = 0: nothing fits). ``only=".csv"`` makes only files whose names hold ".csv" fail: a disk with room for
one more file but not the one after it.
Writes by other programs (ffmpeg) and by C libraries (DuckDB) are not touched.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

WATCHED_ENV = "MP3_TO_MIDI_TEST_FULL_DISK"  # "FOLDER:K:ONLY"
_real_open = builtins.open


class _FillingFile:
    """A file object whose writes fail with ENOSPC once the watched folder is full."""

    def __init__(self, handle, folder: Path, full_after: int):
        self._handle, self._folder, self._full_after = handle, folder, full_after

    def write(self, data):
        if len(list(self._folder.rglob("*.png"))) >= self._full_after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __iter__(self):
        return iter(self._handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()


def install() -> None:
    """Patch ``open`` when the environment names a watched folder (else do nothing)."""
    setting = os.environ.get(WATCHED_ENV)
    if not setting:
        return
    rest, _, only = setting.rpartition(":")
    folder_text, _, count = rest.rpartition(":")
    folder, full_after = Path(folder_text).resolve(), int(count)

    def filling_open(file, mode="r", *args, **kwargs):
        handle = _real_open(file, mode, *args, **kwargs)
        writing = any(flag in mode for flag in "wax+")
        if writing and isinstance(file, (str, os.PathLike)) and Path(file).resolve().is_relative_to(folder) \
                and only in Path(file).name:
            return _FillingFile(handle, folder, full_after)
        return handle

    builtins.open = io.open = filling_open


def sitecustomize_folder(tmp: Path, watched: Path, *, full_after: int, only: str = "") -> dict[str, str]:
    """Write the start-up hook under ``tmp``; returns the environment a subprocess needs to run on the full disk."""
    hook = tmp / "full-disk-hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text("import tests.full_disk\ntests.full_disk.install()\n", encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(root)]),
            WATCHED_ENV: f"{watched}:{full_after}:{only}"}
