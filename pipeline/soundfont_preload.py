"""A dataset job's soundfonts, loaded once in the server its workers fork from instead of once in every worker.

An .sf3 bank's samples take about three CPU seconds to decompress (FluidR3Mono), and each worker of each job paid
that again for every bank it drew. Loaded in the server, they reach every worker it forks, shared copy-on-write
(rendering only reads them). ``pipeline.pool.start_server`` has the server import this module by name with the
banks in ``SOUNDFONTS_VARIABLE`` (a JSON list of checked paths). A bank that fails here is said in one line and
remembered as failed, so the workers' items that draw it fail with FluidSynth's reason without loading it again.

FluidSynth decompresses with OpenMP threads, and GNU OpenMP cannot start threads again in a process forked after
it ran some (the child waits forever for threads that were not copied). So once the banks are in, the server
limits OpenMP to one thread, which its workers inherit: a bank a worker loads itself (one left out here) is
decompressed on the worker's own thread, as suits a process that stands for one core.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

from .render import LOADED_BANKS, load_soundfont

SOUNDFONTS_VARIABLE = "MP3_TO_MIDI_PRELOAD_SOUNDFONTS"


def preload(soundfonts: list[str]) -> list[str]:
    """Load each of ``soundfonts`` into this process (the first LOADED_BANKS: more would push the first ones out
    again), then limit OpenMP to one thread. Returns the banks that loaded. One that fails is said in one line on
    standard error and remembered as failed, so the workers' items that draw it fail with the reason at once."""
    loaded = []
    try:
        for path in soundfonts[:LOADED_BANKS]:
            try:
                load_soundfont(path)
            except Exception as exc:  # noqa: BLE001 - the server must live on: the workers' items say what failed
                print(f"warning: {exc}; items drawing this soundfont will fail", file=sys.stderr, flush=True)
                continue
            loaded.append(path)
    finally:
        one_openmp_thread()
    return loaded


def one_openmp_thread() -> None:
    """Limit the OpenMP runtime FluidSynth uses (when it uses one, and it is loaded) to one thread."""
    try:
        runtime = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:  # FluidSynth built without GNU OpenMP: no threads to limit
        return
    runtime.omp_set_num_threads(1)


if SOUNDFONTS_VARIABLE in os.environ:  # imported by the workers' server (pipeline.pool.start_server)
    try:
        _banks = json.loads(os.environ[SOUNDFONTS_VARIABLE])
    except ValueError:
        _banks = []
    preload([str(bank) for bank in _banks] if isinstance(_banks, list) else [])
