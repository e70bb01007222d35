"""Fine-tune to my sound: a user's recordings become dataset items through the factory's code, an uploaded
soundfont is checked before it is kept, the fine-tune runs its stages with time limits and judges its result."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from model import finetune
from model.checkpoints import DEFAULT_CHECKPOINT, load_checkpoint
from model.data import load_items
from model.finetune import FineTuneOptions, fine_tune, finetune_status, verdict
from model.runs import run_dir, stored_config
from pipeline import soundfont_upload
from pipeline.audio import load_audio
from pipeline.background import process_id, this_process
from pipeline.catalog import connect
from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.features import spectrogram
from pipeline.labels import note_labels
from pipeline.midi_io import read_midi
from pipeline.recordings import import_recordings
from pipeline.render import default_soundfont, render
from tests.conftest import write_piece


def takes(folder: Path, pitches: list[int]) -> Path:
    """Recordings with the MIDI they were played from: each piece through FluidSynth into a WAV beside its .mid."""
    for index, pitch in enumerate(pitches):
        midi = write_piece(folder / f"take{index}.mid", program=(11, 56, 65, 73)[index % 4], start_pitch=pitch)
        score = read_midi(midi)
        audio = render(list(score.parts), score.duration_s + 0.3, soundfont=default_soundfont())
        soundfile.write(folder / f"take{index}.wav", audio, SAMPLE_RATE)
    return folder


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finetune")
    for index in range(12):  # two pieces fall in validation, one in test
        write_piece(root / "midi" / f"p{index}.mid", program=index * 5, start_pitch=45 + 2 * index, n_notes=10)
    takes(root / "mine", [50, 53, 57, 60])
    takes(root / "judge", [48, 62])
    return root


def test_recordings_become_items_through_the_factorys_features_and_labels(material, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for path in (material / "mine").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    write_piece(folder / "broken.mid")
    (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    summary = import_recordings(folder, name="mine", data_dir=tmp_path / "data")
    assert (summary.total, summary.done, summary.failed) == (5, 4, 1)
    assert "broken.wav" in next(iter(summary.failures))
    items = {item.item_id: item for split in ("train", "validation", "test")
             for item in load_items(tmp_path / "data", ["mine"], split)}
    assert len(items) == 4
    for item in items.values():
        take = next(path for path in folder.glob("take*.wav")
                    if np.array_equal(spectrogram(load_audio(path)).astype(np.float16), item.features))
        labels = note_labels(read_midi(take.with_suffix(".mid")).pitched_notes, item.features.shape[0])
        np.testing.assert_array_equal(item.rolls["onset"], labels.onset)
        np.testing.assert_array_equal(item.rolls["frame"], labels.frame)
    again = import_recordings(folder, name="mine", data_dir=tmp_path / "data")  # the failed one is tried again
    assert (again.total, again.done, again.failed) == (5, 4, 1)


def test_an_import_is_recorded_under_its_process_identity(material, tmp_path):
    """Host, pid and start time, as every job is: without the start time the import reads 'interrupted' while it
    runs, and a generation started meanwhile marks it so."""
    import_recordings(material / "judge", name="judged", data_dir=tmp_path)
    with connect(tmp_path, read_only=True) as connection:
        host, pid, started = connection.execute(
            "SELECT host, pid, process_started FROM jobs WHERE dataset = 'judged' AND kind = 'import'").fetchone()
    assert process_id(host, pid, started) == this_process()


def test_an_import_holds_the_datasets_lock_as_a_generation_does(material, tmp_path):
    """While another job holds the dataset, an import is refused naming it and writes nothing; an import that ran
    leaves the lock file saying which job it was and how it ended."""
    from pipeline import dataset_lock

    folder = tmp_path / "datasets" / "judged"
    with dataset_lock.acquire(folder, "judged") as held:
        held.record(job_id="someoneelse", pid=1, host="here", started=0.0)
        with pytest.raises(Mp3MidiError, match="dataset 'judged' already has a job running: job someoneelse"):
            import_recordings(material / "judge", name="judged", data_dir=tmp_path)
    assert not (tmp_path / "catalog.duckdb").exists() or not _import_jobs(tmp_path)
    import_recordings(material / "judge", name="judged", data_dir=tmp_path)
    (job_id,) = _import_jobs(tmp_path)
    assert dataset_lock.last_holder(folder) | {"pid": None, "host": None, "started": None} == {
        "job_id": job_id, "pid": None, "host": None, "started": None, "status": "done"}


def _import_jobs(data_dir: Path) -> list[str]:
    with connect(data_dir, read_only=True) as connection:
        return [job for (job,) in connection.execute("SELECT job_id FROM jobs WHERE kind = 'import'").fetchall()]


def test_a_folder_without_pairs_is_refused(tmp_path):
    (tmp_path / "lonely.wav").write_bytes(b"")
    with pytest.raises(Mp3MidiError, match="no audio file with a reference .mid of the same name beside it"):
        import_recordings(tmp_path, name="none", data_dir=tmp_path / "data")


@pytest.mark.parametrize(("filename", "content", "message"), [
    ("piano.sf2", b"", "is empty"),
    ("piano.txt", b"RIFF\0\0\0\0sfbk", "is not a soundfont: choose an .sf2 or .sf3 file"),
    ("piano.sf2", b"\x00" * 64, r"not an SF2/SF3 file \(no RIFF sfbk header\)"),
    ("piano.sf3", b"RIFF\x10\0\0\0sfbkLIST" + b"\x00" * 40, "FluidSynth cannot load 'piano.sf3'"),
    ("piano.sf2", b"RIFF" + b"\x00" * 2000, "is 0 MB; soundfonts up to 0 MB are accepted"),
])
def test_an_uploaded_soundfont_is_refused_and_nothing_is_kept(tmp_path, monkeypatch, filename, content, message):
    if len(content) > 1000:
        monkeypatch.setattr(soundfont_upload, "MAX_SOUNDFONT_BYTES", 1000)
    with pytest.raises(Mp3MidiError, match=message):
        soundfont_upload.add_soundfont(tmp_path, filename, content)
    assert not (tmp_path / "soundfonts").exists() or not any((tmp_path / "soundfonts").iterdir())


def test_an_uploaded_soundfont_that_fluidsynth_loads_is_kept_once(tmp_path):
    content = Path(default_soundfont()).read_bytes()
    kept = soundfont_upload.add_soundfont(tmp_path, "My Piano!.sf2", content)
    assert kept.parent == tmp_path.resolve() / "soundfonts" and kept.read_bytes() == content
    assert kept.name.startswith("My-Piano-") and kept.suffix == ".sf2"
    assert soundfont_upload.add_soundfont(tmp_path, "My Piano!.sf2", content) == kept
    assert [path.name for path in kept.parent.iterdir()] == [kept.name]


def _report(mine_before, mine_after, reference_before, reference_after, *, recordings=None) -> dict:
    def scores(before, after):
        return {"items": 3, "before": {"onset_f1": before}, "after": {"onset_f1": after}}

    sets = {"your sound (held-out pieces)": scores(mine_before, mine_after),
            "default sound (held-out pieces)": scores(reference_before, reference_after)}
    if recordings:
        sets["your recordings"] = scores(*recordings)
    return {"sets": sets}


@pytest.mark.parametrize(("report", "keep", "reason"), [
    (_report(0.50, 0.60, 0.80, 0.79), True, r"helps your material \(onset F1 \+0.100\)"),
    (_report(0.50, 0.505, 0.80, 0.80), False, "does not help your material enough"),
    (_report(0.50, 0.70, 0.80, 0.70), False, r"costs the default sound 0.100 onset F1"),
    (_report(0.50, 0.70, 0.80, 0.80, recordings=(0.40, 0.38)), False, r"does not help .* \(onset F1 -0.020"),
    (_report(0.50, 0.49, 0.80, 0.80, recordings=(0.40, 0.45)), True, r"helps your material \(onset F1 \+0.050\)"),
])
def test_the_verdict_keeps_what_helps_the_users_material_without_wrecking_the_rest(report, keep, reason):
    judged = verdict(report)
    assert judged["keep"] is keep
    assert re.search(reason, judged["reason"]), judged["reason"]


def test_a_stage_past_its_time_limit_is_stopped_in_good_order(tmp_path):
    options = FineTuneOptions(name="slow", soundfont="default", stage_limit_s=0.2, data_dir=str(tmp_path))
    with pytest.raises(finetune._StageTimeout, match=r"stage 'sound' ran past its time limit of 0 s"):
        with finetune._stage(options, "sound"):
            threading.Event().wait()  # a stage that would never end: only the limit's interrupt ends it


def test_fine_tune_from_soundfont_and_recordings_to_a_judged_model(material):
    data = material / "data"
    options = FineTuneOptions(name="tuned", soundfont=default_soundfont(), source=str(material / "midi"), pieces=12,
                              clip_seconds=3.0, steps=2, batch_size=2, recordings=str(material / "mine"),
                              judge=str(material / "judge"), threads=1, data_dir=str(data))
    report = fine_tune(options)
    assert list(report["sets"]) == ["your sound (held-out pieces)", "default sound (held-out pieces)",
                                    "your recordings"]
    assert [scores["items"] for scores in report["sets"].values()] == [1, 1, 2]
    assert report["verdict"] == verdict(report) and report["before"] == str(DEFAULT_CHECKPOINT)
    config = stored_config(data, "tuned")
    assert config["init_from"] == "model/checkpoints/default.pt" and config["datasets"] == ["tuned", "tuned-recordings"]
    best = load_checkpoint(run_dir(data, "tuned") / "best.pt")["metrics"]
    assert best["calibrated_on"] == ["tuned-recordings"] and best["calibration_items"] == 4
    assert {key: best[key] for key in report["calibrated"]} == report["calibrated"]
    state = finetune_status(data, "tuned")
    assert state.status == "done" and state.stage == "compare" and state.report == json.loads(json.dumps(report))


def test_the_launched_fine_tune_gets_absolute_paths(tmp_path, monkeypatch):
    """The child starts in the project folder: a form's relative folders must mean there what they meant here."""
    monkeypatch.chdir(tmp_path)
    options = finetune.resolved_options(FineTuneOptions(name="x", soundfont="fonts/mine.sf2", source="midi",
                                                        recordings="~/takes", judge=None, data_dir="data"))
    assert (options.soundfont, options.source) == (str(tmp_path / "fonts/mine.sf2"), str(tmp_path / "midi"))
    assert options.recordings == str(Path("~/takes").expanduser()) and options.judge is None
    assert options.data_dir == str(tmp_path / "data")
    kept = finetune.resolved_options(FineTuneOptions(name="x", soundfont="default", init_from="default"))
    assert (kept.soundfont, kept.source, kept.init_from) == ("default", "builtin", "default")
