"""The dashboard in a real browser: served by ``streamlit run``, driven by Playwright through headless Chromium.

Uploads an MP3 rendered here to the Transcribe page, downloads the .mid and checks its notes against what was
played, downloads the .musicxml and reads it back with music21; then uploads a text file named .mp3 and checks
the page says so and keeps working. Chromium is Debian's package (make test installs it); without it the test is
skipped locally and fails on CI (CI=true).
"""

from __future__ import annotations

import re
from pathlib import Path

import pretty_midi
import pytest
from playwright.sync_api import expect

from dashboard.headless_browser import VIEWPORT, launch_chromium, settle, upload_file
from dashboard.serve import streamlit_server
from pipeline.audio import encode_mp3
from pipeline.notes import Note, Part
from pipeline.render import default_soundfont, render

PLAYED = tuple(Note(0.3 + i * 0.45, 0.65 + i * 0.45, pitch, 95) for i, pitch in enumerate((52, 57, 62, 67, 72)))
CLIP_S = 2.8
ONSET_TOLERANCE_S = 0.07
RESULT_TIMEOUT_MS = 60_000
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def app_url(tmp_path: Path):
    with streamlit_server(tmp_path / "data") as url:  # an empty data folder: the page must work on it
        yield url


@pytest.fixture
def page(chromium: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium)
        try:
            yield browser.new_page(viewport=VIEWPORT, accept_downloads=True)
        finally:
            browser.close()


def test_upload_transcribe_download_and_a_bad_upload(app_url, page, tmp_path):
    recording = tmp_path / "five notes.mp3"
    encode_mp3(render([Part(0, False, PLAYED)], CLIP_S, soundfont=default_soundfont()), recording)
    not_audio = tmp_path / "words.mp3"
    not_audio.write_text("this is a text file named like an MP3\n" * 20)

    page.goto(f"{app_url}/transcribe")
    settle(page)
    page.get_by_text("Upload a recording to transcribe it").wait_for()
    upload_file(page, recording)
    download_mid = page.get_by_role("button", name="Download .mid")
    download_mid.wait_for(timeout=RESULT_TIMEOUT_MS)
    settle(page)
    with page.expect_download() as download:
        download_mid.click()
    assert download.value.suggested_filename == "five notes.mid"
    saved = tmp_path / "downloaded.mid"
    download.value.save_as(saved)
    notes = pretty_midi.PrettyMIDI(str(saved)).instruments[0].notes
    for played in PLAYED:  # every note played comes back on its pitch and in time
        assert any(n.pitch == played.pitch and abs(n.start - played.start_s) <= ONSET_TOLERANCE_S for n in notes), \
            (played, [(n.pitch, round(n.start, 3)) for n in notes])
    onsets = [p.start_s for p in PLAYED]  # and nothing starts where nothing was played
    assert all(min(abs(n.start - onset) for onset in onsets) <= ONSET_TOLERANCE_S for n in notes)

    settle(page)  # a download does not rerun the page; should one ever, the next click waits for it
    with page.expect_download(timeout=RESULT_TIMEOUT_MS) as sheet:  # made when clicked (music21 loads then)
        page.get_by_role("button", name="Download .musicxml").click()
    assert sheet.value.suggested_filename == "five notes.musicxml"
    sheet.value.save_as(tmp_path / "downloaded.musicxml")
    from music21 import converter

    score = converter.parse(str(tmp_path / "downloaded.musicxml"))
    struck = sorted((float(n.getOffsetInHierarchy(part)), p.midi) for part in score.parts
                    for n in part.flatten().notes if n.tie is None or n.tie.type == "start" for p in n.pitches)
    assert sorted(p for _, p in struck) == sorted(n.pitch for n in notes)  # every note of the MIDI, once
    melody = iter(p for _, p in struck)
    assert all(played.pitch in melody for played in PLAYED)  # the played notes in the order they were played

    upload_file(page, not_audio)
    page.get_by_text("'words.mp3' is not audio that can be decoded").wait_for(timeout=RESULT_TIMEOUT_MS)
    # The message shows while the run is still going; the last result's elements go when it ends.
    expect(page.get_by_role("button", name="Download .mid")).to_have_count(0, timeout=RESULT_TIMEOUT_MS)
    assert page.get_by_text("Traceback").count() == 0

    upload_file(page, recording)  # and the app goes on working
    page.get_by_role("button", name="Download .mid").wait_for(timeout=RESULT_TIMEOUT_MS)
    expect(page.get_by_text("is not audio")).to_have_count(0, timeout=RESULT_TIMEOUT_MS)


def test_generate_from_the_page_and_watch_it_finish_without_reloading(app_url, page, good_folder):
    page.goto(f"{app_url}/generate")
    settle(page)
    page.get_by_text("No dataset yet").wait_for()
    page.get_by_role("textbox", name="Dataset name").fill("from-browser")
    page.get_by_text("A folder of MIDI files").click()
    page.get_by_role("textbox", name="MIDI folder (searched recursively)").fill(str(good_folder))
    page.get_by_role("spinbutton", name="Clip length, seconds (0: whole pieces)").fill("2")
    page.get_by_role("spinbutton", name="Worker processes").fill("1")
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Started generating").wait_for(timeout=RESULT_TIMEOUT_MS)
    # The progress panel polls the catalog by itself: the job's end shows up with no reload or click.
    page.get_by_text(re.compile(r"Job [0-9a-f]+: done")).wait_for(timeout=RESULT_TIMEOUT_MS)
    # the metrics below the job's line arrive in the same rerun, a moment later: wait for them, do not count once
    expect(page.get_by_text("3 / 3").first).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    assert page.get_by_text("Traceback").count() == 0


@pytest.mark.parametrize(("toolbar_mode", "deploy_buttons"), [(None, 0), ("developer", 1)])
def test_no_deploy_button_with_the_project_settings(chromium, tmp_path, monkeypatch, toolbar_mode, deploy_buttons):
    """.streamlit/config.toml's toolbar mode hides "Deploy" (the app is not a Streamlit Cloud app); Streamlit's
    developer mode, set over it, shows it, so the check can see one."""
    from playwright.sync_api import sync_playwright

    if toolbar_mode is not None:
        monkeypatch.setenv("STREAMLIT_CLIENT_TOOLBAR_MODE", toolbar_mode)
    with streamlit_server(tmp_path / "data") as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            settle(page)
            expect(page.get_by_test_id("stToolbar")).to_have_count(1)
            expect(page.get_by_test_id("stAppDeployButton")).to_have_count(deploy_buttons)
            expect(page.get_by_role("button", name="Deploy")).to_have_count(deploy_buttons)
        finally:
            browser.close()
