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


if __name__ == "__main__":
    import sys

    run_pool_forever(sys.argv[1])
