"""Run tasks in a local process pool that survives a worker crash.

``concurrent.futures`` marks the whole pool broken when one worker dies (a segfault in a C library, the OOM
killer). Here every task in flight at that moment becomes a suspect; suspects are then run one at a time in a
fresh pool, so the task that really crashes is identified and failed, and the innocent ones complete.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import select
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from typing import Callable, Iterable, Iterator, TypeVar

from .allocator import WORKING_BLOCK_BYTES, keep_freed_memory

# Workers fork from a server process that holds no job state and no open database, only imported modules
# (start_server); OpenBLAS, the one library there with threads, re-creates them in each child after a fork.
_CONTEXT = multiprocessing.get_context("forkserver")
Task = TypeVar("Task")
Result = TypeVar("Result")


def start_server(preload: Iterable[str]) -> None:
    """Start the server that workers are forked from, importing the ``preload`` modules, ahead of the first pool.

    The server imports them once (not each worker), and while it does, the caller can go on (plan the job).
    A server already running keeps what it has.
    """
    _CONTEXT.set_forkserver_preload(list(preload))
    forkserver.ensure_running()


def run_tolerant(call: Callable[[Task], Result], tasks: Iterable[Task], *, workers: int,
                 on_failure: Callable[[Task, str], Result]) -> Iterator[Result]:
    """Yield ``call(task)`` for every task, in completion order. A task whose worker died, or that raised,
    yields ``on_failure(task, reason)`` instead. At most ``2 * workers`` tasks are in flight."""
    queue: deque[Task] = deque(tasks)
    suspects: deque[Task] = deque()
    while queue or suspects:
        pool = ProcessPoolExecutor(max_workers=1 if suspects else workers, mp_context=_CONTEXT,
                                   initializer=_start_worker, initargs=(os.getpid(),))
        try:
            if suspects:
                yield from _run_alone(pool, call, suspects.popleft(), on_failure)
            else:
                yield from _run_batch(pool, call, queue, suspects, workers, on_failure)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _start_worker(coordinator: int) -> None:
    """A worker's first act. The cyclic collector stops walking what the imports made (``gc.freeze``), the
    allocator keeps the buffers tasks free for the next task (``pipeline.allocator``: the process is ours), and the
    worker exits with the process that hands it tasks: after a kill -9 there, workers would otherwise wait for
    tasks forever, each holding its buffers. (Linux: a pidfd becomes readable when its process ends.)"""
    gc.freeze()
    keep_freed_memory(WORKING_BLOCK_BYTES)
    try:
        handle = os.pidfd_open(coordinator)
    except ProcessLookupError:  # gone already
        os._exit(1)
    except (AttributeError, OSError):  # no pidfds on this system: nothing to wait on
        return
    threading.Thread(target=_exit_when_readable, args=(handle,), daemon=True, name="coordinator-watch").start()


def _exit_when_readable(handle: int) -> None:
    select.select([handle], [], [])
    os._exit(1)


def _run_alone(pool, call, task, on_failure):
    try:
        yield pool.submit(call, task).result()
    except BrokenProcessPool:
        yield on_failure(task, "the worker process crashed while making this item")
    except Exception as exc:  # noqa: BLE001 - an unexpected error fails its item, never the job
        yield on_failure(task, f"unexpected {type(exc).__name__}: {exc}")


def _run_batch(pool, call, queue, suspects, workers, on_failure):
    in_flight = {}
    while queue or in_flight:
        while queue and len(in_flight) < 2 * workers:
            task = queue.popleft()
            in_flight[pool.submit(call, task)] = task
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        crashed = False
        for future in done:
            task = in_flight.pop(future)
            try:
                yield future.result()
            except BrokenProcessPool:
                crashed = True
                suspects.append(task)
            except Exception as exc:  # noqa: BLE001
                yield on_failure(task, f"unexpected {type(exc).__name__}: {exc}")
        if crashed:
            suspects.extend(in_flight.values())
            return
