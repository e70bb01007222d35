"""Keep large working buffers in the process from one pass to the next (glibc's malloc).

Each inference window, CQT chunk and training step allocates and frees the same set of large arrays. With
glibc's defaults, blocks over a threshold that moves with use come straight from mmap, and free memory at the top
of the heap goes back to the system once it exceeds twice that threshold: either way the next pass asks the
kernel again and pays a page fault for every 4 kB it touches. Fixing both thresholds above the largest buffer
keeps that memory for reuse (what it saves: docs/BENCHMARKS.md, ``benchmarks/allocator.py``). Other C libraries,
without ``mallopt``, are left as they are.

The setting belongs to the whole process, so only entry points make it: ``python -m model`` (every subcommand;
train and finetune with the training sizes), a dataset pool worker's start-up, and a Dask worker started with
``--preload pipeline.allocator`` (``dask_setup``). Library calls (``transcribe()``, ``make_item``, ``train``) never
do: the dashboard's server, or any program that imports them, keeps the allocator it chose.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

from .errors import Mp3MidiError

_M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MIB = 2**20
# Transcription and dataset items: a 768-frame network window's largest activation is 12 x 768 x 264 floats
# (10 MB); a CQT octave's frames and spectra 4 MB each for 30 s of audio.
WORKING_BLOCK_BYTES = 32 * MIB
# Training: a batch of 8 crops of 320 frames makes 32 MB activations at 264 bins, and larger batches more.
TRAINING_BLOCK_BYTES = 256 * MIB
BLOCK_RANGE_BYTES = (MIB, 2**30)

_applied: int | None = None  # what this process set last (None: glibc's defaults)


def keep_freed_memory(block_bytes: int = WORKING_BLOCK_BYTES) -> bool:
    """Serve blocks up to ``block_bytes`` from the heap and keep up to twice that free there for reuse.

    Process-wide, for entry points only; the last call wins. False where the C library has no ``mallopt`` or
    refused a value (nothing recorded then).
    """
    global _applied
    low, high = BLOCK_RANGE_BYTES
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or not low <= block_bytes <= high:
        raise Mp3MidiError(f"block_bytes must be a whole number between 1 MiB and 1 GiB; got {block_bytes!r}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    # The mmap threshold first: setting either one stops glibc from moving the mmap threshold by itself.
    if mallopt(_M_MMAP_THRESHOLD, block_bytes) != 1 or mallopt(_M_TRIM_THRESHOLD, 2 * block_bytes) != 1:
        return False
    _applied = block_bytes
    return True


def applied_block_bytes() -> int | None:
    """The ``block_bytes`` this process's last successful ``keep_freed_memory`` set; None if it never ran."""
    return _applied


def dask_setup(worker) -> None:
    """Dask's preload hook: ``dask worker ADDRESS --preload pipeline.allocator`` sets it as the worker starts."""
    keep_freed_memory(WORKING_BLOCK_BYTES)


@lru_cache(maxsize=1)
def _mallopt():
    try:  # the C library the process already runs on (no search for it: that runs ldconfig in a subprocess)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt
