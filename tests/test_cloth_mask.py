"""viton_tf/data/cloth_mask.py: the one cloth-mask rule, in TF ops and for uint8 photos."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from viton_tf.data.cloth_mask import _reach, cloth_mask_from_photo, cloth_mask_from_uint8
from viton_tf.data.readers import read_pairs

def test_cloth_mask_from_photo_matches_the_mask_files(synthetic_world):
    # The world's 64x48 JPEGs have noisy white (250-254), where the paper's fixed 253.9 gives IoU ~0.5.
    for pair in read_pairs(synthetic_world, "vitonhd", "test"):
        photo = tf.io.decode_jpeg(pair.files["cloth"].read_bytes()).numpy()
        ours = cloth_mask_from_uint8(photo)
        truth = tf.io.decode_jpeg(pair.files["cloth_mask"].read_bytes()).numpy()[..., 0] > 127
        assert (ours & truth).sum() / (ours | truth).sum() > 0.7, pair.cloth


def test_cloth_mask_is_the_official_rule_on_white_and_finds_white_on_grey():
    white = np.full((64, 48, 3), 255, np.uint8)
    white[8:30, 6:42] = (253, 254, 254)  # mean 253.67 < 253.9: garment (model_zalando_tps_warp.py:219)
    white[34:56, 6:42] = (254, 254, 255)  # mean 254.33: background
    grey = np.full((64, 48, 3), 246, np.uint8)  # VITON-HD's backdrop
    grey[10:54, 8:40] = 255  # a white garment, brighter than the background
    grey[25:35, 18:30] = 246  # a background-coloured print: a hole, filled
    grey[3:5, 43:45] = 0  # dust: a 2x2 speck, opened away
    masks = cloth_mask_from_photo(tf.constant(np.stack([white, grey]), tf.float32) / 127.5 - 1.0).numpy()[..., 0]
    assert set(np.unique(masks)) == {0.0, 1.0}
    assert masks[0, 8:30, 6:42].all() and masks[0].sum() == 22 * 36
    assert masks[1, 10:54, 8:40].all() and masks[1].sum() == 44 * 32


def test_cloth_mask_flood_fill_equals_opencv():
    # Noise makes mazes of winding background paths: the run-wise flood fill equals OpenCV's.
    import cv2

    background = (np.random.default_rng(0).random((3, 40, 30)) < 0.6).astype(np.uint8)
    border = np.pad(np.zeros((3, 38, 28), np.float32), [(0, 0), (1, 1), (1, 1)], constant_values=1.0)
    ours = _reach(tf.constant(background, tf.float32), tf.constant(border)).numpy()
    for mask, reached in zip(background, ours):
        flood = np.pad(mask, 1, constant_values=1)
        cv2.floodFill(flood, None, (0, 0), 2)  # 4-connected, from outside the border
        np.testing.assert_array_equal(reached, (flood[1:-1, 1:-1] == 2).astype(np.float32))


def test_product_category_tells_trousers_skirts_dresses_and_tops_from_their_masks(tmp_path, shared_data):
    """Every product of a mixed synthetic world by its own category, and the 13 real VITON-HD tops as upper."""
    import json

    import cv2

    from viton_tf.config import SynthConfig
    from viton_tf.data.cloth_mask import cloth_mask_from_uint8, product_category
    from viton_tf.data.synthetic import write_world

    write_world(tmp_path, SynthConfig(pairs=24, height=256, width=192, seed=3,
                                      categories=("upper", "lower", "dress")), progress=False)
    truth = json.loads((tmp_path / "meta.json").read_text())["category_of"]
    masks = sorted(tmp_path.glob("*/cloth-mask/*"))
    guessed = {path.stem: product_category(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 127)[0] for path in masks}
    assert len(guessed) == 24 and set(truth.values()) == {"upper", "lower", "dress"}
    assert guessed == {stem: truth[stem] for stem in guessed}
    for photo in sorted((shared_data / "real" / "cloth").glob("*.jpg")):
        small = cv2.resize(cv2.imread(str(photo))[..., ::-1], (192, 256), interpolation=cv2.INTER_AREA)
        assert product_category(cloth_mask_from_uint8(small))[0] == "upper", photo.name
    with pytest.raises(ValueError, match="empty"):
        product_category(np.zeros((8, 8)))
