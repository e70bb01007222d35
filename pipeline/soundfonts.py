"""Soundfonts a user can pick without typing a path: the embedded default, the data folder's, the system's."""

from __future__ import annotations

from pathlib import Path

from .render import default_soundfont

SYSTEM_SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3"))  # Debian's packages
SUFFIXES = (".sf2", ".sf3")


def user_soundfont_dir(data_dir: str | Path) -> Path:
    """Drop .sf2/.sf3 files here (data/soundfonts) to offer them in the dashboard."""
    return Path(data_dir).resolve() / "soundfonts"


def installed_soundfonts(data_dir: str | Path) -> list[str]:
    """Resolved paths, the embedded default first; links to the same file are listed once."""
    found = [default_soundfont()]
    for folder in (user_soundfont_dir(data_dir), *SYSTEM_SOUNDFONT_DIRS):
        if folder.is_dir():
            found += sorted(str(path) for path in folder.iterdir() if path.suffix.lower() in SUFFIXES)
    unique: dict[str, str] = {}
    for path in found:
        resolved = str(Path(path).resolve())
        if Path(resolved).is_file():
            unique.setdefault(resolved, resolved)
    return list(unique)
