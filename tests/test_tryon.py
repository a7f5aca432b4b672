"""viton_tf/tryon.py: the exported try-on module (occluders in front, the layout method at the photo's size)."""
import cv2
import numpy as np
import pytest


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


@pytest.fixture(scope="module")
def prepared_real_pair(shared_data, tmp_path_factory):
    """One real VITON-HD person (full 1024x768 photo) and garment, prepared as `viton-tf tryon` does."""
    from export.tryon import prepared_request

    person = shared_data / "real" / "person" / "00121_00.jpg"  # black short-sleeved tee, arms down
    cloth = shared_data / "real" / "cloth" / "00470_00.jpg"  # long-sleeved floral top
    return person, cloth, prepared_request(person, cloth, 256, 192, tmp_path_factory.mktemp("real"),
                                           full_resolution=True)


@pytest.fixture(scope="module")
def layout_module():
    """The real-photo try-on with the shipped layout networks (traced once for this file's tests)."""
    from viton_tf.layout import load_layout_nets
    from viton_tf.tryon import TryOnModule

    return TryOnModule(256, 192, method="layout", layout_nets=load_layout_nets())


def test_the_layout_try_on_answers_at_the_photos_size_and_keeps_its_pixels_outside_the_change(prepared_real_pair,
                                                                                                layout_module):
    import tensorflow as tf

    from viton_tf.tryon import layout_tryon

    person, cloth, inputs = prepared_real_pair
    module = layout_module
    outputs = module.serving_default(**{name: tf.constant(value) for name, value in inputs.items()})
    result = tf.io.decode_png(outputs["tryon_png_bytes"][0]).numpy()
    photo = cv2.imread(str(person))[..., ::-1]
    assert result.shape == photo.shape == (1024, 768, 3)
    # The changed region at the model's size, upsampled and widened by the bilinear support (4 px here).
    small_person, small_cloth, parsing, _ = module.decode(*(tf.constant(inputs[k]) for k in (
        "person_image", "cloth_image", "parse_image")))
    from viton_tf.data.cloth_mask import cloth_mask_from_photo

    scale = np.array([192 / 768, 256 / 1024, 1.0], np.float32)
    changed = layout_tryon(small_person, small_cloth, cloth_mask_from_photo(small_cloth), parsing,
                           inputs["keypoints"] * scale, module.layout_nets, module.warp,
                           module.representation_config)["changed_mask"].numpy()[0, ..., 0]
    region = cv2.dilate(cv2.resize(changed, (768, 1024), interpolation=cv2.INTER_NEAREST), np.ones((9, 9)))
    differs = np.any(result != photo, axis=-1)
    assert differs.sum() > 0.08 * differs.size  # the garment changed
    assert not differs[region == 0].any()  # nothing else did, bit for bit
    face = cv2.resize((parsing.numpy()[0] == 13).astype(np.uint8), (768, 1024), interpolation=cv2.INTER_NEAREST)
    assert not differs[cv2.erode(face, np.ones((9, 9))) > 0].any()  # the face is the person's own
    # The long sleeves of the product cover the arms that the short-sleeved tee left bare.
    assert np.mean(outputs["garment_mask"].numpy()[0, ..., 0] > 0.5) > np.mean(np.isin(parsing.numpy()[0], (5,)))


@pytest.mark.slow
def test_the_layout_try_on_beats_the_paste_and_meets_its_targets_on_an_unseen_synthetic_world(tmp_path):
    """The issue's targets, on a world whose seed no tuning saw: garment IoU >= 0.85, remnant <= 2%, fringe
    <= 0.5%, and better than the non-parametric paste on every unpaired metric."""
    from types import SimpleNamespace

    from training.evaluate import evaluate_method, load_test_pairs
    from viton_tf.config import ExperimentConfig, SynthConfig
    from viton_tf.data.synthetic import write_world
    from viton_tf.run import load_predictor

    write_world(tmp_path, SynthConfig(pairs=64, height=256, width=192, seed=23), progress=False)
    pairs = load_test_pairs(tmp_path, "test", 256, 192)
    quiet = SimpleNamespace(update=lambda count: None)
    scores = {method: evaluate_method(load_predictor(tmp_path, method, ExperimentConfig(), 256, 192), pairs, None,
                                      quiet)[0]["unpaired"] for method in ("layout", "nonparametric")}
    layout, paste = scores["layout"], scores["nonparametric"]
    assert layout["garment_iou"] >= 0.85 and layout["remnant"] <= 0.02 and layout["fringe"] <= 0.005, layout
    for higher in ("ssim", "psnr", "garment_ssim", "garment_iou"):
        assert layout[higher] > paste[higher], (higher, layout, paste)
    for lower in ("l1", "remnant", "fringe"):
        assert layout[lower] < paste[lower], (lower, layout, paste)


