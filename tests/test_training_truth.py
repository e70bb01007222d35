"""Training tells the truth: validation is never training data, it is a seeded sample over every dataset of a run,
the scores a run shows are those of its checkpoint at its thresholds, a schedule is never bent by a resume; and
``--init-from`` starts a run from a checkpoint's weights or refuses, touching nothing."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model import runs
from model.checkpoints import DEFAULT_CHECKPOINT, checkpoint_thresholds, load_checkpoint, save_checkpoint
from model.data import load_items, split_rows
from model.evaluate import evaluate_dataset
from model.network import OnsetLoss, Transcriber, config_for
from model.thresholds import calibrate
from model.train import TrainOptions, recorded_path, train
from pipeline.catalog import connect
from pipeline.errors import Mp3MidiError
from pipeline.jobs import GenerateOptions, generate
from pipeline.sigterm import stop_on_sigterm
from tests.conftest import write_piece

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(batch_size=2, crop_frames=120, eval_items=8, augment=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """'tiny' and 'tiny2': the same 12 pieces (two of them in validation) rendered with two seeds; 'noval': three
    pieces, none of which falls in validation."""
    root = tmp_path_factory.mktemp("truth")
    for index in range(12):
        write_piece(root / "midi" / f"p{index}.mid", program=index * 5, start_pitch=45 + 2 * index, n_notes=10)
    for index in (0, 1, 11):  # train, train, test
        write_piece(root / "few" / f"p{index}.mid", program=index * 5, start_pitch=45 + 2 * index, n_notes=10)
    for name, source, seed in (("tiny", "midi", 0), ("tiny2", "midi", 1), ("noval", "few", 0)):
        generate(GenerateOptions(name=name, source=str(root / source), data_dir=str(root / "data"), workers=2,
                                 clip_seconds=3.0, seed=seed))
    return root / "data"


def run_rows(data: Path, run: str) -> int:
    with connect(data, read_only=True) as connection:
        return connection.execute("SELECT count(*) FROM runs WHERE name = ?", [run]).fetchone()[0]


def test_a_run_without_validation_pieces_is_refused_and_nothing_is_written(data):
    with pytest.raises(Mp3MidiError, match=r"the validation split of noval holds no pieces \(3 pieces in all; .*"
                                           r"generate at least 44 pieces"):
        train(TrainOptions(datasets=["noval"], run="noval-run", steps=2, data_dir=str(data), **SMALL))
    assert not runs.run_dir(data, "noval-run").exists() and run_rows(data, "noval-run") == 0
    train(TrainOptions(datasets=["noval", "tiny"], run="mixed", steps=1, data_dir=str(data), **SMALL))  # tiny's do


@pytest.mark.parametrize("sample", [1, 2, 3])
def test_validation_items_are_a_seeded_sample_over_all_datasets(data, sample):
    rows = split_rows(data, ["tiny", "tiny2"], "validation")
    assert [row[1] for row in rows] == ["tiny", "tiny", "tiny2", "tiny2"]  # catalog order: the first rows are tiny's

    def pick(seed: int) -> list[tuple[str, str]]:
        return [(item.dataset, item.item_id) for item in load_items(data, ["tiny", "tiny2"], "validation",
                                                                    sample=sample, seed=seed)]

    picks = {seed: pick(seed) for seed in range(8)}
    assert all(len(items) == sample and {item for _, item in items} <= {row[0] for row in rows}
               for items in picks.values())
    assert picks[3] == pick(3)
    assert {dataset for items in picks.values() for dataset, _ in items} == {"tiny", "tiny2"}
    assert len({tuple(items) for items in picks.values()}) > 1


def test_the_scores_a_run_shows_are_its_checkpoint_at_its_thresholds(data):
    train(TrainOptions(datasets=["tiny"], run="honest", steps=8, eval_every=8, lr=3e-3, data_dir=str(data), **SMALL))
    best = runs.run_dir(data, "honest") / "best.pt"
    payload = load_checkpoint(best)
    shown = runs.run_metrics(data, ["honest"]).set_index("step").loc[8]
    thresholds = checkpoint_thresholds(payload)
    assert thresholds == {key: payload["metrics"][key] for key in thresholds}
    again = evaluate_dataset(best, ["tiny"], split="validation", data_dir=data)["overall"]  # all 2 items: the sample
    for key in ("onset_f1", "frame_f1", "offset_f1"):
        assert shown[key] == pytest.approx(again[key], abs=1e-6) == payload["metrics"][key]
    calibrated = calibrate(best, ["tiny", "tiny2"], data_dir=data)
    rescored = evaluate_dataset(best, ["tiny", "tiny2"], split="validation", data_dir=data)["overall"]
    stored = load_checkpoint(best)["metrics"]
    assert calibrated["onset_f1"] == pytest.approx(rescored["onset_f1"], abs=1e-6) == stored["onset_f1"]
    assert stored["calibrated_on"] == ["tiny", "tiny2"] and stored["calibration_items"] == 4


def test_a_resume_never_bends_the_learning_rate_schedule(data, monkeypatch):
    options = dict(datasets=["tiny"], run="resumable", eval_every=5, data_dir=str(data), **SMALL)
    record = runs.record_metrics

    def interrupted(*args, **kwargs):  # SIGTERM (what Stop sends) right after the first evaluation
        record(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(runs, "record_metrics", interrupted)
    previous = signal.getsignal(signal.SIGTERM)
    stop_on_sigterm()  # as the command line does
    try:
        train(TrainOptions(steps=10, **options))
    finally:
        signal.signal(signal.SIGTERM, previous)
    monkeypatch.setattr(runs, "record_metrics", record)
    assert load_checkpoint(runs.run_dir(data, "resumable") / "latest.pt")["step"] == 5
    assert runs.list_runs(data).set_index("name").loc["resumable", "status"] == "cancelled"
    for steps in (20, 7):
        with pytest.raises(Mp3MidiError, match=rf"run 'resumable' was planned for 10 steps.*--steps {steps} would "
                                               r"bend that schedule.*--init-from .*latest\.pt --run NEW-NAME"):
            train(TrainOptions(steps=steps, **options))
    assert load_checkpoint(runs.run_dir(data, "resumable") / "latest.pt")["step"] == 5  # untouched
    train(TrainOptions(steps=10, resume=True, **options))
    assert load_checkpoint(runs.run_dir(data, "resumable") / "latest.pt")["step"] == 10
    assert list(runs.run_metrics(data, ["resumable"])["step"]) == [5, 10]
    with pytest.raises(Mp3MidiError, match="exists with other settings"):
        train(TrainOptions(steps=10, **{**options, "batch_size": 3}))


def test_init_from_starts_from_the_checkpoints_weights_and_records_it(data):
    train(TrainOptions(datasets=["tiny"], run="tuned", steps=2, eval_every=2, size=None, init_from="default",
                       data_dir=str(data), **SMALL))
    source = load_checkpoint(DEFAULT_CHECKPOINT)
    config = runs.stored_config(data, "tuned")
    assert config["init_from"] == "model/checkpoints/default.pt" and config["size"] is None  # no machine path
    assert len(config["init_from_sha256"]) == 64 and config["init_from_step"] == source["step"]
    metrics = runs.run_metrics(data, ["tuned"]).set_index("step")
    assert list(metrics.index) == [0, 2]
    before = evaluate_dataset(None, ["tiny"], split="validation", data_dir=data)["overall"]  # the default as it is
    assert metrics.loc[0, "onset_f1"] == pytest.approx(before["onset_f1"], abs=1e-6)
    tuned = load_checkpoint(runs.run_dir(data, "tuned") / "latest.pt")
    assert tuned["model_config"] == source["model_config"] and tuned["train_config"]["init_from"] == config["init_from"]
    moved = [name for name, tensor in source["state_dict"].items()
             if tensor.is_floating_point() and not torch.equal(tensor, tuned["state_dict"][name])]
    assert moved and len(moved) < len(source["state_dict"])  # two small steps from there, not a fresh network
    untouched = [name for name in source["state_dict"] if name.endswith("num_batches_tracked")]
    assert all(tuned["state_dict"][name] > source["state_dict"][name] for name in untouched)


def _other_features(path: Path) -> None:
    save_checkpoint(path, model=Transcriber(config_for("small")), step=1, metrics={})
    payload = torch.load(path, weights_only=True)
    payload["feature_settings"] = {**payload["feature_settings"], "hop_length": 512}
    torch.save(payload, path)


def _weights_that_do_not_fit(path: Path) -> None:
    save_checkpoint(path, model=Transcriber(config_for("small")), step=1, metrics={})
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["channels"] = 16
    torch.save(payload, path)


@pytest.mark.parametrize(("make", "extra", "message"), [
    (None, [], r"no checkpoint at '.*missing\.pt'"),
    (lambda path: path.write_bytes(b"\x00not a checkpoint" * 50), [], "damaged or not a checkpoint"),
    (_other_features, [], "was trained on other features"),
    (_weights_that_do_not_fit, [], "its weights do not fit the network it describes"),
    (lambda path: save_checkpoint(path, model=Transcriber(config_for("small")), step=1, metrics={}),
     ["--size", "base"], r"holds another network than size 'base'"),
])
def test_init_from_a_bad_checkpoint_is_one_line_and_touches_nothing(data, tmp_path, make, extra, message):
    path = tmp_path / "missing.pt"
    if make is not None:
        make(path)
    before = path.read_bytes() if path.exists() else None
    result = subprocess.run([sys.executable, "-m", "model", "train", "--dataset", "tiny", "--run", "from-bad",
                             "--steps", "2", "--init-from", str(path), "--data-dir", str(data), *extra],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --init-from" if "fit" in message
                                                                        or "size" in message else "error: ")
    assert re.search(message, result.stderr), result.stderr
    assert not runs.run_dir(data, "from-bad").exists() and run_rows(data, "from-bad") == 0
    assert (path.read_bytes() if path.exists() else None) == before


def test_a_run_records_its_onset_recipe_and_is_not_continued_with_another(data):
    recipe = OnsetLoss(pos_weight=2.0, tail=0.5, inside_weight=2.0)
    options = dict(datasets=["tiny"], run="recipe", steps=4, eval_every=2, data_dir=str(data), **SMALL)
    train(TrainOptions(onset_loss=recipe, **options))
    expected = {"pos_weight": 2.0, "tail": 0.5, "inside_weight": 2.0}
    assert runs.stored_config(data, "recipe")["onset_loss"] == expected
    assert load_checkpoint(runs.run_dir(data, "recipe") / "best.pt")["train_config"]["onset_loss"] == expected
    with pytest.raises(Mp3MidiError, match="run 'recipe' exists with other settings"):
        train(TrainOptions(onset_loss=OnsetLoss(), **options))
    train(TrainOptions(datasets=["tiny"], run="plain", steps=2, eval_every=2, data_dir=str(data), **SMALL))
    assert "onset_loss" not in runs.stored_config(data, "plain")  # the first recipe: runs from before it still resume


@pytest.mark.parametrize(("inside", "expected"), [
    (True, "data/runs/a/best.pt"),  # inside the project: relative, so a committed checkpoint names no machine path
    (False, None),  # elsewhere: the full path, the only way to say which file
])
def test_the_starting_checkpoint_is_named_relative_to_the_project_when_inside_it(tmp_path, inside, expected):
    path = (REPO / "data" / "runs" / "a" / "best.pt") if inside else (tmp_path / "best.pt")
    assert recorded_path(path) == (expected or str(path))
    assert TrainOptions(datasets=["x"], run="r", init_from=str(path)).identity()["init_from"] == recorded_path(path)


def test_a_run_that_recorded_the_full_path_of_its_start_still_continues(data):
    options = TrainOptions(datasets=["tiny"], run="older", steps=4, eval_every=2, size=None, init_from="default",
                           data_dir=str(data), **SMALL)
    train(options)
    config = runs.stored_config(data, "older")
    with connect(data) as connection:  # as runs from before recorded_path() stored it
        connection.execute("UPDATE runs SET config = ? WHERE name = 'older'",
                           [json.dumps({**config, "init_from": str(DEFAULT_CHECKPOINT)})])
    train(options)  # a plain re-run of a finished run: checked, then nothing left to do
    assert load_checkpoint(runs.run_dir(data, "older") / "latest.pt")["step"] == 4
