import json
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest

from viton_tf.config import BODY25_TO_COCO18, LIP
from viton_tf.data import readers
from viton_tf.errors import UserError


def _examples(dataset):
    return [{k: v.numpy() for k, v in example.items()} for example in dataset]


def _write_palette_png(path, labels, bit_depth=8):
    """A palette PNG of label ids (as VITON-HD ships its parsing), written by hand: no PIL here."""
    height, width = labels.shape
    per_byte = 8 // bit_depth
    padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
    padded[:, :width] = labels
    rows = np.zeros((height, padded.shape[1] // per_byte), np.uint8)
    for k in range(per_byte):
        rows |= (padded[:, k::per_byte] << (8 - bit_depth * (k + 1))).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    palette = np.random.default_rng(0).integers(0, 256, (2 ** bit_depth, 3), dtype=np.uint8).tobytes()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, 3, 0, 0, 0))
                     + chunk(b"PLTE", palette) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def vitonhd(tmp_path_factory):
    """Two VITON-HD pairs at 64x48 with palette parsing and BODY_25 keypoints."""
    root = tmp_path_factory.mktemp("vitonhd")
    rng = np.random.default_rng(1)
    stems = ["00001_00", "00002_00"]
    for stem in stems:
        for folder in ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json"):
            (root / "train" / folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "train" / "image" / f"{stem}.jpg"), rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "train" / "cloth" / f"{stem}.jpg"), np.full((64, 48, 3), 255, np.uint8))
        mask = np.zeros((64, 48), np.uint8)
        mask[10:50, 8:40] = 255
        cv2.imwrite(str(root / "train" / "cloth-mask" / f"{stem}.jpg"), mask)
        labels = np.zeros((64, 48), np.uint8)
        labels[4:14, 18:30], labels[20:44, 12:36], labels[44:60, 14:34] = LIP.FACE, LIP.UPPER_CLOTHES, LIP.PANTS
        _write_palette_png(root / "train" / "image-parse-v3" / f"{stem}.png", labels)
        body25 = np.zeros((25, 3), np.float32)
        body25[:, 0], body25[:, 1], body25[:, 2] = np.arange(25), np.arange(25) + 30, 0.5
        body25[3] = 0  # r_elbow missing
        json.dump({"people": [{"pose_keypoints_2d": body25.ravel().tolist()}]},
                  open(root / "train" / "openpose_json" / f"{stem}_keypoints.json", "w"))
    (root / "train_pairs.txt").write_text("".join(f"{s}.jpg {t}.jpg\n" for s, t in zip(stems, stems[::-1])))
    return root


def test_vitonhd_layout_reads_palette_parsing_and_body25(vitonhd):
    examples = _examples(readers.make_dataset(vitonhd, height=64, width=48))
    assert readers.detect_layout(vitonhd) == "vitonhd"
    assert [(e["person_name"], e["cloth_name"]) for e in examples] == [
        (b"00001_00.jpg", b"00002_00.jpg"), (b"00002_00.jpg", b"00001_00.jpg")]
    example = examples[0]
    assert set(np.unique(example["parsing"])) == {0, LIP.UPPER_CLOTHES, LIP.PANTS, LIP.FACE}
    assert example["parsing"][30, 20] == LIP.UPPER_CLOTHES and example["parsing"][8, 20] == LIP.FACE
    assert example["cloth_mask"][30, 20, 0] == 1 and example["cloth_mask"][2, 2, 0] == 0
    # BODY_25 joint j sits at x = j: COCO-18 keeps 0-7, skips mid-hip (8), then 9-18.
    np.testing.assert_array_equal(example["keypoints"][:, 0], [0, 1, 2, 0, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18])
    np.testing.assert_array_equal(example["keypoints"][3], [0, 0, 0])
    paired = _examples(readers.make_dataset(vitonhd, height=64, width=48, paired=True))
    assert all(e["person_name"] == e["cloth_name"] for e in paired)


def test_palette_png_low_bit_depth_gives_label_ids(tmp_path):
    labels = np.random.default_rng(0).integers(0, 16, (7, 5)).astype(np.uint8)
    _write_palette_png(tmp_path / "p.png", labels, bit_depth=4)
    np.testing.assert_array_equal(readers.read_parsing(tmp_path / "p.png", (7, 5)), labels)


