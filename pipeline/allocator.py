"""Keep large working buffers in the process from one pass to the next (glibc's malloc).

Each inference window, CQT chunk and training step allocates and frees the same set of large arrays. With
glibc's defaults, blocks over a threshold that moves with use come straight from mmap, and free memory at the top
of the heap goes back to the system once it exceeds twice that threshold: either way the next pass asks the
kernel again and pays a page fault for every 4 kB it touches. On a 2-core machine that was half the CQT's time,
a third of the network's inference and of a training step. Fixing both thresholds above the largest buffer keeps
that memory for reuse. Other C libraries, without ``mallopt``, are left as they are.
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


def keep_freed_memory(block_bytes: int = WORKING_BLOCK_BYTES) -> bool:
    """Serve blocks up to ``block_bytes`` from the heap and keep up to twice that free there for reuse.

    Process-wide; the last call wins. False where the C library has no ``mallopt`` (nothing changed).
    """
    if not MIB <= block_bytes <= 2**30:
        raise Mp3MidiError(f"block_bytes must be between 1 MiB and 1 GiB; got {block_bytes}")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    # The mmap threshold first: setting either one stops glibc from moving the mmap threshold by itself.
    return mallopt(_M_MMAP_THRESHOLD, block_bytes) == 1 and mallopt(_M_TRIM_THRESHOLD, 2 * block_bytes) == 1


@lru_cache(maxsize=1)
def _mallopt():
    try:  # the C library the process already runs on (no search for it: that runs ldconfig in a subprocess)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt
