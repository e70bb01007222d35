"""Decoding damaged MP3s in several threads at once (as the dashboard's sessions do) keeps the decoder's notes
off stderr without silencing anything else the process writes there meanwhile (pipeline.audio)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipeline.audio import encode_mp3
from pipeline.constants import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
WRITER_LINES = 300

# Runs in its own process, whose stderr the test reads: four threads decode a damaged MP3 and a good one, over
# and over, while a fifth writes numbered lines to stderr through Python and straight to file descriptor 2, and a
# sixth starts child processes that write to the stderr they inherit. Prints what the decodes gave.
SCRIPT = r"""
import ctypes, json, os, subprocess, sys, threading, time
from pipeline.audio import load_audio
from pipeline.errors import Mp3MidiError
good, damaged, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])

def decode(path):
    try:
        return ["samples", load_audio(path).size, float(load_audio(path).sum())]
    except Mp3MidiError as exc:
        return ["error", str(exc)]

alone = {path: decode(path) for path in (good, damaged)}
results, running = [], True

def decoder():
    while running:
        results.append((good, decode(good)))
        results.append((damaged, decode(damaged)))

def writer():
    for number in range(lines):
        if number % 2:
            print(f"writer line {number}", file=sys.stderr, flush=True)
        else:
            os.write(2, f"writer line {number}\n".encode())
        time.sleep(0.002)

def children():
    for number in range(5):
        subprocess.run([sys.executable, "-c", f"import sys; sys.stderr.write('child line {number}\\n')"], check=True)

threads = [threading.Thread(target=decoder) for _ in range(4)]
helpers = [threading.Thread(target=writer), threading.Thread(target=children)]
for thread in threads + helpers:
    thread.start()
for thread in helpers:
    thread.join()
running = False
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fputs.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
libc.fputs(b"C stdio line after the decodes\n", ctypes.c_void_p.in_dll(libc, "stderr"))
print(json.dumps({"alone": alone, "threads": results}))
"""


def _good_and_damaged(folder: Path) -> tuple[Path, Path]:
    """A 3 s sine as an MP3, and the same with 4 kB of its frames zeroed (mpg123 prints notes as it resyncs)."""
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    good = folder / "good.mp3"
    encode_mp3((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), good)
    data = good.read_bytes()
    damaged = folder / "damaged.mp3"
    damaged.write_bytes(data[:4000] + bytes(4000) + data[8000:])
    return good, damaged


def test_concurrent_decodes_keep_the_notes_off_stderr_and_nothing_else(tmp_path):
    good, damaged = _good_and_damaged(tmp_path)

    result = subprocess.run([sys.executable, "-c", SCRIPT, str(good), str(damaged), str(WRITER_LINES)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # found anywhere, not per line: print() writes a line's text and its newline apart, so another process's line
    # may land between them
    written = [int(n) for n in re.findall(r"writer line (\d+)", result.stderr)]
    assert written == list(range(WRITER_LINES))  # none lost, in order
    assert sorted(int(n) for n in re.findall(r"child line (\d+)", result.stderr)) == list(range(5))
    assert "C stdio line after the decodes" in result.stderr  # the C library's stderr is given back
    assert not [line for line in result.stderr.splitlines() if "MPEG" in line or "libmpg123" in line or line.startswith("Note:")]
    decoded = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(decoded["threads"]) >= 8
    for path, outcome in decoded["threads"]:  # each thread's decode is what one decode alone gives
        assert outcome == decoded["alone"][path]
    assert decoded["alone"][str(good)][0] == "samples"


def test_the_damaged_file_is_noisy_when_decoded_without_the_silence(tmp_path):
    """The test above can fail: libsndfile on its own prints mpg123's notes for this file."""
    _, damaged = _good_and_damaged(tmp_path)
    script = ("import soundfile, sys\ntry:\n    soundfile.read(sys.argv[1])\nexcept Exception:\n    pass\n")
    result = subprocess.run([sys.executable, "-c", script, str(damaged)], capture_output=True, text=True)
    assert "Illegal Audio-MPEG-Header" in result.stderr
