"""The allocator setting that keeps large buffers between passes (pipeline.allocator), and who may make it.

What it saves is a machine figure (benchmarks/allocator.py, docs/BENCHMARKS.md); these tests check only what does
not depend on the machine: what glibc does with the setting, and that entry points make it while library calls
leave the caller's process alone.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.allocator import (TRAINING_BLOCK_BYTES, WORKING_BLOCK_BYTES, applied_block_bytes,
                                keep_freed_memory)
from pipeline.errors import Mp3MidiError
from pipeline.pool import run_tolerant
from tests import tasks

ROOT = Path(__file__).resolve().parents[1]
GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")

# In a fresh process: malloc a 16 MB block, free it, malloc it again; print whether each lay in the [heap]
# mapping (brk) rather than in a mapping of its own, and whether the second is the first one's memory again.
PROBE = """
import ctypes, json, sys
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
if sys.argv[1] == "keep":
    from pipeline.allocator import keep_freed_memory
    assert keep_freed_memory()
def in_heap(address):
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(bound, 16) for bound in line.split()[0].split("-"))
            return low <= address < high
    return False
first = libc.malloc(16 << 20); libc.free(first)
second = libc.malloc(16 << 20); libc.free(second)
print(json.dumps([in_heap(first), in_heap(second), first == second]))
"""


def _probe(mode: str) -> list[bool]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("MALLOC_", "GLIBC_TUNABLES"))}  # glibc's own defaults, whatever the shell set
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                            cwd=ROOT, env=env)
    return json.loads(result.stdout)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc")
def test_blocks_come_from_the_heap_and_freed_ones_are_served_again():
    first_in_heap, _, same_memory = _probe("default")
    assert not first_in_heap and not same_memory  # glibc's defaults: a mapping of its own, handed back on free
    assert _probe("keep") == [True, True, True]  # the setting: heap memory, kept on free and served again


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
@pytest.mark.parametrize("block_bytes", [WORKING_BLOCK_BYTES, TRAINING_BLOCK_BYTES])
def test_glibc_takes_both_settings_and_the_process_records_them(block_bytes):
    assert keep_freed_memory(block_bytes) is True
    assert applied_block_bytes() == block_bytes
    assert keep_freed_memory(WORKING_BLOCK_BYTES) is True  # the last call wins, as in the processes that make it
    assert applied_block_bytes() == WORKING_BLOCK_BYTES


@pytest.mark.parametrize("block_bytes", [0, 2**20 - 1, 2**30 + 1, 2**31, -5, 1.5e7, "32M", True])
def test_block_sizes_out_of_range_are_refused(block_bytes):
    before = applied_block_bytes()
    with pytest.raises(Mp3MidiError, match=rf"block_bytes must be a whole number between 1 MiB and 1 GiB; "
                                           rf"got {block_bytes!r}"):
        keep_freed_memory(block_bytes)
    assert applied_block_bytes() == before


# A fresh process calls the library as the dashboard's server does (transcribe() and make_item), then the
# command line's main as `python -m model transcribe` does, printing what the process set after each.
LIBRARY_THEN_CLI = """
import json, sys
import numpy as np
from model.__main__ import main
from model.transcribe import transcribe
from pipeline.allocator import applied_block_bytes
from pipeline.instruments import DEFAULT_FAMILIES
from pipeline.item import ItemSpec, make_item
from pipeline.render import default_soundfont
from pipeline.sources import SourceRef
import soundfile
folder = sys.argv[1]
seen = []
tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
transcribe(tone)
seen.append(applied_block_bytes())
item = make_item(ItemSpec("a", SourceRef("procedural", "1", "a"), 1, (default_soundfont(),), DEFAULT_FAMILIES, 2.0,
                          0.0, False, "64k", folder, folder))
assert item.status == "done", item.error
seen.append(applied_block_bytes())
soundfile.write(f"{folder}/tone.wav", tone, 16000)
assert main(["transcribe", f"{folder}/tone.wav", "-o", f"{folder}/tone.mid"]) == 0
seen.append(applied_block_bytes())
print(json.dumps(seen))
"""


def test_library_calls_leave_the_allocator_alone_and_the_command_line_sets_it(tmp_path):
    result = subprocess.run([sys.executable, "-c", LIBRARY_THEN_CLI, str(tmp_path)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    after_transcribe, after_item, after_cli = json.loads(result.stdout.strip().splitlines()[-1])
    assert after_transcribe is None and after_item is None
    assert after_cli == (WORKING_BLOCK_BYTES if GLIBC else None)


def test_a_pool_worker_sets_it_at_start_up():
    settings = list(run_tolerant(tasks.allocator_setting, [0, 1], workers=1, on_failure=tasks.failed))
    assert settings == [WORKING_BLOCK_BYTES if GLIBC else None] * 2


def test_a_dask_worker_sets_it_when_started_with_the_preload():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=40, preload=["pipeline.allocator"]) as cluster, Client(cluster) as client:
        settings = client.run(applied_block_bytes)
    assert list(settings.values()) == [WORKING_BLOCK_BYTES if GLIBC else None]
