"""Run item tasks on an existing Dask distributed cluster instead of the local pool.

Workers write item files under the data folder, so every worker must see it at the same path (a shared
filesystem); they send back only the item's metadata. The coordinating process alone writes the catalog.

Time limits: a task records on its worker when it started; the coordinator asks the workers every second which
tasks have outlived their limit, fails those with "timed out after N s" and restarts their workers (through their
nannies: a thread hung in C code can only be stopped with its process). Tasks that were sharing a restarted worker
are rescheduled by Dask.
"""

from __future__ import annotations

import time
from itertools import islice
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import Mp3MidiError
from .pool import timed_out

Task = TypeVar("Task")
Result = TypeVar("Result")
WINDOW_PER_WORKER = 8  # tasks kept queued on the cluster per worker thread
CONNECT_TIMEOUT = "10s"
WATCH_EVERY_S = 1.0  # how often the coordinator asks the workers for overdue tasks
RESTART_TIMEOUT_S = 60

_STARTED: dict[str, tuple[float, float]] = {}  # on a worker: running task key -> (monotonic start, limit in s)


def run_on_cluster(call: Callable[[Task], Result], tasks: Iterable[Task], *, address: str,
                   on_failure: Callable[[Task, str], Result],
                   time_limit: Callable[[Task], float | None] | None = None) -> Iterator[Result]:
    """Yield ``call(task)`` for every task as the cluster completes them; a task that raised, whose worker kept
    dying, or that ran longer than ``time_limit(task)`` seconds yields ``on_failure(task, reason)``."""
    from distributed import Client, wait

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise Mp3MidiError(f"cannot reach the Dask cluster at {address!r}: {exc}") from None
    try:
        threads = max(1, sum(client.nthreads().values()))
        tasks = iter(tasks)
        pending = {}  # future -> (task, limit_s)

        def submit(count: int) -> None:
            for task in islice(tasks, count):
                limit_s = time_limit(task) if time_limit else None
                pending[client.submit(_timed_call, call, task, limit_s, pure=False)] = (task, limit_s)

        submit(threads * WINDOW_PER_WORKER)
        while pending:
            try:
                done, _ = wait(list(pending), timeout=WATCH_EVERY_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = ()
            for future in done:
                task, _ = pending.pop(future)
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - includes KilledWorker: the item fails, the job goes on
                    yield on_failure(task, f"failed on the cluster: {type(exc).__name__}: {exc}")
                submit(1)
            if time_limit is not None:
                for task, limit_s in _stop_overdue(client, pending):
                    yield on_failure(task, timed_out(limit_s))
                    submit(1)
    finally:
        client.close()


def _stop_overdue(client, pending: dict) -> list:
    """Fail the tasks that outlived their limits: cancel them and restart the workers they hang in."""
    try:
        overdue = client.run(_overdue_keys)  # worker address -> keys
    except Exception:  # noqa: BLE001 - a worker going away mid-question: ask again next time
        return []
    by_key = {future.key: future for future in pending}
    stopped, hung = [], []
    for address, keys in overdue.items():
        for key in keys:
            future = by_key.get(key)
            if future is not None:
                stopped.append(pending.pop(future))
                future.cancel()
                hung.append(address)
    if hung:
        client.restart_workers(sorted(set(hung)), timeout=RESTART_TIMEOUT_S, raise_for_error=False)
    return stopped


def _timed_call(call, task, limit_s: float | None):
    """Runs on a worker: ``call(task)``, noting its start so the coordinator can see when it is overdue."""
    from distributed import get_worker

    key = get_worker().get_current_task()
    if limit_s is not None:
        _STARTED[key] = (time.monotonic(), limit_s)
    try:
        return call(task)
    finally:
        _STARTED.pop(key, None)


def _overdue_keys() -> list[str]:
    """Runs on a worker: the keys of its tasks running past their limits."""
    now = time.monotonic()
    return [key for key, (started, limit_s) in list(_STARTED.items()) if now - started > limit_s]
