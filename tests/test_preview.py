import numpy as np
import pytest
from PIL import Image

from pipeline.constants import N_BINS
from pipeline.preview import MAX_WIDTH_PX, preview_image, write_preview


@pytest.mark.parametrize(("frames", "width"), [(10, 10), (MAX_WIDTH_PX, MAX_WIDTH_PX), (MAX_WIDTH_PX + 1, 601),
                                               (5 * MAX_WIDTH_PX, MAX_WIDTH_PX)])
def test_the_picture_is_at_most_so_wide_and_one_row_per_bin(frames, width):
    assert preview_image(np.zeros((frames, N_BINS), np.float32)).size == (width, N_BINS)


def test_low_bins_at_the_bottom_and_loud_is_bright(tmp_path):
    features = np.zeros((100, N_BINS), np.float32)
    features[40:60, 5] = 1.0  # a loud low bin in the middle of the clip
    path = tmp_path / "item.png"
    write_preview(features, path)
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    brightness = pixels.sum(axis=2)  # [rows, columns], row 0 at the top
    assert brightness[N_BINS - 1 - 5, 50] > 600  # the palette's pale yellow end
    assert brightness[N_BINS - 1 - 5, 10] < 20 and brightness[5, 50] < 20  # black elsewhere
    assert not list(tmp_path.glob("*.partial"))
