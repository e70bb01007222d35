"""SIGTERM stops the work as Ctrl-C does, in the processes the project starts.

The command lines (and so the dashboard's background jobs, which run them) call ``stop_on_sigterm()`` before
anything else. Library functions never touch signals: they catch KeyboardInterrupt, keep what they made and record
themselves cancelled, whichever of the two stopped them. A timer that must stop the main thread (a stage's time
limit) calls ``interrupt_main_thread()``.
"""

from __future__ import annotations

import signal
import threading


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread. For entry points only: it is process-wide."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


def interrupt_main_thread() -> bool:
    """Raise KeyboardInterrupt in the main thread, even from a blocking wait; False when nothing can.

    The signal goes to the main thread itself, so it wakes from a wait: SIGTERM where an entry point made it Ctrl-C,
    else SIGINT where Python handles it. A process a shell starts in the background ignores SIGINT (and Python leaves
    it ignored), so a library caller there without ``stop_on_sigterm()`` cannot be interrupted: False.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        if callable(signal.getsignal(signum)):
            signal.pthread_kill(threading.main_thread().ident, signum)
            return True
    return False


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
