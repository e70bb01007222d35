"""Long work in its own process: the dashboard launches ``python -m pipeline|model ...`` and returns at once.

The child starts a new session, so closing or reloading a page never touches it, and it writes what it prints to a
log file under the data folder. Progress is read from the catalog, which the child records as it goes. A stop is
SIGTERM, which the generation and training loops turn into an orderly 'cancelled' with everything made so far kept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .catalog import validate_name

ROOT = Path(__file__).resolve().parents[1]
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class Launched:
    pid: int
    log_path: Path
    command: tuple[str, ...]


def log_path(data_dir: str | Path, kind: str, name: str) -> Path:
    """data/logs/KIND-NAME.log; ``name`` is a validated slug, so the path stays in the data folder."""
    return Path(data_dir).resolve() / "logs" / f"{kind}-{validate_name(name, what=kind)}.log"


def launch(module: str, arguments: list[str], *, log: Path) -> Launched:
    """Start ``python -m module arguments...`` detached from the caller; returns without waiting."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = (sys.executable, "-m", module, *arguments)
    with open(log, "ab") as output:
        output.write(f"$ {' '.join(command[1:])}\n".encode())
        output.flush()
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # Reap the child when it ends, so a finished job never lingers as a zombie that still looks alive.
    threading.Thread(target=process.wait, daemon=True).start()
    return Launched(process.pid, log, command)


def is_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(pid: int | None) -> bool:
    """Ask process ``pid`` to stop (SIGTERM); False when it is not running."""
    if not is_alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def log_tail(path: str | Path, *, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log (progress-bar carriage returns folded), or '' when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64_000))
        text = handle.read().decode(errors="replace")
    rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines()]
    return "\n".join(rows[-lines:])

