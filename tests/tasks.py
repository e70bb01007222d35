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
