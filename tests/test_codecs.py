"""viton_tf/data/codecs.py: the parsing-map decoder and the size check read from the header."""
from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf

from viton_tf.data.codecs import decode_parsing, image_size
from viton_tf.data.readers import read_parsing

def test_palette_and_grayscale_parsing_decode_to_the_same_labels(tmp_path):
    image = pytest.importorskip("PIL.Image")
    labels = np.zeros((32, 24), np.uint8)
    labels[4:20, 3:20], labels[10:30, 8:12], labels[0:4, :] = 5, 13, 2
    palette = image.fromarray(labels, mode="P")
    palette.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
    for name, picture in (("palette.png", palette), ("grey.png", image.fromarray(labels, mode="L"))):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        (tmp_path / name).write_bytes(buffer.getvalue())
        decoded = decode_parsing(tf.constant(buffer.getvalue()), 32, 24).numpy()
        np.testing.assert_array_equal(decoded, labels, err_msg=name)
        np.testing.assert_array_equal(read_parsing(tmp_path / name, (32, 24)), labels)  # agrees with the reader
    half = decode_parsing(tf.constant((tmp_path / "palette.png").read_bytes()), 16, 12).numpy()
    assert set(np.unique(half)) == {0, 2, 5, 13}


def test_image_size_is_read_from_the_header_of_a_jpeg_and_a_png():
    import cv2

    image = np.zeros((37, 23, 3), np.uint8)
    for suffix in (".jpg", ".png"):
        data = cv2.imencode(suffix, image)[1].tobytes()
        assert image_size(tf.constant(data), "x").numpy().tolist() == [37, 23]
    with pytest.raises(tf.errors.InvalidArgumentError, match="x: not a JPEG or PNG"):
        image_size(tf.constant(b"GIF89a"), "x")


def test_a_jpeg_decodes_to_the_pixels_opencv_reads(tmp_path):
    import cv2
    import numpy as np
    import tensorflow as tf

    from viton_tf.data.codecs import decode_photo

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8), (5, 5), 0)
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    decoded = decode_photo(tf.io.read_file(str(path)), "photo", 4096).numpy()
    np.testing.assert_array_equal(decoded, cv2.imread(str(path))[..., ::-1])
