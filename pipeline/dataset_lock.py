"""One job per dataset: the process coordinating a job holds an OS file lock on ``DATASET/job.lock``.

The lock is ``flock``: the kernel releases it when its holder ends, however it ends (``kill -9`` included), so a
killed job never blocks the next run, and no pid is ever trusted to tell. The file also says who holds it (job id,
pid, host, process start time), for the message a second run gets, and keeps a job's failure reason when the
catalog could not take it (its lock never freed): the next job on the dataset records it there.

The dashboard takes the lock before it launches a job and hands the open file to the child, which adopts it
(``inherited_fd``): there is no moment between "is anyone running?" and "start" when a second launch could slip in.
Locks on a network file system are only as good as its ``flock``; run one coordinator per dataset there.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import Mp3MidiError

LOCK_FILE = "job.lock"


@dataclass
class DatasetLock:
    dataset: str
    path: Path
    fd: int
    previous: dict  # what the file said when the lock was taken (the last holder; {} if none)

    def record(self, **fields) -> None:
        """Write who holds the lock now (and later, how the job ended), replacing what the file said."""
        text = json.dumps(fields).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text, 0)

    def release(self) -> None:
        """Close this process's handle. A child the handle was passed to keeps the lock until it ends."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "DatasetLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def acquire(folder: str | Path, dataset: str, *, inherited_fd: int | None = None) -> DatasetLock:
    """Take the dataset's lock without waiting; raises ``Mp3MidiError`` naming the running job when it is held.

    ``inherited_fd``: a handle on the lock file passed down by the process that launched this one, already locked.
    """
    path = Path(folder) / LOCK_FILE
    if inherited_fd is not None:
        fd = inherited_fd
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a no-op on a handle that already holds it
    except BlockingIOError:
        holder = _read(fd)
        os.close(fd)
        raise Mp3MidiError(f"dataset {dataset!r} already has a job running: {describe(holder)};"
                           " wait for it to finish or cancel it") from None
    return DatasetLock(dataset, path, fd, _read(fd))


def last_holder(folder: str | Path) -> dict:
    """What the lock file of the dataset in ``folder`` says ({} when there is none), without taking the lock."""
    try:
        with open(Path(folder) / LOCK_FILE, "rb") as handle:
            return _parse(handle.read())
    except FileNotFoundError:
        return {}


def describe(holder: dict) -> str:
    if not holder.get("job_id"):
        return "another job is starting"
    return f"job {holder['job_id']} (pid {holder.get('pid')} on {holder.get('host')})"


def _read(fd: int) -> dict:
    return _parse(os.pread(fd, 65_536, 0))


def _parse(data: bytes) -> dict:
    try:
        value = json.loads(data.decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
