"""`viton-tf tryon` on a real VITON-HD pair, offline and without trained weights."""
from argparse import Namespace

import cv2
import numpy as np
import pytest

from export.tryon import find_version, run_tryon
from viton_tf.errors import UserError


def test_nonparametric_tryon_on_a_real_pair_keeps_the_head_and_changes_the_top(shared_data, tmp_path):
    person = shared_data / "real" / "person" / "00035_00.jpg"
    cloth = shared_data / "real" / "cloth" / "00151_00.jpg"  # a striped top onto a plain dark one
    out = tmp_path / "tryon.png"
    assert run_tryon(Namespace(person=person, cloth=cloth, out=out, model=None, method="nonparametric")) == 0
    result = cv2.imread(str(out))
    assert result.shape == (256, 192, 3)
    original = cv2.resize(cv2.imread(str(person)), (192, 256), interpolation=cv2.INTER_AREA)
    difference = np.abs(result.astype(int) - original).mean(axis=-1)
    assert difference[:40].mean() < 6  # the head region is the person's own
    assert difference[90:160, 60:130].mean() > 30  # the torso now shows the new garment


def test_tryon_errors_name_the_users_file(shared_data, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    cloth = shared_data / "real" / "cloth" / "00151_00.jpg"
    with pytest.raises(UserError, match=str(bad)):
        run_tryon(Namespace(person=bad, cloth=cloth, out=tmp_path / "x.png", model=None, method="nonparametric"))
    with pytest.raises(UserError, match="needs --model"):
        run_tryon(Namespace(person=bad, cloth=cloth, out=tmp_path / "x.png", model=None, method="viton"))
    with pytest.raises(UserError, match="no saved_model.pb"):
        find_version(tmp_path)


def test_the_exported_try_on_keeps_arms_and_hair_in_front_of_the_new_garment(synthetic_world):
    import tensorflow as tf

    from viton_tf.config import LIP
    from viton_tf.data.readers import load_example
    from viton_tf.tryon import TryOnModule

    example = load_example(synthetic_world, "00000_00.jpg", "00001_00.jpg", split="train", height=64, width=48)
    parsing = example["parsing"].copy()
    arm = np.zeros_like(parsing, bool)
    arm[30:36, 8:40] = True  # an arm across the torso, over the worn garment
    arm &= parsing == LIP.UPPER_CLOTHES
    parsing[arm] = LIP.LEFT_ARM
    person = example["person"].copy()
    person[arm] = 0.5
    module = TryOnModule(64, 48, method="nonparametric")
    outputs = module.tryon_tensors(person[None], example["cloth"][None], example["cloth_mask"][None],
                                   tf.constant(parsing[None]), example["keypoints"][None])
    pasted = outputs["composition_mask"].numpy()[0, ..., 0]
    assert arm.sum() > 60 and pasted[arm].max() == 0.0 and pasted[~arm].sum() > 200
    np.testing.assert_array_equal(outputs["tryon"].numpy()[0][arm], person[arm])  # the arm stays in front
