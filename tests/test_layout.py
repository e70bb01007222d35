"""pipeline/ holds the audio and feature core that transcription needs and the dataset factory: its docstring maps
every module to one of the two, and transcription imports nothing of the factory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pipeline

REPO = Path(__file__).resolve().parents[1]
CORE, FACTORY = pipeline.__doc__.split("The factory")


def listed(section: str) -> set[str]:
    """The modules a section lists: core lines start with 'name.py', factory lines with 'a, b, c:'."""
    names = set()
    for line in section.splitlines()[1:]:
        if re.match(r"\s+[a-z_]+\.py\s", line):
            names.add(line.split()[0].removesuffix(".py"))
        elif re.match(r"\s+[a-z_]+(, [a-z_]+)*:", line):
            names |= {name.strip() for name in line.split(":")[0].split(",")}
    return names


def test_every_module_of_pipeline_is_placed_in_the_core_or_the_factory():
    modules = {path.stem for path in (REPO / "pipeline").glob("*.py") if not path.stem.startswith("__")}
    core, factory = listed(CORE), listed(FACTORY)
    assert modules - core - factory == set() and (core | factory) - modules == set()
    assert core & factory == set()


def test_transcription_imports_only_the_core():
    code = ("import sys, model.transcribe; print('modules:', *sorted(name.split('.')[1] for name in sys.modules"
            " if name.startswith('pipeline.')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # (imports may print lines of their own: pyfluidsynth says where it found its library where CI is set)
    imported = set(next(line for line in result.stdout.splitlines() if line.startswith("modules:")).split()[1:])
    assert imported - listed(CORE) == set(), "transcription imports factory modules"
