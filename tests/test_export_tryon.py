"""`viton-tf tryon` (export/tryon.py): real photos in, a PNG out, offline; errors name the user's files."""
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
    assert run_tryon(Namespace(person=person, cloth=cloth, out=out, model=None, method="nonparametric", category=None)) == 0
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
        run_tryon(Namespace(person=bad, cloth=cloth, out=tmp_path / "x.png", model=None, method="nonparametric", category=None))
    with pytest.raises(UserError, match="needs --model"):
        run_tryon(Namespace(person=bad, cloth=cloth, out=tmp_path / "x.png", model=None, method="viton", category=None))
    with pytest.raises(UserError, match="no saved_model.pb"):
        find_version(tmp_path)


def test_a_product_photo_without_a_garment_is_refused_naming_the_file(shared_data, tmp_path):
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((1024, 768, 3), 255, np.uint8))
    person = shared_data / "real" / "person" / "00121_00.jpg"
    with pytest.raises(UserError, match=f"{blank}.*"):
        run_tryon(Namespace(person=person, cloth=blank, out=tmp_path / "x.png", model=None, method="layout", category=None))
    assert not (tmp_path / "x.png").exists()


def test_tryon_checks_that_out_is_writable_before_the_work(shared_data, tmp_path):
    cloth = shared_data / "real" / "cloth" / "00151_00.jpg"
    person = shared_data / "real" / "person" / "00121_00.jpg"
    with pytest.raises(UserError, match="is a folder"):
        run_tryon(Namespace(person=person, cloth=cloth, out=tmp_path, model=None, method="layout", category=None))
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(UserError, match="cannot write there"):
        run_tryon(Namespace(person=person, cloth=cloth, out=blocked / "x.png", model=None, method="layout", category=None))