def test_cpvton_reads_the_shared_samples(shared_data):
    root = shared_data / "viton_cpvton"
    assert readers.detect_layout(root) == "cpvton"
    examples = _examples(readers.make_dataset(root, split="test", batch_size=None))
    lines = [line.split() for line in (root / "test_pairs.txt").read_text().splitlines()]
    assert [[e["person_name"].decode(), e["cloth_name"].decode()] for e in examples] == lines
    for e in examples:
        assert e["person"].shape == (256, 192, 3) and e["person"].dtype == np.float32
        assert e["cloth"].shape == (256, 192, 3) and e["cloth_mask"].shape == (256, 192, 1)
        assert e["parsing"].shape == (256, 192) and e["parsing"].dtype == np.int32
        assert e["keypoints"].shape == (18, 3) and e["keypoints"].dtype == np.float32
        assert -1.0 <= e["person"].min() < -0.5 and 0.5 < e["person"].max() <= 1.0
        assert set(np.unique(e["cloth_mask"])) == {0.0, 1.0} and 0.2 < e["cloth_mask"].mean() < 0.9
        assert {LIP.UPPER_CLOTHES, LIP.FACE} <= set(np.unique(e["parsing"]))
        visible = e["keypoints"][e["keypoints"][:, 2] > 0]
        assert len(visible) >= 10
        assert np.all((visible[:, 0] >= 0) & (visible[:, 0] < 192) & (visible[:, 1] >= 0) & (visible[:, 1] < 256))
        # The nose (0) lies on the face and the neck (1) below it.
        x, y = e["keypoints"][0, :2].astype(int)
        assert e["parsing"][y, x] == LIP.FACE and e["keypoints"][1, 1] > e["keypoints"][0, 1]
    batched = next(iter(readers.make_dataset(root, split="test", batch_size=3)))
    assert batched["person"].shape == (3, 256, 192, 3) and batched["person_name"].shape == (3,)


def test_original_layout_missing_pose_names_the_file_and_the_pair_line(shared_data):
    root = shared_data / "viton_original"
    assert readers.detect_layout(root) == "original"
    with pytest.raises(UserError, match=r"pose/000001_0\.mat.*line 1 of .*'000001_0\.jpg 000001_1\.jpg'"):
        readers.make_dataset(root)
    with pytest.warns(UserWarning, match="skipped 1 of 3 pairs"):
        examples = _examples(readers.make_dataset(root, skip_bad=True, height=128, width=96))
    assert [e["person_name"] for e in examples] == [b"000002_0.jpg", b"000003_0.jpg"]
    for e in examples:
        assert e["person"].shape == (128, 96, 3) and e["parsing"].shape == (128, 96)
        assert {LIP.UPPER_CLOTHES, LIP.FACE} <= set(np.unique(e["parsing"]))
        # The cloth mask comes from the product photo: a garment in the middle, white at the corners.
        assert e["cloth_mask"][64, 48, 0] == 1 and e["cloth_mask"][0, 0, 0] == 0
        assert 0.3 < e["cloth_mask"].mean() < 0.95
        visible = e["keypoints"][e["keypoints"][:, 2] > 0]
        assert len(visible) >= 13 and visible[:, 0].max() < 96 and visible[:, 1].max() < 128


def test_original_layout_cloth_mask_is_the_in_graph_one(shared_data):
    import tensorflow as tf

    from viton_tf.data.cloth_mask import cloth_mask_from_photo

    root = shared_data / "viton_original"
    with pytest.warns(UserWarning, match="skipped 1 of 3 pairs"):
        batch = next(iter(readers.make_dataset(root, skip_bad=True, batch_size=2)))
    masks = batch["cloth_mask"].numpy()
    np.testing.assert_array_equal(masks, cloth_mask_from_photo(batch["cloth"]).numpy())
    np.testing.assert_array_equal(masks[1], readers.load_example(root, "000003_0.jpg", "000003_1.jpg")["cloth_mask"])
    np.testing.assert_allclose(masks.mean(axis=(1, 2, 3)), [0.63, 0.68], atol=0.02)  # measured 0.629, 0.677


