"""The network, checkpoints, training runs and evaluation, on a tiny dataset rendered in the test."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import runs
from model.checkpoints import load_checkpoint, model_from_checkpoint, save_checkpoint
from model.data import Augment, CropDataset, load_items
from pipeline.splits import split_of
from model.evaluate import evaluate_dataset
from model.inference import activations, folded
from model.network import (HEADS, SIZES, ModelConfig, Transcriber, _conv_of_concatenation, _joint_conv, config_for,
                           losses)
from model.train import TrainOptions, train
from pipeline.constants import N_BINS, N_KEYS
from pipeline.errors import Mp3MidiError
from pipeline.jobs import GenerateOptions, generate
from tests.conftest import write_piece

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A dataset of 12 short pieces (every split gets some), generated through the real factory."""
    root = tmp_path_factory.mktemp("tiny")
    for index in range(12):
        write_piece(root / "midi" / f"p{index}.mid", program=index * 5, start_pitch=45 + 2 * index, n_notes=10)
    generate(GenerateOptions(name="tiny", source=str(root / "midi"), data_dir=str(root / "data"), workers=2,
                             clip_seconds=3.0))
    return root / "data"


@pytest.mark.parametrize("size", list(SIZES))
def test_shapes(size):
    model = Transcriber(config_for(size))
    out = model(torch.rand(2, 50, N_BINS))
    assert set(out) == set(HEADS) and all(v.shape == (2, 50, N_KEYS) for v in out.values())


def test_bad_feature_shape_is_refused():
    with pytest.raises(Mp3MidiError, match=r"features \[batch, frames, 264\]; got \(2, 50, 100\)"):
        Transcriber()(torch.rand(2, 50, 100))


def _input_gradient(model: Transcriber, key: int) -> np.ndarray:
    """|d onset logit of ``key`` / d features|, summed over frames: [N_BINS]."""
    features = torch.rand(1, 40, N_BINS, requires_grad=True)
    model.eval()
    model(features)["onset"][0, 20, key].backward()
    return features.grad[0].abs().sum(0).numpy()


@pytest.mark.parametrize("below", [19, 24, 28])
def test_key_harmonics_let_a_key_see_the_notes_whose_partial_it_may_be(below):
    """Key 60 hears key 60 - 19 (whose 3rd partial it is), 60 - 24 and 60 - 28 through the key-harmonics block
    only: the harmonic stack alone looks one octave down at most."""
    torch.manual_seed(0)
    key = 60
    bins = slice(3 * (key - below), 3 * (key - below) + 3)
    assert _input_gradient(Transcriber(config_for("small")), key)[bins].max() > 0
    assert _input_gradient(Transcriber(ModelConfig()), key)[bins].max() == 0


def test_a_checkpoint_from_before_key_harmonics_loads_as_it_was(tmp_path):
    model = Transcriber(ModelConfig())
    save_checkpoint(tmp_path / "old.pt", model=model, step=1, metrics={})
    payload = load_checkpoint(tmp_path / "old.pt")
    for added in ("key_harmonics", "harmonic_channels"):  # what a checkpoint written before them lacks
        del payload["model_config"][added]
    again = model_from_checkpoint(payload)
    assert again.config == ModelConfig() and again.config.key_harmonics == ()


def test_a_run_of_an_older_network_is_not_continued_with_another(tiny):
    save_checkpoint(runs.run_dir(tiny, "older") / "latest.pt", model=Transcriber(ModelConfig()), step=5, metrics={})
    with pytest.raises(Mp3MidiError, match=r"run 'older' was trained with another network than today's 'small'"):
        train(TrainOptions(datasets=["tiny"], run="older", steps=10, data_dir=str(tiny)))
    assert load_checkpoint(runs.run_dir(tiny, "older") / "latest.pt")["step"] == 5  # left as it was


