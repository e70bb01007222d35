"""Screenshots of every dashboard page, for the docs: ``.venv/bin/python docs/screenshots.py [--data-dir data/]``.

Serves the dashboard on a free local port, opens each page in headless Chromium at 1400x900 and writes
docs/screenshots/{home,generate,coverage,training,transcribe}.png (full pages), and finetune.png: the Training
page's "Fine-tune to my sound" flow (with the newest fine-tune's before/after report when the data folder holds
one). On Transcribe it uploads a short piano MP3 rendered on the spot, so the result is in the picture.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dashboard.headless_browser import (VIEWPORT, chromium_path, full_page_screenshot, launch_chromium,
                                        settle, upload_file)
from dashboard.serve import streamlit_server
from pipeline.audio import encode_mp3
from pipeline.notes import Note, Part
from pipeline.render import default_soundfont, render

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"home": "", "generate": "generate", "coverage": "coverage", "training": "training",
         "transcribe": "transcribe"}
RESULT_TEXT = "Download .mid"  # on Transcribe once the notes are in
RESULT_TIMEOUT_MS = 120_000
FINETUNE_HEADING = "Fine-tune to my sound"
MELODY_PITCHES = (60, 64, 67, 72, 67, 64, 62, 65, 69, 74, 71, 67)  # C major and G7 arpeggios
NOTE_STEP_S = 0.35
NOTE_LENGTH_S = 0.3
TAIL_S = 0.8
VELOCITY = 90
PIANO = 0


def demo_mp3(path: Path) -> Path:
    """A few seconds of piano, rendered through FluidSynth and encoded as an upload would be."""
    notes = tuple(Note(i * NOTE_STEP_S + NOTE_STEP_S, i * NOTE_STEP_S + NOTE_STEP_S + NOTE_LENGTH_S, pitch, VELOCITY)
                  for i, pitch in enumerate(MELODY_PITCHES))
    duration = notes[-1].end_s + TAIL_S
    encode_mp3(render([Part(PIANO, False, notes)], duration, soundfont=default_soundfont()), path)
    return path


def take_screenshots(data_dir: Path, out: Path, *, pages: list[str] | None = None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("No Chromium found: install Debian's chromium package (make test does), "
                         "or point CHROMIUM_PATH at one.")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as scratch, streamlit_server(data_dir) as url, sync_playwright() as playwright:
        recording = demo_mp3(Path(scratch) / "arpeggios.mp3")
        browser = launch_chromium(playwright, executable)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            for name, path in PAGES.items():
                if pages and name not in pages:
                    continue
                page.goto(f"{url}/{path}")
                settle(page)
                if name == "transcribe":
                    upload_file(page, recording)
                    page.get_by_text(RESULT_TEXT).first.wait_for(timeout=RESULT_TIMEOUT_MS)
                    settle(page)
                target = out / f"{name}.png"
                full_page_screenshot(page, target)
                written.append(target)
                print(f"{name}: {target}")
                if name == "training":
                    written.append(finetune_screenshot(page, out / "finetune.png"))
        finally:
            browser.close()
    return written


def finetune_screenshot(page, target: Path) -> Path:
    """The fine-tune flow, from its heading down, as one viewport."""
    page.get_by_text(FINETUNE_HEADING, exact=True).first.evaluate("heading => heading.scrollIntoView({block: 'start'})")
    settle(page)
    page.screenshot(path=str(target))
    print(f"finetune: {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="data folder the app reads")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNGs go")
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), help="only these pages (default: all)")
    args = parser.parse_args(argv)
    take_screenshots(args.data_dir, args.out, pages=args.pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
