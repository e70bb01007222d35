"""The allocator settings that keep the network's buffers between passes (pipeline.allocator)."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.allocator import WORKING_BLOCK_BYTES, keep_freed_memory
from pipeline.errors import Mp3MidiError

ROOT = Path(__file__).resolve().parents[1]

# Allocates and frees eight 4 MB buffers twice, as a network's pass does, and prints the page faults of the
# second round. glibc's defaults hand the first round's memory back (32 MB free at the heap's top is over
# twice the largest block), so the second faults every page in again.
ROUNDS = """
import resource, sys
import numpy as np
from pipeline.allocator import WORKING_BLOCK_BYTES, keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory(WORKING_BLOCK_BYTES)
faults = []
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffers = [np.ones(2**20, np.float32) for _ in range(8)]
    del buffers
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(faults[1])
"""


def _second_round_faults(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True,
                            cwd=ROOT)
    return int(result.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_buffers_are_reused_without_asking_the_kernel_again():
    pages = 8 * 4 * 2**20 // 4096
    default, kept = _second_round_faults("default"), _second_round_faults("keep")
    assert default > pages // 2  # the defaults give the memory back: the test can tell
    assert kept < pages // 10


@pytest.mark.parametrize("block_bytes", [0, 2**31])
def test_block_sizes_out_of_range_are_refused(block_bytes):
    with pytest.raises(Mp3MidiError, match=f"block_bytes must be between 1 MiB and 1 GiB; got {block_bytes}"):
        keep_freed_memory(block_bytes)


def test_settings_can_be_applied_again():
    assert keep_freed_memory(WORKING_BLOCK_BYTES) == keep_freed_memory(WORKING_BLOCK_BYTES)