@pytest.mark.parametrize("size", list(SIZES))
def test_folded_batch_norms_compute_the_same_function(size):
    torch.manual_seed(0)
    model = Transcriber(config_for(size))
    for module in model.modules():  # batch norms with statistics of their own, not the identity they start as
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    fused = folded(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    features = torch.rand(1, 120, N_BINS)
    with torch.no_grad():
        expected, got = model(features), fused(features)
    for name in HEADS:
        torch.testing.assert_close(got[name], expected[name], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("widths", "kernel", "bias"), [((24, 2), (3, 1), True), ((24, 2), (3, 1), False),
                                                     ((3, 5, 1), (3, 3), True), ((8,), (1, 1), True)])
def test_a_convolution_of_parts_is_that_of_their_concatenation(widths, kernel, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(sum(widths), 6, kernel, padding=(kernel[0] // 2, kernel[1] // 2), bias=bias)
    parts = tuple(torch.rand(2, width, 30, 11, requires_grad=True) for width in widths)
    expected = conv(torch.cat(parts, dim=1))
    expected.square().sum().backward()
    expected_grads = [conv.weight.grad.clone(), *(part.grad.clone() for part in parts)]
    conv.weight.grad = None
    for part in parts:
        part.grad = None
    got = _conv_of_concatenation(conv, parts)
    got.square().sum().backward()  # training goes through it too: the same gradients
    torch.testing.assert_close(got, expected)
    for got_grad, expected_grad in zip([conv.weight.grad, *(part.grad for part in parts)], expected_grads):
        torch.testing.assert_close(got_grad, expected_grad)


def test_a_joint_convolution_is_each_convolution_stacked():
    torch.manual_seed(0)
    convs = tuple(torch.nn.Conv2d(24, 1, 1) for _ in range(3))
    x = torch.rand(2, 24, 20, N_KEYS)
    torch.testing.assert_close(_joint_conv(x, convs), torch.cat([conv(x) for conv in convs], dim=1))


def test_windowed_activations_equal_one_pass():
    torch.manual_seed(0)
    model = Transcriber(config_for("base")).eval()
    features = np.random.default_rng(0).random((700, N_BINS), dtype=np.float32)
    whole = activations(model, features, window_frames=10_000)
    windowed = activations(model, features, window_frames=200)
    for name in HEADS:
        np.testing.assert_allclose(windowed[name], whole[name], atol=1e-5)


def test_splits_are_stable_and_grouped_by_piece():
    hashes = [f"{i:040x}" for i in range(2000)]
    splits = [split_of(h) for h in hashes]
    assert splits == [split_of(h) for h in hashes]
    shares = {name: splits.count(name) / len(splits) for name in ("train", "validation", "test")}
    assert shares["train"] == pytest.approx(0.8, abs=0.04) and shares["test"] == pytest.approx(0.1, abs=0.03)


def test_pitch_shift_moves_features_and_labels_together(tiny):
    item = load_items(tiny, ["tiny"], "train")[0]
    features = item.features.astype(np.float32)
    shifted, rolls = Augment(gain_db=0, tilt_db=0, noise_floor=0, pitch_shift=2).apply(
        features, item.rolls, np.random.default_rng(3))
    shift = int(np.argmax(rolls["onset"].sum(0))) - int(np.argmax(item.rolls["onset"].sum(0)))
    assert shift != 0
    np.testing.assert_array_equal(shifted[:, 3 * max(shift, 0):N_BINS + 3 * min(shift, 0)],
                                  features[:, 3 * max(-shift, 0):N_BINS - 3 * max(shift, 0)])


def test_training_lowers_the_loss_and_records_the_run(tiny):
    crops = CropDataset(load_items(tiny, ["tiny"], "train"), crop_frames=160, augment=None, seed=0)
    batch = {name: torch.stack([crops[i][name] for i in range(8)]) for name in crops[0]}
    torch.manual_seed(0)
    model = Transcriber()
    with torch.no_grad():
        before = float(losses(model(batch["features"]), batch)["total"])
    threads = torch.get_num_threads()
    train(TrainOptions(datasets=["tiny"], run="fit", steps=40, batch_size=4, crop_frames=160, eval_every=20,
                       eval_items=2, augment=False, data_dir=str(tiny), lr=3e-3, threads=threads + 1))
    assert torch.get_num_threads() == threads  # a process-wide setting: the command line's to make, not train()'s
    trained = model_from_checkpoint(load_checkpoint(runs.run_dir(tiny, "fit") / "latest.pt"))
    trained.train(False)
    with torch.no_grad():
        after = float(losses(trained(batch["features"]), batch)["total"])
    assert after < 0.7 * before
    metrics = runs.run_metrics(tiny, ["fit"])
    assert list(metrics["step"]) == [20, 40] and metrics["train_loss"].iloc[1] < metrics["train_loss"].iloc[0]
    run = runs.list_runs(tiny).set_index("name").loc["fit"]
    assert run["status"] == "done" and run["step"] == 40 and run["parameters"] > 1000


def test_checkpoint_round_trip(tmp_path):
    model = Transcriber(config_for("base"))
    save_checkpoint(tmp_path / "c.pt", model=model, step=7, metrics={"onset_f1": 0.5})
    payload = load_checkpoint(tmp_path / "c.pt")
    assert payload["step"] == 7 and payload["metrics"] == {"onset_f1": 0.5}
    again = model_from_checkpoint(payload)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])


@pytest.mark.parametrize(("content", "message"), [
    (None, "no checkpoint at"), (b"garbage", "damaged or not a checkpoint"),
])
def test_bad_checkpoints(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(Mp3MidiError, match=message):
        load_checkpoint(path)


def test_checkpoint_with_other_features_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", model=Transcriber(), step=1, metrics={})
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    payload["feature_settings"] = {**payload["feature_settings"], "hop_length": 512}
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(Mp3MidiError, match="trained on other features"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize(("datasets", "message"), [(["nope"], "no dataset named 'nope'"),
                                                   (["../x"], "not allowed")])
def test_bad_datasets(tiny, datasets, message):
    with pytest.raises(Mp3MidiError, match=message):
        train(TrainOptions(datasets=datasets, run="bad", steps=1, data_dir=str(tiny)))


def test_evaluate_cli_writes_json(tiny, tmp_path):
    checkpoint = runs.run_dir(tiny, "fit") / "best.pt"
    if not checkpoint.exists():
        pytest.skip("needs the training test's run")
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "model", "evaluate", "--checkpoint", str(checkpoint), "--dataset",
                             "tiny", "--split", "train", "--data-dir", str(tiny), "--json", str(out)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert "overall" in report and len(report["items"]) >= 1 and "overall" in result.stdout
    direct = evaluate_dataset(checkpoint, ["tiny"], split="train", data_dir=tiny)
    assert direct["overall"]["onset_f1"] == pytest.approx(report["overall"]["onset_f1"])


def test_export_then_evaluate_a_folder(tiny, tmp_path):
    from model.evaluate import evaluate_folder
    from pipeline.export import export_split

    checkpoint = runs.run_dir(tiny, "fit") / "best.pt"
    if not checkpoint.exists():
        pytest.skip("needs the training test's run")
    assert export_split(tiny, "tiny", "all", tmp_path / "eval") == 12
    pairs = sorted((tmp_path / "eval").rglob("*.mp3"))
    assert len(pairs) == 12 and all(p.with_suffix(".mid").is_file() for p in pairs)
    report = evaluate_folder(checkpoint, tmp_path / "eval")
    assert len(report["items"]) == 12 and sum(g["items"] for g in report["groups"].values()) == 12
    assert report["failed"] == []
    broken = tmp_path / "eval" / "broken.mp3"  # one file that does not decode fails alone; the rest are scored
    broken.write_text("not audio\n" * 50)
    broken.with_suffix(".mid").write_bytes(pairs[0].with_suffix(".mid").read_bytes())
    again = evaluate_folder(checkpoint, tmp_path / "eval")
    assert len(again["items"]) == 12 and again["overall"] == report["overall"]
    assert [f["item"] for f in again["failed"]] == ["broken.mp3"]
    assert "is not audio that can be decoded" in again["failed"][0]["error"]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(Mp3MidiError, match="no audio file with a reference .mid"):
        evaluate_folder(checkpoint, tmp_path / "nothing")


# A fresh process trains through the library, then through `python -m model train`, printing what it set for
# glibc's allocator (pipeline.allocator) after each: only the command line, the process's entry point, sets it.
TRAIN_THEN_CLI = """
import json, sys
from model.__main__ import main
from model.train import TrainOptions, train
from pipeline.allocator import applied_block_bytes
data = sys.argv[1]
train(TrainOptions(datasets=["tiny"], run="allocator-library", steps=1, batch_size=2, crop_frames=120, eval_every=1,
                   eval_items=1, data_dir=data))
seen = [applied_block_bytes()]
assert main(["train", "--dataset", "tiny", "--run", "allocator-cli", "--steps", "1", "--batch-size", "2",
             "--eval-every", "1", "--data-dir", data]) == 0
seen.append(applied_block_bytes())
print(json.dumps(seen))
"""


def test_training_leaves_the_allocator_to_its_command_line(tiny):
    from pipeline.allocator import TRAINING_BLOCK_BYTES
    from tests.test_allocator import GLIBC

    result = subprocess.run([sys.executable, "-c", TRAIN_THEN_CLI, str(tiny)], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [None, TRAINING_BLOCK_BYTES if GLIBC else None]