@pytest.fixture(scope="module")
def mixed_world(tmp_path_factory):
    """A small synthetic world with all three categories at 256x192 (product photos of each)."""
    from viton_tf.config import SynthConfig
    from viton_tf.data.synthetic import write_world

    out = tmp_path_factory.mktemp("mixed")
    write_world(out, SynthConfig(pairs=12, height=256, width=192, seed=5, categories=("upper", "lower", "dress")),
                progress=False)
    return out


def test_a_lower_body_try_on_and_a_dress_on_a_real_photo(prepared_real_pair, mixed_world, layout_module):
    """serving_category on a real photo: upper answers what serving_default answers, bit for bit; lower replaces
    the trousers only (the top, arms, face and hair are the photo's own pixels); a dress (bodice, then skirt)
    replaces the top and the shorts as one garment, face and hair kept; the category comes back."""
    import json

    import tensorflow as tf

    person, _, inputs = prepared_real_pair
    category_of = json.loads((mixed_world / "meta.json").read_text())["category_of"]
    products = {}
    for category in ("lower", "dress"):
        stem = next(stem for stem, name in sorted(category_of.items()) if name == category)
        split = "train" if (mixed_world / "train" / "cloth" / f"{stem}.jpg").is_file() else "test"
        products[category] = (mixed_world / split / "cloth" / f"{stem}.jpg").read_bytes()
    module = layout_module
    batch = {name: tf.constant(np.concatenate([value] * 3)) for name, value in inputs.items()}
    batch["cloth_image"] = tf.constant([inputs["cloth_image"][0], products["lower"], products["dress"]])
    outputs = module.serving_category(**batch, category=tf.constant(["upper", "lower", "dress"]))
    assert [name.decode() for name in outputs["category"].numpy()] == ["upper", "lower", "dress"]
    # At the same batch size (oneDNN's kernels, and so the last bit, may differ between batch sizes).
    default = module.serving_default(**{name: tf.constant(np.concatenate([value] * 3)) for name, value in inputs.items()})
    assert outputs["tryon_png_bytes"][0].numpy() == default["tryon_png_bytes"][0].numpy()

    result = tf.io.decode_png(outputs["tryon_png_bytes"][1]).numpy()
    photo = cv2.imread(str(person))[..., ::-1]
    parsing = cv2.resize(tf.io.decode_png(inputs["parse_image"][0]).numpy()[..., 0], (768, 1024),
                         interpolation=cv2.INTER_NEAREST)
    differs = np.any(result != photo, axis=-1)
    kept = cv2.erode(np.isin(parsing, (2, 5, 13, 14, 15)).astype(np.uint8), np.ones((9, 9))) > 0
    trousers_worn = np.isin(parsing, (9, 12))
    assert trousers_worn.sum() > 0.03 * parsing.size and kept.sum() > 0.1 * parsing.size
    assert not differs[kept].any()  # top, arms, face and hair: the photo's own pixels
    assert differs[trousers_worn].mean() > 0.5  # the trousers changed

    dress = tf.io.decode_png(outputs["tryon_png_bytes"][2]).numpy()
    differs = np.any(dress != photo, axis=-1)
    face_hair = cv2.erode(np.isin(parsing, (2, 13)).astype(np.uint8), np.ones((9, 9))) > 0
    top = cv2.erode(np.isin(parsing, (5,)).astype(np.uint8), np.ones((9, 9))) > 0
    assert not differs[face_hair].any() and differs[top].mean() > 0.9 and differs[trousers_worn].mean() > 0.9
    arms = cv2.erode(np.isin(parsing, (14, 15)).astype(np.uint8), np.ones((9, 9))) > 0
    # Bare arms stay in front of the dress: 0.29 of them change (the shaded ones fail the skin-colour test and are
    # taken for sleeves), 0.47 when the bodice may cover them.
    assert arms.sum() > 0.01 * parsing.size and differs[arms].mean() < 0.35
    # One garment from the shoulders down: the body's centre column is dress from the chest to the frame's bottom
    # rows (the skirt's waistband on the bodice's hem, no gap at the seam).
    garment = outputs["composition_mask"][2, ..., 0].numpy() > 0.5
    keypoints = inputs["keypoints"][0] * np.array([192 / 768, 256 / 1024, 1.0])
    centre = int(round((keypoints[8, 0] + keypoints[11, 0]) / 2))
    chest = int(round(keypoints[2, 1] + 0.3 * (keypoints[8, 1] - keypoints[2, 1])))
    assert garment[chest:240, centre - 2:centre + 3].all(axis=1).mean() > 0.95
    with pytest.raises(tf.errors.InvalidArgumentError, match="upper, lower, dress"):
        module.serving_category(**{name: tf.constant(value) for name, value in inputs.items()},
                                category=tf.constant(["shoes"]))
