"""The installed command and the command lines' help: `mp3-to-midi` is `python -m model` under its own name, and
every option of every subcommand (model and pipeline) says what it does."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

import model.__main__ as model_cli
import pipeline.__main__ as pipeline_cli

REPO = Path(__file__).resolve().parents[1]
COMMAND = Path(sys.executable).parent / "mp3-to-midi"  # where `pip install -e .` puts the console script
SUBCOMMANDS = ("train", "evaluate", "transcribe", "calibrate", "finetune")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def options_without_help(parser: argparse.ArgumentParser) -> list[str]:
    return [action.option_strings[0] if action.option_strings else action.dest for action in parser._actions
            if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()]


PARSERS = {f"model {name}": sub for name, sub in subcommands(model_cli.build_parser()).items()}
PARSERS |= {f"pipeline {name}": sub for name, sub in subcommands(pipeline_cli.build_parser()).items()}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_of_every_subcommand_has_a_help_text(name):
    parser = PARSERS[name]
    assert options_without_help(parser) == [], f"{name}: options without help"
    for action in parser._actions:
        if action.help:
            assert len(action.help.split()) >= 3, f"{name} {action.dest}: {action.help!r} is not a sentence"


def test_the_subcommands_are_the_ones_documented():
    assert set(subcommands(model_cli.build_parser())) == set(SUBCOMMANDS)


def test_the_package_is_installed_from_this_checkout():
    """Imports come through the installed (editable) package, not through sys.path edits."""
    from importlib.metadata import distribution

    installed = distribution("mp3-to-midi")
    assert any(e.name == "mp3-to-midi" and e.value == "model.__main__:console" for e in installed.entry_points)
    code = "import model, pipeline, dashboard; print(model.__file__)"
    result = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve().parent == REPO / "model"


def test_no_source_edits_sys_path():
    offenders = [str(path.relative_to(REPO)) for folder in ("pipeline", "model", "dashboard", "benchmarks", "docs",
                                                            "tests")
                 for path in (REPO / folder).rglob("*.py")
                 if not any(part.startswith(".") for part in path.relative_to(REPO).parts)  # e.g. benchmarks' venv
                 and ("sys.path." + "insert" in path.read_text(encoding="utf-8")
                 or "sys.path." + "append" in path.read_text(encoding="utf-8"))]
    assert offenders == []


@pytest.mark.parametrize("subcommand", [None, *SUBCOMMANDS])
def test_the_command_exists_and_helps(subcommand):
    assert COMMAND.is_file() and os.access(COMMAND, os.X_OK), f"{COMMAND} missing: run `pip install -e . --no-deps`"
    arguments = [str(COMMAND)] + ([subcommand] if subcommand else []) + ["--help"]
    result = subprocess.run(arguments, cwd="/", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: mp3-to-midi" + (f" {subcommand}" if subcommand else ""))
    if subcommand == "transcribe":
        assert "--output" in result.stdout and "--quantize" in result.stdout


def test_the_command_transcribes_and_refuses_like_python_m_model(tmp_path):
    """Bad input through the command: one line, exit 2, nothing written; the same as `python -m model`."""
    missing, target = tmp_path / "nothing-here.mp3", tmp_path / "out.mid"
    for launcher in ([str(COMMAND)], [sys.executable, "-m", "model"]):
        result = subprocess.run([*launcher, "transcribe", str(missing), "-o", str(target)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2
        assert "error:" in result.stderr and "Traceback" not in result.stderr
        assert not target.exists()


def test_the_command_turns_an_mp3_into_a_midi_file(tmp_path):
    """`mp3-to-midi transcribe song.mp3 -o song.mid`, run from another folder, with the committed default model."""
    import pretty_midi

    from pipeline.audio import encode_mp3
    from pipeline.notes import Part
    from pipeline.render import default_soundfont, render
    from tests.conftest import melody

    notes = melody(6, start_pitch=60, step_s=0.4)
    encode_mp3(render([Part(0, False, notes)], 3.0, soundfont=default_soundfont()), tmp_path / "song.mp3")
    # CI=true: pyfluidsynth then prints where it found its library at import; the command's output stays its own
    result = subprocess.run([str(COMMAND), "transcribe", "song.mp3", "-o", "song.mid"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "CI": "true"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("song.mp3 -> song.mid: ")
    heard = {note.pitch for note in pretty_midi.PrettyMIDI(str(tmp_path / "song.mid")).instruments[0].notes}
    assert {note.pitch for note in notes} <= heard
