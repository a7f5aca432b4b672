"""Neck-label and inner-back-collar fixes, measured against the synthetic world's truth."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from viton_tf.warp import cloth_fixes


def _plain_tee(colour=(0.2, 0.5, -0.3)):
    """A flat-coloured 64x48 product photo with no visible inner collar."""
    mask = np.zeros((1, 64, 48, 1), np.float32)
    mask[:, 10:56, 12:36] = 1.0
    mask[:, 10:24, 4:44] = 1.0
    cloth = np.where(mask > 0.5, np.array(colour, np.float32), 1.0).astype(np.float32)
    return cloth, mask


def test_a_garment_without_inner_collar_is_left_alone():
    cloth, mask = _plain_tee()
    fixed_cloth, fixed_mask = cloth_fixes.fix_cloth(cloth, mask)
    np.testing.assert_array_equal(fixed_mask.numpy(), mask)
    np.testing.assert_allclose(fixed_cloth.numpy(), cloth)


def test_band_and_label_are_found_and_removed():
    cloth, mask = _plain_tee()
    mask[:, 10, 19:29] = 0.0  # the back neckline's notch
    band = np.zeros_like(mask, bool)
    band[:, 11:16, 18:30] = True
    cloth[band[..., 0]] = np.array([0.2, 0.5, -0.3]) * 0.6 - 0.4  # the darker inside of the back
    cloth[:, 11:13, 22:26] = -0.9  # the label
    found_band, label = (t.numpy() > 0.5 for t in cloth_fixes.find_collar(cloth, mask))
    assert found_band[band].mean() > 0.9 and found_band[~band].sum() <= 4
    assert label[:, 11:13, 22:26].all() and label.sum() <= 24  # dilated by a pixel
    fixed, fixed_mask = (t.numpy() for t in cloth_fixes.fix_cloth(cloth, mask))
    assert fixed[:, 11:13, 22:26].min() > -0.8  # filled with the band's colour around it
    assert fixed_mask[band].max() == 0.0


def test_inpaint_fills_a_hole_from_its_surroundings():
    image = np.full((1, 16, 16, 3), 0.25, np.float32)
    image[:, 6:10, 6:10] = -1.0
    hole = np.zeros((1, 16, 16, 1), np.float32)
    hole[:, 6:10, 6:10] = 1.0
    filled = cloth_fixes.inpaint(tf.constant(image), tf.constant(hole), tf.ones_like(hole), 4).numpy()
    np.testing.assert_allclose(filled, 0.25, atol=1e-5)
