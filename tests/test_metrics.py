import numpy as np
import tensorflow as tf

from viton_tf import metrics


def _image(seed, shape=(2, 32, 24, 3)):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, shape), tf.float32)


def test_ssim_is_one_for_equal_images_and_matches_tf_image_ssim():
    a, b = _image(0), _image(1)
    np.testing.assert_allclose(metrics.ssim(a, a).numpy(), [1.0, 1.0], atol=1e-5)
    blurred = tf.nn.avg_pool2d(a, 3, 1, "SAME")
    ours = metrics.ssim(a, blurred).numpy()
    assert np.all(ours < 0.9)
    # tf.image.ssim uses 'VALID' filtering: compare on the interior of our 'SAME' map.
    reference = tf.image.ssim(a, blurred, max_val=2.0).numpy()
    interior = tf.reduce_mean(metrics.ssim_map(a, blurred)[:, 5:-5, 5:-5], axis=[1, 2]).numpy()
    np.testing.assert_allclose(interior, reference, atol=1e-3)
    assert metrics.ssim(a, b).numpy().max() < 0.2


def test_masked_ssim_only_looks_inside_the_mask():
    a = _image(0)
    b = tf.concat([a[:, :16], _image(2)[:, 16:]], axis=1)
    top = tf.concat([tf.ones([2, 8, 24, 1]), tf.zeros([2, 24, 24, 1])], axis=1)
    np.testing.assert_allclose(metrics.ssim(a, b, top).numpy(), [1.0, 1.0], atol=1e-5)


def test_psnr_l1_iou_values():
    a = tf.zeros([1, 8, 8, 3])
    b = tf.fill([1, 8, 8, 3], 0.2)
    np.testing.assert_allclose(metrics.l1(a, b).numpy(), [0.2], atol=1e-6)
    np.testing.assert_allclose(metrics.psnr(a, b).numpy(), [10 * np.log10(4 / 0.04)], atol=1e-3)
    m1 = tf.concat([tf.ones([1, 4, 8, 1]), tf.zeros([1, 4, 8, 1])], axis=1)
    m2 = tf.concat([tf.ones([1, 6, 8, 1]), tf.zeros([1, 2, 8, 1])], axis=1)
    np.testing.assert_allclose(metrics.iou(m1, m2).numpy(), [32 / 48], atol=1e-6)
    np.testing.assert_allclose(metrics.iou(tf.zeros_like(m1), tf.zeros_like(m1)).numpy(), [1.0])
