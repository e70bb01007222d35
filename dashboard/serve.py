"""The dashboard served in the background on a free local port, for browser tests and screenshots.

    with streamlit_server("data/") as url:
        ...  # open f"{url}/transcribe"
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from .settings import ROOT

APP = ROOT / "dashboard" / "app.py"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.25
LOG_TAIL_CHARS = 2000


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(data_dir: str | Path, *, port: int | None = None, address: str | None = HOST,
                     timeout_s: float = START_TIMEOUT_S) -> Iterator[str]:
    """Run ``streamlit run dashboard/app.py`` on ``data_dir`` and yield its base URL once it answers.

    ``address`` is passed as ``--server.address``; None passes none, so the address comes from
    .streamlit/config.toml as with the documented command (the URL is then on HOST). The server runs from the
    repository root (so that file applies) and is stopped on exit. Raises ``RuntimeError`` with the end of its
    output if it exits or stays silent for ``timeout_s``.
    """
    port = port or free_port()
    url = f"http://{address or HOST}:{port}"
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    if address is not None:
        command += ["--server.address", address]
    env = {**os.environ, "MP3_TO_MIDI_DATA": str(Path(data_dir).resolve())}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_healthy(url, process, log, timeout_s)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(url: str, process: subprocess.Popen, log, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}: {_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(POLL_S)
    raise RuntimeError(f"streamlit did not answer on {url} within {timeout_s:g} s: {_tail(log)}")


def _tail(log) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-LOG_TAIL_CHARS:].strip() or "(no output)"
