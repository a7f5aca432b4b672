import numpy as np
import pytest
import tensorflow as tf

from viton_tf.config import LIP, RepresentationConfig
from viton_tf.data import readers
from viton_tf.representation import garment_mask, keypoint_box_size, person_representation


@pytest.fixture(scope="module")
def batch(shared_data):
    """The four real CP-VTON test persons at 256x192, as one batch."""
    dataset = readers.make_dataset(shared_data / "viton_cpvton", split="test", batch_size=4)
    return {k: v.numpy() for k, v in next(iter(dataset)).items()}


def test_shapes_and_value_ranges(batch):
    rep = person_representation(batch["person"], batch["parsing"], batch["keypoints"]).numpy()
    assert rep.shape == (4, 256, 192, 22) and rep.dtype == np.float32
    assert set(np.unique(rep[..., :18])) == {0.0, 1.0}
    assert rep[..., 18].min() >= 0.0 and rep[..., 18].max() <= 1.0
    assert rep[..., 19:].min() >= -1.0 and rep[..., 19:].max() <= 1.0
    single = person_representation(batch["person"][1], batch["parsing"][1], batch["keypoints"][1]).numpy()
    assert single.shape == (256, 192, 22)
    np.testing.assert_allclose(single, rep[1], atol=1e-6)


def test_keypoint_boxes_are_11x11_and_centred_on_the_keypoints(batch):
    rep = person_representation(batch["person"], batch["parsing"], batch["keypoints"]).numpy()
    checked = missing = 0
    for b in range(4):
        for k, (x, y, confidence) in enumerate(batch["keypoints"][b]):
            channel = rep[b, :, :, k]
            if confidence <= 0:
                assert channel.sum() == 0
                missing += 1
                continue
            rows, columns = np.nonzero(channel)
            x, y = int(x), int(y)
            # utils.py:48-52: x-5..x+5 and y-5..y+5, clipped at the image border.
            assert (rows.min(), rows.max()) == (max(y - 5, 0), min(y + 5, 255))
            assert (columns.min(), columns.max()) == (max(x - 5, 0), min(x + 5, 191))
            assert channel.sum() == (rows.max() - rows.min() + 1) * (columns.max() - columns.min() + 1)
            checked += 1
    assert checked >= 50 and missing >= 10


def test_box_size_scales_with_the_height():
    assert [int(keypoint_box_size(h)) for h in (64, 128, 256, 512)] == [3, 5, 11, 23]
    keypoints = np.zeros((1, 18, 3), np.float32)
    keypoints[0, 4] = (20, 30, 0.9)
    rep = person_representation(np.zeros((1, 64, 48, 3), np.float32), np.zeros((1, 64, 48), np.int32), keypoints)
    rows, columns = np.nonzero(rep[0, :, :, 4].numpy())
    assert sorted(set(rows)) == [29, 30, 31] and sorted(set(columns)) == [19, 20, 21]
    assert float(tf.reduce_sum(rep[..., :18])) == 9.0


def test_face_hair_channels_are_the_person_inside_face_and_hair_only(batch):
    rep = person_representation(batch["person"], batch["parsing"], batch["keypoints"]).numpy()
    face_hair = np.isin(batch["parsing"], RepresentationConfig().face_hair_labels)
    assert face_hair.any(axis=(1, 2)).all()
    np.testing.assert_array_equal(rep[..., 19:][~face_hair], 0.0)
    np.testing.assert_allclose(rep[..., 19:][face_hair], batch["person"][face_hair], atol=1e-6)


def test_body_shape_is_blurred_and_follows_the_body(batch):
    rep = person_representation(batch["person"], batch["parsing"], batch["keypoints"]).numpy()
    body = (batch["parsing"] != 0) & ~np.isin(batch["parsing"], RepresentationConfig().face_hair_labels)
    for b in range(4):
        shape = rep[b, :, :, 18]
        correlation = np.corrcoef(shape.ravel(), body[b].ravel().astype(np.float32))[0, 1]
        assert correlation > 0.85
        # Blurred: many values strictly between 0 and 1, and neighbours differ little.
        assert ((shape > 0.05) & (shape < 0.95)).mean() > 0.1
        assert np.abs(np.diff(shape, axis=0)).max() < 0.15
        # Low resolution: nothing finer than the 16x12 grid survives.
        coarse = tf.image.resize(shape[None, ..., None], [16, 12], method="area")
        back = tf.image.resize(coarse, [256, 192], method="bilinear").numpy()[0, ..., 0]
        assert np.abs(back - shape).mean() < 0.05


def test_runs_in_tf_function_with_unknown_batch_and_size(batch):
    signature = [tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, None, None], tf.int32),
                 tf.TensorSpec([None, 18, 3], tf.float32)]
    traced = tf.function(person_representation, input_signature=signature)
    eager = person_representation(batch["person"][:2], batch["parsing"][:2], batch["keypoints"][:2])
    np.testing.assert_allclose(traced(batch["person"][:2], batch["parsing"][:2], batch["keypoints"][:2]), eager, atol=1e-6)
    small = traced(tf.zeros([3, 64, 48, 3]), tf.zeros([3, 64, 48], tf.int32), tf.zeros([3, 18, 3]))
    assert small.shape == (3, 64, 48, 22)


def test_garment_mask_picks_the_labels(batch):
    mask = garment_mask(batch["parsing"], (LIP.UPPER_CLOTHES,)).numpy()
    assert mask.shape == (4, 256, 192, 1)
    np.testing.assert_array_equal(mask[..., 0], (batch["parsing"] == LIP.UPPER_CLOTHES).astype(np.float32))
    both = garment_mask(batch["parsing"][0], (LIP.UPPER_CLOTHES, LIP.PANTS)).numpy()
    assert both.shape == (256, 192, 1) and both.sum() > mask[0].sum()
