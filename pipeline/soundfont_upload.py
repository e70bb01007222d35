"""A soundfont a user uploads: checked (name, size, header, and FluidSynth must load it) before it is kept in the
data folder's soundfonts/ (where every page offers it). FluidSynth loads it in a child process with a time limit,
so a file crafted to crash or hang the synthesizer takes down that child, never the dashboard."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

from .atomic import atomic_path
from .errors import Mp3MidiError
from .soundfonts import SUFFIXES, user_soundfont_dir

MAX_SOUNDFONT_BYTES = 256 * 2**20  # General MIDI banks run from 6 MB (TimGM6mb) to 145 MB (FluidR3_GM)
LOAD_TIMEOUT_S = 120.0  # an .sf3 decompresses its samples on load: MuseScore General's 38 MB take seconds


def add_soundfont(data_dir: str | Path, filename: str, content: bytes, *,
                  timeout_s: float = LOAD_TIMEOUT_S) -> Path:
    """Check an uploaded soundfont and keep it as data/soundfonts/NAME; returns its path. The same bytes uploaded
    again return the file kept before. Raises ``Mp3MidiError`` (and keeps nothing) when it is refused."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise Mp3MidiError(f"{filename!r} is not a soundfont: choose an .sf2 or .sf3 file")
    if not content:
        raise Mp3MidiError(f"{filename!r} is empty")
    if len(content) > MAX_SOUNDFONT_BYTES:
        raise Mp3MidiError(f"{filename!r} is {len(content) / 2**20:.0f} MB; soundfonts up to "
                           f"{MAX_SOUNDFONT_BYTES // 2**20} MB are accepted")
    if content[:4] != b"RIFF" or content[8:12] != b"sfbk":
        raise Mp3MidiError(f"{filename!r} is not an SF2/SF3 file (no RIFF sfbk header)")
    folder = user_soundfont_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(filename).stem).strip("-")[:48] or "soundfont"
    digest = hashlib.sha256(content).hexdigest()[:8]
    target = folder / f"{stem}-{digest}{suffix}"
    if target.is_file() and target.read_bytes() == content:
        return target
    with atomic_path(target) as partial:  # a full disk is one clear line, and nothing is kept
        partial.write_bytes(content)
        _check_loads(partial, filename, timeout_s=timeout_s)
    return target


def _check_loads(path: Path, filename: str, *, timeout_s: float) -> None:
    """FluidSynth loads ``path``, samples and all (a bank whose samples are damaged is refused now, not item by item
    later), in a child process."""
    probe = ("import sys; from pipeline.render import check_soundfont, load_soundfont;"
             " load_soundfont(check_soundfont(sys.argv[1]))")
    try:
        result = subprocess.run([sys.executable, "-c", probe, str(path)], cwd=Path(__file__).resolve().parents[1],
                                capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise Mp3MidiError(f"FluidSynth took more than {timeout_s:.0f} s to load {filename!r}") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].split(": ", 1)[-1] if lines and result.returncode > 0 else f"exit {result.returncode}"
        raise Mp3MidiError(f"FluidSynth cannot load {filename!r} ({reason[:200]})")
