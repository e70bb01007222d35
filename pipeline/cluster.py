"""Run item tasks on an existing Dask distributed cluster instead of the local pool.

Workers write item files under the data folder, so every worker must see it at the same path (a shared
filesystem); they send back only the item's metadata. The coordinating process alone writes the catalog.
"""

from __future__ import annotations

from itertools import islice
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import Mp3MidiError

Task = TypeVar("Task")
Result = TypeVar("Result")
WINDOW_PER_WORKER = 8  # tasks kept queued on the cluster per worker thread
CONNECT_TIMEOUT = "10s"


def run_on_cluster(call: Callable[[Task], Result], tasks: Iterable[Task], *, address: str,
                   on_failure: Callable[[Task, str], Result]) -> Iterator[Result]:
    """Yield ``call(task)`` for every task as the cluster completes them; a task that raised or whose worker
    kept dying yields ``on_failure(task, reason)``."""
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise Mp3MidiError(f"cannot reach the Dask cluster at {address!r}: {exc}") from None
    try:
        threads = max(1, sum(client.nthreads().values()))
        tasks = iter(tasks)
        task_of = {}

        def submit(batch):
            futures = client.map(call, batch, pure=False)
            task_of.update({future.key: task for future, task in zip(futures, batch)})
            return futures

        completed = as_completed(submit(list(islice(tasks, threads * WINDOW_PER_WORKER))))
        for future in completed:
            task = task_of.pop(future.key)
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - includes KilledWorker: the item fails, the job goes on
                yield on_failure(task, f"failed on the cluster: {type(exc).__name__}: {exc}")
            completed.update(submit(list(islice(tasks, 1))))
    finally:
        client.close()
