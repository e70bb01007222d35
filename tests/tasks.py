"""Module-level tasks for the pool tests (worker processes import them by name)."""

import os


def square_or_die(task: int) -> int:
    if task == 13:
        os._exit(3)  # a hard crash, as a segfault in a C library would be
    if task == 7:
        raise ValueError("seven is unlucky")
    return task * task


def failed(task: int, reason: str) -> str:
    return f"{task} failed: {reason}"


def allocator_setting(task: int) -> int | None:
    """What the worker's start-up set for glibc's allocator (``pipeline.allocator``)."""
    from pipeline.allocator import applied_block_bytes

    return applied_block_bytes()


def square_or_hang(task: int) -> int:
    """Task 5 never returns, as a hung FluidSynth or ffmpeg would; the others answer at once."""
    if task == 5:
        wait_forever()
    return task * task


def wait_forever() -> None:
    import threading

    threading.Event().wait()


def report_pid_then_wait(folder: str) -> None:
    """Leave this worker's pid in ``folder``, then never finish: only the end of the coordinator ends it."""
    from pathlib import Path

    (Path(folder) / f"{os.getpid()}.pid").touch()
    wait_forever()


def run_pool_forever(folder: str) -> None:
    """A coordinator: two workers on tasks that never finish in a test's time."""
    from pipeline.pool import run_tolerant

    for _ in run_tolerant(report_pid_then_wait, [folder] * 4, workers=2, on_failure=failed):
        pass



def worker_soundfonts(banks: tuple[str, str]) -> tuple[bool, int | None, bool]:
    """In a worker: whether bank ``banks[0]`` was loaded before this task asked for it (by the server the worker
    forked from), the OpenMP thread limit here (None where FluidSynth uses no GNU OpenMP), and whether
    ``banks[1]``, which nobody loaded before, loads and renders a note here."""
    import ctypes

    from pipeline import render
    from pipeline.notes import Note, Part

    hits = render._loaded_font.cache_info().hits
    render.load_soundfont(banks[0])
    preloaded = render._loaded_font.cache_info().hits == hits + 1
    try:
        runtime = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        runtime.omp_get_max_threads.restype = ctypes.c_int
        threads = runtime.omp_get_max_threads()
    except OSError:
        threads = None
    audio = render.render([Part(0, False, (Note(0.0, 0.2, 60, 100),))], 0.3, soundfont=banks[1])
    return preloaded, threads, bool(audio.any())


def unloadable_bank(bank: str) -> tuple[str, int]:
    """In a worker: what loading ``bank`` says (a bank the server failed to load), and how many loads it took."""
    from pipeline import render
    from pipeline.errors import Mp3MidiError

    misses = render._loaded_font.cache_info().misses
    try:
        render.load_soundfont(bank)
    except Mp3MidiError as exc:
        return str(exc), render._loaded_font.cache_info().misses - misses
    return "loaded", render._loaded_font.cache_info().misses - misses


def preloaded_workers(bank: str, other_bank: str, bad_bank: str) -> list:
    """A coordinator whose workers' server preloads ``bad_bank`` (which fails) and ``bank``: what two workers
    report (worker_soundfonts), then what a worker says of the bad bank (unloadable_bank)."""
    import json

    from pipeline import soundfont_preload
    from pipeline.pool import run_tolerant, start_server

    start_server([soundfont_preload.__name__],
                 environment={soundfont_preload.SOUNDFONTS_VARIABLE: json.dumps([bad_bank, bank])})
    reports = list(run_tolerant(worker_soundfonts, [(bank, other_bank)] * 2, workers=2, on_failure=failed,
                                time_limit=lambda task: 120.0))
    return reports + list(run_tolerant(unloadable_bank, [bad_bank], workers=1, on_failure=failed))

if __name__ == "__main__":
    import sys

    run_pool_forever(sys.argv[1])
