"""The .npz writer: what np.load and zipfile read back, byte for byte the same for the same arrays, nothing partial."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import Mp3MidiError
from pipeline.npz import save_npz

RNG = np.random.default_rng(7)
FEATURES = np.where(RNG.random((300, 264)) < 0.8, 0.0, RNG.random((300, 264))).astype(np.float16)


@pytest.mark.parametrize("arrays", [
    {"features": FEATURES},
    {"onset": (RNG.random((300, 88)) < 0.01).astype(np.uint8), "notes": RNG.random((12, 4)).astype(np.float32)},
    {"settings": np.array('{"hop_length": 256}'), "empty": np.zeros((0, 88), np.uint8)},
    {"fortran": np.asfortranarray(RNG.random((5, 7))), "scalar": np.array(3.5), "ints": np.arange(-3, 3)},
    {"random_bytes": RNG.integers(0, 256, 100_000, dtype=np.uint8)},  # incompressible: stored larger than raw
])
def test_np_load_reads_back_every_array(tmp_path: Path, arrays):
    path = tmp_path / "item.npz"
    save_npz(path, **arrays)
    with np.load(path, allow_pickle=False) as loaded:
        assert sorted(loaded.files) == sorted(arrays)
        for name, array in arrays.items():
            assert loaded[name].dtype == array.dtype
            np.testing.assert_array_equal(loaded[name], array)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC checks
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert [p.name for p in tmp_path.iterdir()] == ["item.npz"]


def test_features_compress_and_the_same_arrays_give_the_same_bytes(tmp_path: Path):
    save_npz(tmp_path / "a.npz", features=FEATURES)
    save_npz(tmp_path / "b.npz", features=FEATURES)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    np.savez_compressed(tmp_path / "numpy.npz", features=FEATURES)
    assert (tmp_path / "a.npz").stat().st_size < (tmp_path / "numpy.npz").stat().st_size
    assert (tmp_path / "a.npz").stat().st_size < FEATURES.nbytes / 2


def test_an_array_that_needs_pickling_is_refused_and_leaves_nothing(tmp_path: Path):
    path = tmp_path / "item.npz"
    with pytest.raises(Mp3MidiError, match=r"cannot store 'objects.npy' in an .npz"):
        save_npz(path, features=FEATURES, objects=np.array([{"a": 1}], dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_whole(tmp_path: Path):
    path = tmp_path / "item.npz"
    save_npz(path, features=FEATURES)
    save_npz(path, onset=np.ones((3, 88), np.uint8))
    with np.load(path) as loaded:
        assert loaded.files == ["onset"]
