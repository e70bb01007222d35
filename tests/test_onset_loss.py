"""The onset head's loss recipe (model.network.OnsetLoss): what each knob changes, its checks, and that a run records
it and is never continued with another."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from model.network import OnsetLoss, losses, onset_loss
from pipeline.errors import Mp3MidiError

STRUCK, TAIL, INSIDE, SILENT = 2, 3, 6, 9  # frames of one key: struck at 2, widened to 3, sounding to 7


def labels() -> dict[str, torch.Tensor]:
    """One note on key 40 of a [1, 12, 88] roll: onset labels widened over two frames, velocity on the first."""
    roll = {name: torch.zeros(1, 12, 88) for name in ("onset", "frame", "offset", "velocity")}
    roll["onset"][0, STRUCK:STRUCK + 2, 40] = 1
    roll["frame"][0, STRUCK:8, 40] = 1
    roll["offset"][0, 7, 40] = 1
    roll["velocity"][0, STRUCK, 40] = 0.8
    return roll


def frame_losses(recipe: OnsetLoss, logit: float = 0.0) -> torch.Tensor:
    """The onset loss each frame of key 40 contributes, at a constant logit. -> [12]"""
    logits = torch.full((1, 12, 88), logit, requires_grad=True)
    onset_loss(logits, labels(), recipe).backward()
    return logits.grad[0, :, 40].abs() * logits.numel()  # d(mean)/d(logit) * N: each frame's own pull


def test_the_default_recipe_is_the_first_one():
    """pos_weight 4 on hard two-frame targets: what every checkpoint before the recipe was trained with."""
    logits = torch.randn(1, 12, 88)
    first = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels()["onset"],
                                                                 pos_weight=torch.tensor(4.0))
    assert onset_loss(logits, labels(), OnsetLoss()) == pytest.approx(float(first))


@pytest.mark.parametrize("pos_weight", [1.0, 2.0, 4.0])
def test_the_positive_weight_scales_the_pull_at_the_onset_only(pos_weight):
    pulls = frame_losses(OnsetLoss(pos_weight=pos_weight))
    assert float(pulls[STRUCK]) == pytest.approx(0.5 * pos_weight)  # d/dx of -w log(sigmoid(x)) at 0 is w/2
    assert float(pulls[INSIDE]) == pytest.approx(0.5) and float(pulls[SILENT]) == pytest.approx(0.5)


@pytest.mark.parametrize("tail", [0.25, 0.5, 1.0])
def test_a_soft_tail_lowers_the_second_frames_target_and_keeps_the_first(tail):
    """At a logit already matching the target, the gradient is zero: the tail frame's target is ``tail``."""
    recipe = OnsetLoss(pos_weight=1.0, tail=tail)
    at_target = torch.logit(torch.tensor(tail)).item() if tail < 1 else 20.0
    assert float(frame_losses(recipe, at_target)[TAIL]) == pytest.approx(0.0, abs=1e-5)
    assert float(frame_losses(recipe, 20.0)[STRUCK]) == pytest.approx(0.0, abs=1e-5)  # the struck frame stays 1


@pytest.mark.parametrize("inside_weight", [1.0, 2.0, 3.0])
def test_negatives_inside_a_sounding_note_weigh_more(inside_weight):
    pulls = frame_losses(OnsetLoss(inside_weight=inside_weight))
    assert float(pulls[INSIDE]) == pytest.approx(0.5 * inside_weight)
    assert float(pulls[SILENT]) == pytest.approx(0.5) and float(pulls[STRUCK]) == pytest.approx(2.0)


def test_the_total_carries_the_recipe():
    logits = {name: torch.zeros(1, 12, 88) for name in ("onset", "frame", "offset", "velocity")}
    plain, recipe = losses(logits, labels()), losses(logits, labels(), onset=OnsetLoss(inside_weight=3.0))
    assert recipe["onset"] > plain["onset"] and recipe["frame"] == plain["frame"]
    assert float(recipe["total"] - plain["total"]) == pytest.approx(float(recipe["onset"] - plain["onset"]), rel=1e-4)


@pytest.mark.parametrize(("knobs", "message"), [
    ({"pos_weight": 0.0}, r"onset positive weight must be positive; got 0\.0"),
    ({"tail": 0.0}, r"onset tail target must be in \(0, 1\]; got 0\.0"),
    ({"tail": 1.5}, r"onset tail target must be in \(0, 1\]; got 1\.5"),
    ({"inside_weight": -1.0}, r"onset negatives inside notes must be positive; got -1\.0"),
])
def test_bad_recipes_are_refused(knobs, message):
    with pytest.raises(Mp3MidiError, match=message):
        OnsetLoss(**knobs)


def test_the_command_line_refuses_a_bad_recipe_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "model", "train", "--dataset", "x", "--run", "r", "--onset-tail",
                             "2", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "onset tail target must be in (0, 1]; got 2.0" in result.stderr
    assert not (tmp_path / "runs").exists()
