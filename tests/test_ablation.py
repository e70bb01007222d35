"""The ablation table (benchmarks/ablation.py): paired differences over the same files, refused over different ones."""

from __future__ import annotations

import json

import pytest

from benchmarks.ablation import main, paired_difference
from pipeline.errors import Mp3MidiError


def reports(shift: float) -> tuple[dict, dict]:
    rows = {f"clip{i}": {"onset_f1": 0.1 * i + shift, "frame_f1": 0.5, "offset_f1": 0.2 + shift} for i in range(5)}
    realdev = {"tables": {}, "files": {"ours": rows, "ours --mono": rows}}
    unseen = {"items": [{"item": f"bank/{i}.mp3", "onset_f1": 0.6 + 0.05 * i + shift, "frame_f1": 0.7}
                        for i in range(4)]}
    return realdev, unseen


def test_a_paired_difference_removes_what_the_files_share():
    base = {"a": 0.2, "b": 0.9, "c": 0.5}  # hard and easy files: a wide spread
    better = {key: value + 0.03 for key, value in base.items()}
    difference = paired_difference(base, better, resamples=200)
    assert difference["mean"] == pytest.approx(0.03)
    assert difference["low"] == pytest.approx(0.03) and difference["high"] == pytest.approx(0.03)
    with pytest.raises(Mp3MidiError, match=r"scored on different files \(3 and 2, 2 shared\)"):
        paired_difference(base, {"a": 0.1, "b": 0.2}, resamples=0)


def test_the_table_gives_each_run_beside_the_baseline(tmp_path, capsys):
    arguments = []
    for name, shift in (("base", 0.0), ("better", 0.02)):
        realdev, unseen = reports(shift)
        (tmp_path / f"{name}-rd.json").write_text(json.dumps(realdev))
        (tmp_path / f"{name}-cs.json").write_text(json.dumps(unseen))
        arguments += ["--run", name, str(tmp_path / f"{name}-rd.json"), str(tmp_path / f"{name}-cs.json")]
    assert main([*arguments, "--bootstrap", "100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| base | 0.200 | 0.500 | 0.200 |")
    assert lines[3].startswith("| better | 0.220<br>+0.020 [+0.020, +0.020] | 0.500<br>+0.000 [+0.000, +0.000] |")
    (tmp_path / "old-rd.json").write_text(json.dumps({"tables": {}}))  # from before per-file rows were kept
    assert main(["--run", "old", str(tmp_path / "old-rd.json"), str(tmp_path / "base-cs.json")]) == 2
    assert "no per-file rows for 'ours'" in capsys.readouterr().err
