import numpy as np
import pytest

from pipeline.constants import FRAMES_PER_SECOND, HOP_LENGTH, N_BINS, N_KEYS, SAMPLE_RATE, pitch_to_hz
from pipeline.errors import Mp3MidiError
from pipeline.features import MARGIN_FRAMES, frame_count, spectrogram, spectrogram_stream
from pipeline.labels import note_labels, time_to_frame
from pipeline.notes import Note


@pytest.mark.parametrize("seconds", [0.05, 1.0, 2.5])
def test_spectrogram_shape_and_range(seconds):
    audio = np.random.default_rng(0).normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)
    features = spectrogram(audio)
    assert features.shape == (frame_count(audio.size), N_BINS) == (1 + audio.size // HOP_LENGTH, N_BINS)
    assert features.dtype == np.float32 and features.min() >= 0.0


@pytest.mark.parametrize("pitch", [33, 60, 96])
def test_a_sine_lights_its_own_key(pitch):
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    features = spectrogram(0.5 * np.sin(2 * np.pi * pitch_to_hz(pitch) * t).astype(np.float32))
    loudest_bin = int(np.median(features[10:-10].argmax(axis=1)))
    assert loudest_bin == (pitch - 21) * 3 + 1
    assert features[10:-10, loudest_bin].mean() == pytest.approx(1 + 20 * np.log10(0.5) / 80, abs=0.02)


@pytest.mark.parametrize(("audio", "reason"), [(np.zeros((2, 100)), "mono audio"), (np.zeros(0), "no audio samples")])
def test_spectrogram_refuses_bad_input(audio, reason):
    with pytest.raises(Mp3MidiError, match=reason):
        spectrogram(audio)


def test_labels_mark_onset_sustain_offset_velocity():
    notes = [Note(0.1, 0.5, 60, 100), Note(0.5, 0.52, 60, 30), Note(1.0, 1.2, 20, 90), Note(1.1, 9.0, 108, 64)]
    labels = note_labels(notes, 100)
    key = 60 - 21
    start, end = time_to_frame(0.1), time_to_frame(0.5)
    assert labels.onset[start, key] == 1 and labels.velocity[start, key] == 100
    assert labels.frame[start:end, key].all() and labels.offset[end, key] == 1
    assert labels.onset[end, key] == 1 and labels.frame[end, key] == 1  # a repeated note: new onset at the offset
    assert labels.velocity[end, key] == 30
    assert labels.frame[:, 0].sum() == 0  # MIDI 20 is below the piano: left out
    assert labels.frame[time_to_frame(1.1):, N_KEYS - 1].all()  # a note running past the end fills to the end
    assert labels.onset.sum() == 3 and labels.onset.shape == (100, N_KEYS)


def test_frame_times_match_the_frame_rate():
    assert time_to_frame(1.0) == round(FRAMES_PER_SECOND)


def test_long_audio_in_chunks_matches_one_pass():
    rng = np.random.default_rng(1)
    t = np.arange(40 * SAMPLE_RATE) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 110 * t * (1 + 0.2 * np.sin(t))) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    whole = spectrogram(audio, chunk_frames=10_000)
    chunked = spectrogram(audio, chunk_frames=500)
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked, whole, atol=2e-3)


@pytest.mark.parametrize(("samples", "chunk_frames", "block_sizes"), [
    (SAMPLE_RATE, 500, [4000]),  # short: one pass
    ((500 + 2 * MARGIN_FRAMES) * HOP_LENGTH - 1, 500, [100_000]),  # one sample short of being chunked
    ((500 + 2 * MARGIN_FRAMES) * HOP_LENGTH, 500, [100_000]),  # the first length that is chunked
    (30 * SAMPLE_RATE, 500, [0, 77, 160_000, 0, 5]),  # chunked; empty blocks and blocks shorter than a hop
    (30 * SAMPLE_RATE, 200, [30 * SAMPLE_RATE]),  # chunks shorter than the margin, all in one block
])
def test_spectrogram_in_a_stream_equals_one_call(samples, chunk_frames, block_sizes):
    audio = np.random.default_rng(2).normal(0, 0.1, samples).astype(np.float32)
    blocks, start = [], 0
    while start < samples:
        size = block_sizes[len(blocks) % len(block_sizes)]
        blocks.append(audio[start:start + size])
        start += size
    pieces = list(spectrogram_stream(iter(blocks), chunk_frames=chunk_frames))
    assert all(piece.dtype == np.float32 and piece.shape[1] == N_BINS for piece in pieces)
    assert np.concatenate(pieces).tobytes() == spectrogram(audio, chunk_frames=chunk_frames).tobytes()


@pytest.mark.parametrize(("blocks", "reason"), [([np.zeros((2, 100))], "mono audio"), ([], "no audio samples"),
                                                ([np.zeros(0), np.zeros(0)], "no audio samples")])
def test_spectrogram_stream_refuses_bad_input(blocks, reason):
    with pytest.raises(Mp3MidiError, match=reason):
        list(spectrogram_stream(blocks))


def test_the_transform_runs_on_one_blas_thread_and_gives_the_others_back(monkeypatch):
    from threadpoolctl import threadpool_info

    from pipeline import cqt

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    seen, resample = [], cqt.soxr.resample

    def watched(*args, **kwargs):  # runs between the octaves' matrix products
        seen.append(blas_threads())
        return resample(*args, **kwargs)

    before = blas_threads()
    monkeypatch.setattr(cqt.soxr, "resample", watched)
    cqt.cqt_magnitude(np.random.default_rng(0).normal(size=SAMPLE_RATE).astype(np.float32))
    assert seen and all(threads == [1] * len(before) for threads in seen)
    assert blas_threads() == before


@pytest.mark.parametrize("pitch", [22, 40, 57, 69, 81, 93, 105])  # one key in each octave of the transform
def test_a_sine_at_a_bins_centre_reads_its_amplitude(pitch):
    from pipeline.constants import BINS_PER_SEMITONE, LOWEST_PITCH
    from pipeline.cqt import cqt_magnitude

    seconds = 4.0
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    magnitudes = cqt_magnitude((0.5 * np.sin(2 * np.pi * pitch_to_hz(pitch) * t)).astype(np.float32))
    centre_bin = (pitch - LOWEST_PITCH) * BINS_PER_SEMITONE + BINS_PER_SEMITONE // 2
    middle = magnitudes[len(magnitudes) // 4: 3 * len(magnitudes) // 4]  # away from the edges
    np.testing.assert_allclose(middle[:, centre_bin], 0.5, rtol=0.005)