def test_original_segment_matches_its_png_stored_or_transposed(shared_data, tmp_path):
    from scipy.io import loadmat, savemat

    root = shared_data / "viton_original"
    png = cv2.imread(str(root / "segment" / "000003_0.png"), cv2.IMREAD_UNCHANGED)
    example = readers.load_example(root, "000003_0.jpg", "000003_1.jpg", "original", "train", *png.shape)
    np.testing.assert_array_equal(example["parsing"], png)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "segment" / "000003_0.jpg.mat").chmod(0o644)
    savemat(copy / "segment" / "000003_0.jpg.mat", {"segment": loadmat(root / "segment" / "000003_0.jpg.mat")["segment"].T})
    transposed = readers.load_example(copy, "000003_0.jpg", "000003_1.jpg", "original", "train", *png.shape)
    np.testing.assert_array_equal(transposed["parsing"], png)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_jpeg_names_the_file_or_is_skipped(shared_data, tmp_path, damage):
    root = tmp_path / "cpvton"
    shutil.copytree(shared_data / "viton_cpvton", root)
    bad = root / "test" / "image" / "000010_0.jpg"
    bad.chmod(0o644)
    data = bad.read_bytes()
    bad.write_bytes(b"not a jpeg at all" * 10 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(Exception, match=r"image/000010_0\.jpg.*line 2 of") as raised:
        _examples(readers.make_dataset(root, split="test"))
    recovered = readers.as_user_error(raised.value)
    assert isinstance(recovered, UserError) and str(recovered).startswith(str(bad))
    assert str(recovered).endswith("'000010_0.jpg 002447_1.jpg')")
    assert readers.as_user_error(ValueError("other")) is None
    with pytest.warns(UserWarning, match=r"skipped 1 of 4 pairs.*000010_0\.jpg"):
        examples = _examples(readers.make_dataset(root, split="test", skip_bad=True))
    assert [e["person_name"] for e in examples] == [b"000001_0.jpg", b"000258_0.jpg", b"000501_0.jpg"]


def test_resize_scales_keypoints_and_parsing(shared_data):
    root = shared_data / "viton_cpvton"
    full = _examples(readers.make_dataset(root, split="test"))
    half = _examples(readers.make_dataset(root, split="test", height=128, width=64))
    for a, b in zip(full, half):
        assert b["person"].shape == (128, 64, 3) and b["parsing"].shape == (128, 64)
        np.testing.assert_allclose(b["keypoints"][:, 0], a["keypoints"][:, 0] / 3, rtol=1e-6)
        np.testing.assert_allclose(b["keypoints"][:, 1], a["keypoints"][:, 1] / 2, rtol=1e-6)
        np.testing.assert_array_equal(b["keypoints"][:, 2], a["keypoints"][:, 2])
        assert set(np.unique(b["parsing"])) <= set(np.unique(a["parsing"]))
        assert set(np.unique(b["cloth_mask"])) == {0.0, 1.0}


def test_seeded_shuffle_is_deterministic(shared_data):
    root = shared_data / "viton_cpvton"

    def order(**kwargs):
        dataset = readers.make_dataset(root, split="test", height=32, width=24, **kwargs)
        return [e["person_name"] for e in _examples(dataset)]

    assert order() == [b"000001_0.jpg", b"000010_0.jpg", b"000258_0.jpg", b"000501_0.jpg"]
    assert order(shuffle=True, seed=3) == order(shuffle=True, seed=3)
    orders = {tuple(order(shuffle=True, seed=seed)) for seed in range(4)}
    assert len(orders) > 1 and all(sorted(o) == order() for o in orders)


def test_read_keypoints_json_variants(tmp_path):
    coco = np.arange(54, dtype=np.float32).reshape(18, 3) + 1
    (tmp_path / "coco.json").write_text(json.dumps({"people": [{"pose_keypoints": coco.ravel().tolist()}]}))
    np.testing.assert_array_equal(readers.read_keypoints_json(tmp_path / "coco.json"), coco)
    body25 = np.arange(75, dtype=np.float32).reshape(25, 3) + 1
    weak = np.full((25, 3), 0.1, np.float32)
    (tmp_path / "b25.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": v.ravel().tolist()} for v in (weak, body25)]}))
    np.testing.assert_array_equal(readers.read_keypoints_json(tmp_path / "b25.json"), body25[list(BODY25_TO_COCO18)])
    (tmp_path / "none.json").write_text(json.dumps({"people": []}))
    np.testing.assert_array_equal(readers.read_keypoints_json(tmp_path / "none.json"), np.zeros((18, 3)))
    (tmp_path / "bad.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}))
    with pytest.raises(UserError, match="bad.json: 3 pose values"):
        readers.read_keypoints_json(tmp_path / "bad.json")


def test_not_a_dataset_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a dataset folder"):
        readers.make_dataset(tmp_path)
    with pytest.raises(UserError, match="dataset folder not found"):
        readers.make_dataset(tmp_path / "absent")


def test_reads_the_synthetic_world(synthetic_world):
    assert readers.detect_layout(synthetic_world) == "vitonhd"
    for split in ("train", "test"):
        lines = (synthetic_world / f"{split}_pairs.txt").read_text().split()
        examples = _examples(readers.make_dataset(synthetic_world, split=split, height=64, width=48))
        assert len(examples) == len(lines) // 2 > 0
        for e in examples:
            assert {LIP.HAIR, LIP.UPPER_CLOTHES, LIP.FACE} <= set(np.unique(e["parsing"])) <= set(range(20))
            visible = e["keypoints"][e["keypoints"][:, 2] > 0]
            assert len(visible) >= 12 and visible[:, 0].max() < 48 and visible[:, 1].max() < 64
            assert 0.05 < e["cloth_mask"].mean() < 0.95


def test_garment_labels_follow_the_layout(vitonhd, shared_data, synthetic_world, tmp_path):
    from viton_tf.config import SynthConfig
    from viton_tf.data.synthetic import write_world

    upper_wear = (LIP.UPPER_CLOTHES, LIP.DRESS, LIP.COAT)
    assert readers.layout_garment_labels(vitonhd) == upper_wear  # VITON-HD counts coats and dresses too
    assert readers.layout_garment_labels(shared_data / "viton_cpvton") == upper_wear
    assert readers.layout_garment_labels(shared_data / "viton_original") == upper_wear
    assert readers.layout_garment_labels(synthetic_world) == (LIP.UPPER_CLOTHES,)  # what it paints
    world = tmp_path / "mixed"
    write_world(world, SynthConfig(pairs=4, height=32, width=32, test_fraction=0.0, categories=("upper", "dress")),
                progress=False)
    assert readers.layout_garment_labels(world) == (LIP.UPPER_CLOTHES,)  # the other categories' are in CATEGORIES
    table = readers.pair_table(world)
    assert table.columns["category"].tolist() == ["upper", "dress", "upper", "dress"]
    example = next(iter(readers.make_dataset(world, height=32, width=32, batch_size=4)))
    assert [name.decode() for name in example["category"].numpy()] == ["upper", "dress", "upper", "dress"]


def test_the_pipeline_is_tf_ops_only(shared_data, synthetic_world):
    import contextlib

    import tensorflow as tf

    for root, skipped in ((synthetic_world, False), (shared_data / "viton_original", True)):
        with pytest.warns(UserWarning, match="skipped 1 of 3") if skipped else contextlib.nullcontext():
            dataset = readers.make_dataset(root, height=64, width=48, skip_bad=True)
        graph = dataset._as_serialized_graph().numpy()
        assert b"PyFunc" not in graph  # no tf.numpy_function / tf.py_function per example
        example = next(iter(dataset))
        assert example["person"].dtype == tf.float32 and example["parsing"].shape == (64, 48)


def test_a_cloth_mask_of_another_size_names_the_file_and_the_pair_line(vitonhd, tmp_path):
    root = tmp_path / "vitonhd"
    shutil.copytree(vitonhd, root)
    mask = root / "train" / "cloth-mask" / "00001_00.jpg"
    cv2.imwrite(str(mask), np.zeros((32, 24), np.uint8))
    with pytest.raises(Exception) as raised:  # found in the graph, by an assertion carrying the names
        _examples(readers.make_dataset(root, height=64, width=48))
    assert str(readers.as_user_error(raised.value)) == (
        f"{mask}: mask is 32x24, its cloth photo 64x48 (in line 2 of {root / 'train_pairs.txt'}: "
        "'00002_00.jpg 00001_00.jpg')")


@pytest.fixture(scope="module")
def dresscode_and_world(tmp_path_factory):
    """The same 12 persons and garments (all three categories, 64x48) in DressCode's layout, written by
    `viton-tf synth --layout dresscode`, and in the VITON-HD layout the reader is already trusted on."""
    from viton_tf.cli import main

    root = tmp_path_factory.mktemp("dresscode")
    common = ["--pairs", "12", "--height", "64", "--width", "48", "--categories", "upper,lower,dress", "--quiet"]
    assert main(["synth", "--out", str(root / "dc"), "--layout", "dresscode", *common]) == 0
    assert main(["synth", "--out", str(root / "hd"), *common]) == 0
    return root / "dc", root / "hd"


def test_dresscode_reads_as_the_world_it_was_written_from(dresscode_and_world):
    dresscode, world = dresscode_and_world
    assert readers.detect_layout(dresscode) == "dresscode"
    assert sorted(p.name for p in dresscode.iterdir() if p.is_dir()) == ["dresses", "lower_body", "upper_body"]
    assert (dresscode / "lower_body" / "keypoints" / "000001_2.json").is_file()
    truth = {int(e["person_name"][:5]): e for e in _examples(readers.make_dataset(world, height=64, width=48))}
    examples = _examples(readers.make_dataset(dresscode, height=64, width=48))
    assert len(examples) == len(truth) == 9
    categories = json.loads((world / "meta.json").read_text())["category_of"]
    neck_overlap = []
    for e in examples:
        index = int(e["person_name"][:6])
        assert e["cloth_name"].decode() == f"{index:06d}_1.jpg"
        same = truth[index]
        assert e["category"].decode() == categories[f"{index:05d}_00"]  # the folder's
        # Keypoints: DressCode's 384 x 512 frame scaled to the photo (to the JSON's 3 decimals).
        np.testing.assert_allclose(e["keypoints"], same["keypoints"], atol=0.01)
        np.testing.assert_allclose(e["person"], same["person"])
        # ATR labels mapped to LIP: equal but where the head's neck is split off at the shoulders.
        differ = e["parsing"] != same["parsing"]
        assert set(e["parsing"][differ]) | set(same["parsing"][differ]) <= {LIP.FACE, LIP.NECK}
        assert differ.mean() < 0.03
        neck = (e["parsing"] == LIP.NECK, same["parsing"] == LIP.NECK)
        neck_overlap.append((neck[0] & neck[1]).sum() / max(1, (neck[0] | neck[1]).sum()))
    assert np.mean(neck_overlap) > 0.5
    # The product photo's own mask (DressCode ships none) covers the garment of the world's mask file.
    assert all((e["cloth_mask"] >= truth[int(e["person_name"][:6])]["cloth_mask"]).mean() > 0.99 for e in examples)


def test_dresscode_test_split_paired_and_unpaired(dresscode_and_world):
    dresscode, _ = dresscode_and_world
    paired = readers.read_pairs(dresscode, "dresscode", "test", paired=True)
    unpaired = readers.read_pairs(dresscode, "dresscode", "test")
    assert [p.person for p in paired] == [p.person for p in unpaired] and len(paired) == 3
    for own, other in zip(paired, unpaired):
        assert own.cloth == own.person.replace("_0", "_1") != other.cloth
        assert own.category == other.category and own.layout == "dresscode"
        assert other.files["cloth"].parent == other.files["person"].parent  # a garment of the same folder
    (dresscode / "meta.json").rename(dresscode / "meta.json.away")  # as the real dataset: no meta.json
    try:
        assert readers.layout_garment_labels(dresscode) == (LIP.UPPER_CLOTHES, LIP.COAT)
    finally:
        (dresscode / "meta.json.away").rename(dresscode / "meta.json")


def test_dresscode_bad_files_name_the_file(dresscode_and_world, tmp_path):
    dresscode, _ = dresscode_and_world
    root = tmp_path / "dc"
    shutil.copytree(dresscode, root)
    keypoints = root / "lower_body" / "keypoints" / "000001_2.json"
    keypoints.write_text('{"people": []}')
    with pytest.raises(UserError, match=f"{keypoints}: not a DressCode keypoint file.*line 1 of "):
        readers.pair_table(root)
    keypoints.unlink()
    with pytest.raises(UserError, match=f"{keypoints}: file not found \\(needed by line 1 of "
                                        f"{root / 'lower_body' / 'train_pairs.txt'}"):
        readers.pair_table(root)
    shutil.copy(dresscode / "lower_body" / "keypoints" / "000001_2.json", keypoints)
    labels = root / "upper_body" / "label_maps" / "000000_4.png"
    cv2.imwrite(str(labels), np.full((64, 48), 20, np.uint8))
    with pytest.raises(Exception) as raised:
        _examples(readers.make_dataset(root, height=64, width=48))
    assert str(readers.as_user_error(raised.value)) == f"{labels}: label 20 is not a DressCode label (0..17)"
