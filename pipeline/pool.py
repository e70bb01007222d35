"""Run tasks in local worker processes that survive a crash or a hang of one task.

Each worker holds one task at a time, so the coordinator knows which task a worker is on and since when. A worker
that dies (a segfault in a C library, the OOM killer) fails exactly its own task; a task that outlives its time
limit (a hung FluidSynth or ffmpeg) has its worker killed and fails with "timed out after N s". Either way a fresh
worker takes the dead one's place and the other tasks go on.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import select
import threading
import time
from collections import deque
from multiprocessing import forkserver
from multiprocessing.connection import wait
from typing import Callable, Iterable, Iterator, Mapping, TypeVar

from .allocator import WORKING_BLOCK_BYTES, keep_freed_memory

# Workers fork from a server process that holds no job state and no open database, only imported modules and what
# they loaded (start_server); OpenBLAS re-creates its threads in each child after a fork, and the OpenMP that
# FluidSynth loads soundfonts with is limited to one thread there before any fork (pipeline.soundfont_preload).
_CONTEXT = multiprocessing.get_context("forkserver")
_STARTING = threading.Lock()  # one start at a time: the environment is the process's
Task = TypeVar("Task")
Result = TypeVar("Result")
CRASHED = "the worker process crashed while making this item"


def start_server(preload: Iterable[str], *, environment: Mapping[str, str] | None = None) -> None:
    """Start the server that workers are forked from, importing the ``preload`` modules, ahead of the first pool.

    The server imports them once (not each worker), and while it does, the caller can go on (plan the job). It
    starts with ``environment``'s variables added to this process's (what a preload module reads: the job's banks
    for ``pipeline.soundfont_preload``); this process's own environment is left as it was. A server already running
    keeps what it has.
    """
    with _STARTING:
        saved = {name: os.environ.get(name) for name in environment or {}}
        os.environ.update(environment or {})
        try:
            # quiet first: workers share stdout
            _CONTEXT.set_forkserver_preload(["pipeline.quiet_fluidsynth", *preload])
            forkserver.ensure_running()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def timed_out(limit_s: float) -> str:
    """The reason a task fails with when it outlives ``limit_s`` seconds (the same wording locally and on Dask)."""
    return f"timed out after {limit_s:g} s"


def run_tolerant(call: Callable[[Task], Result], tasks: Iterable[Task], *, workers: int,
                 on_failure: Callable[[Task, str], Result],
                 time_limit: Callable[[Task], float | None] | None = None) -> Iterator[Result]:
    """Yield ``call(task)`` for every task, in completion order, from ``workers`` processes.

    A task that raised, whose worker died, or that ran longer than ``time_limit(task)`` seconds (None: no limit)
    yields ``on_failure(task, reason)`` instead; a killed or dead worker is replaced. ``call`` must be a
    module-level function (workers import it by name). Closing the iterator stops every worker.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1; got {workers}")
    queue: deque[Task] = deque(tasks)
    idle: list[_Worker] = []
    busy: list[_Worker] = []
    try:
        while queue or busy:
            while queue and len(busy) < workers:
                worker = idle.pop() if idle else _Worker(call)
                if not worker.process.is_alive():  # died while idle (the OOM killer, say): a fresh one instead
                    worker.close()
                    worker = _Worker(call)
                task = queue.popleft()
                worker.give(task, time_limit(task) if time_limit else None)
                busy.append(worker)
            now = time.monotonic()
            nearest = min((worker.deadline for worker in busy), default=math.inf)
            ready = wait([handle for worker in busy for handle in (worker.connection, worker.sentinel)],
                         timeout=None if nearest == math.inf else max(0.0, nearest - now))
            for worker in list(busy):
                if worker.connection in ready or worker.sentinel in ready:
                    outcome = worker.take()
                elif time.monotonic() >= worker.deadline:
                    outcome = ("failed", timed_out(worker.limit_s))
                    worker.kill()
                else:
                    continue
                busy.remove(worker)
                task = worker.task
                worker.task = None
                if worker.process.is_alive():
                    idle.append(worker)
                else:
                    worker.close()
                kind, value = outcome
                yield value if kind == "done" else on_failure(task, value)
    finally:
        for worker in idle + busy:
            worker.stop()


class _Worker:
    """One worker process and the pipe it takes tasks from and answers on."""

    def __init__(self, call):
        self.connection, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_serve, args=(call, child, os.getpid()), daemon=True,
                                        name="dataset-worker")
        self.process.start()
        child.close()
        self.sentinel = self.process.sentinel
        self.task = None
        self.limit_s: float | None = None
        self.deadline = math.inf

    def give(self, task, limit_s: float | None) -> None:
        self.task, self.limit_s = task, limit_s
        self.deadline = math.inf if limit_s is None else time.monotonic() + limit_s
        try:
            self.connection.send(task)
        except OSError:  # it died just now: its sentinel is ready, and take() fails the task as a crash
            pass

    def take(self) -> tuple[str, object]:
        """The worker's answer: ("done", result) or ("failed", reason); a dead worker's task failed with it."""
        try:
            if self.connection.poll():
                return self.connection.recv()
        except (EOFError, OSError):
            pass
        self.kill()
        return "failed", CRASHED

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()

    def stop(self) -> None:
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(timeout=1.0)
        self.kill()
        self.close()

    def close(self) -> None:
        self.connection.close()
        self.process.close()


def _serve(call, connection, coordinator: int) -> None:
    """A worker's life: take a task, answer ("done", result) or ("failed", reason), until told to stop (None)."""
    _start_worker(coordinator)
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            answer = ("done", call(task))
        except Exception as exc:  # noqa: BLE001 - an unexpected error fails its task, never the pool
            answer = ("failed", f"unexpected {type(exc).__name__}: {exc}")
        connection.send(answer)


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
