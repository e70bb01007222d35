"""What the dashboard exposes: served on localhost unless the user says otherwise, and one upload limit that the
page states and the server enforces (.streamlit/config.toml, dashboard/upload.py)."""

from __future__ import annotations

import functools
import http.client
import json
import shlex
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile

from dashboard.headless_browser import VIEWPORT, launch_chromium, settle, upload_file
from dashboard.serve import streamlit_server
from dashboard.upload import BYTES_PER_MB, MAX_UPLOAD_MB, upload_help
from pipeline.constants import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(240)

# Streamlit's own reading of its options, as `streamlit run` does from the repository root.
CONFIG_PROBE = """
import json
from streamlit import config
config.get_config_options(force_reparse=True)
print(json.dumps({name: config.get_option(name) for name in ("server.address", "server.maxUploadSize")}))
"""


def _configured() -> dict:
    result = subprocess.run([sys.executable, "-c", CONFIG_PROBE], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_config_serves_on_localhost_with_the_pages_upload_limit():
    assert _configured() == {"server.address": "127.0.0.1", "server.maxUploadSize": MAX_UPLOAD_MB}
    assert f"up to {MAX_UPLOAD_MB} MB" in upload_help()  # what the Transcribe page states


@pytest.mark.parametrize("page", ["app_pages/transcribe.py", "app_pages/training.py"])
def test_every_uploader_takes_and_states_the_servers_limit(tmp_path, monkeypatch, page):
    from tests.apptest import open_page

    uploaders = open_page(tmp_path, monkeypatch, page).file_uploader
    assert len(uploaders) >= 1
    assert [uploader.proto.max_upload_size_mb for uploader in uploaders] == [MAX_UPLOAD_MB] * len(uploaders)
    stated = [f"up to {MAX_UPLOAD_MB} MB" in f"{uploader.label} {uploader.help}" for uploader in uploaders]
    assert stated[0]  # the page's main upload says how big it may be (a reference MIDI is a small extra)


@pytest.mark.parametrize(("host", "port"), [("0.0.0.0", "8600"), ("192.168.1.5", "8501")])
def test_make_run_passes_its_host_and_port(host, port):
    dry_run = subprocess.run(["make", "-n", "run", f"HOST={host}", f"PORT={port}"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.replace("\\\n", " ")
    command = shlex.split(next(line for line in dry_run.splitlines() if "streamlit run" in line))
    assert command[command.index("--server.address") + 1] == host
    assert command[command.index("--server.port") + 1] == port


def _listening(port: int) -> set[str]:
    """The addresses a TCP socket listens on at ``port``."""
    return {c.laddr.ip for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _can_bind(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def test_the_documented_command_listens_on_localhost_only(tmp_path):
    with streamlit_server(tmp_path / "data", address=None) as url:  # as `streamlit run dashboard/app.py`
        assert _listening(int(url.rsplit(":", 1)[1])) == {"127.0.0.1"}


def test_an_address_given_on_the_command_line_wins_over_the_config(tmp_path):
    other = "127.0.0.2"  # another loopback address: the flag is obeyed, and nothing leaves the machine
    if not _can_bind(other):
        pytest.skip(f"this system cannot bind {other}")
    with streamlit_server(tmp_path / "data", address=other) as url:
        assert _listening(int(url.rsplit(":", 1)[1])) == {other}


def _put(url: str, body_bytes: int, *, cookie: str, token: str, declare_length: bool) -> int:
    """PUT a multipart file of ``body_bytes`` zeros to a Streamlit upload URL, as its page does; the status.

    ``declare_length``: with a Content-Length header (a well-behaved client); without, the body goes chunked and
    the server can only count as it reads.
    """
    boundary = "----upload-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.putrequest("PUT", parts.path)
        connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        connection.putheader("Cookie", cookie)
        connection.putheader("X-Xsrftoken", token)
        if declare_length:
            connection.putheader("Content-Length", str(len(head) + body_bytes + len(tail)))
        else:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        chunk = bytes(BYTES_PER_MB)
        body = [chunk[:min(len(chunk), body_bytes - at)] for at in range(0, body_bytes, len(chunk))]
        try:
            for piece in [head, *body, tail]:
                connection.send(piece if declare_length else b"%x\r\n%s\r\n" % (len(piece), piece))
            if not declare_length:
                connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # refused before the whole body was read: the answer waits
            pass
        return connection.getresponse().status
    finally:
        connection.close()


def test_an_upload_over_the_limit_is_refused_by_the_page_and_by_the_server(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    small = tmp_path / "tone.wav"
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    soundfile.write(small, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SAMPLE_RATE)
    limit = MAX_UPLOAD_MB * BYTES_PER_MB
    big = tmp_path / "big.wav"
    with open(big, "wb") as handle:
        handle.truncate(limit + 1)
    with streamlit_server(tmp_path / "data", address=None) as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{url}/transcribe")
            settle(page)
            page.get_by_text(f"up to {MAX_UPLOAD_MB} MB").first.wait_for()  # stated on the page
            # The browser refuses a file over the limit before sending it, saying why.
            upload_file(page, big)
            page.get_by_text("or smaller").first.wait_for()
            # The page's own upload request (its session, its XSRF token), sent again with other bodies: the
            # server takes a file within the limit and refuses one over it, whatever a browser checked first.
            with page.expect_request(lambda r: "/_stcore/upload_file/" in r.url and r.method == "PUT") as sent:
                upload_file(page, small)
            request = sent.value
            session_url = request.url.rsplit("/", 1)[0]
            token = request.headers["x-xsrftoken"]
            cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies(url))
            put = functools.partial(_put, cookie=cookie, token=token)  # while the page's session is open
            assert put(f"{session_url}/small", small.stat().st_size, declare_length=True) == 204
            assert put(f"{session_url}/declared", limit + 1, declare_length=True) == 413
            assert put(f"{session_url}/streamed", limit + 2 * BYTES_PER_MB, declare_length=False) == 413
        finally:
            browser.close()
