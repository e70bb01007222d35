"""SIGTERM is Ctrl-C in the processes the project starts, and a timer can stop the main thread mid-wait, even where
a shell started the process in the background (SIGINT ignored)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import signal, sys, threading, time
from pipeline.sigterm import interrupt_main_thread, stop_on_sigterm
if {ignore_sigint}:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to a command it starts with '&'
if {entry_point}:
    stop_on_sigterm()
sent = []
threading.Timer(0.2, lambda: sent.append(interrupt_main_thread())).start()
started = time.monotonic()
try:
    threading.Event().wait({wait_s})
    print("waited", sent)
except KeyboardInterrupt:
    print("interrupted after", round(time.monotonic() - started, 1), sent)
"""


@pytest.mark.parametrize(("ignore_sigint", "entry_point", "interrupted"), [
    (False, False, True),  # a library caller: SIGINT, handled by Python
    (False, True, True),  # a command line: SIGTERM
    (True, True, True),  # a command line started in the background
    (True, False, False),  # a library caller started in the background: nothing can interrupt it, and it says so
])
def test_a_timer_interrupts_the_main_thread_in_a_blocking_wait(ignore_sigint, entry_point, interrupted):
    wait_s = 60 if interrupted else 1
    code = PROBE.format(ignore_sigint=ignore_sigint, entry_point=entry_point, wait_s=wait_s)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    if interrupted:
        assert result.stdout.startswith("interrupted after") and result.stdout.strip().endswith("[True]")
        assert float(result.stdout.split()[2]) < wait_s / 2
    else:
        assert result.stdout.strip() == "waited [False]"

