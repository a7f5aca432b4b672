"""`viton-tf train`: both stages learn, a killed run resumes, and tf.distribute matches one device."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from viton_tf.cli import main
from viton_tf.errors import UserError

REPO = Path(__file__).resolve().parents[1]
# A small G_C keeps each step at CPU speed; everything else is the real job.
SMALL = ["--height", "64", "--width", "48", "--batch-size", "2", "--vgg-weights", "none",
         "--set", "generator.base_filters=16"]
# No dropout, so runs on one and on two replicas see the same random numbers (none).
DETERMINISTIC = SMALL + ["--set", "generator.dropout=0", "--steps", "10", "--image-every", "1000"]
# The VGG is most of a step's time; the resume test checks steps, not losses.
NO_VGG = ["--set", "loss.stage1_perceptual=0"]


def read_log(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def losses_of(path: Path) -> list[float]:
    return [float(row["loss"]) for row in read_log(path)]


def train_argv(world, run, *extra):
    return ["train", "--data", str(world), "--out", str(run), *SMALL, *extra]


def test_both_stages_learn_and_fill_the_run_folder(synthetic_world, tmp_path):
    run = tmp_path / "run"
    assert main(train_argv(synthetic_world, run, "--stage", "1", "--steps", "40", "--checkpoint-every", "20",
                           "--image-every", "20")) == 0
    stage1 = read_log(run / "log.csv")
    assert [int(row["step"]) for row in stage1] == [10, 20, 30, 40]
    assert {"loss", "l1", "mask_l1", "perceptual"} <= set(stage1[0])
    first, last = float(stage1[0]["loss"]), float(stage1[-1]["loss"])
    assert last < 0.8 * first, (first, last)
    for name in ("generator.weights.h5", "generator.best.weights.h5", "config.json"):
        assert (run / name).is_file(), name
    assert not (run / "backup" / "stage1").exists()  # a finished run leaves no backup
    assert list((run / "tensorboard" / "stage1" / "images").glob("events.out.tfevents.*"))

    # One TPS iteration keeps the in-step shape-context warp cheap on a CPU; the parsed garment is the warp
    # target, as the masks of a G_C trained for 40 steps are noise (test_stage2_warps_onto_the_predicted_mask).
    assert main(train_argv(synthetic_world, run, "--stage", "2", "--steps", "40", "--checkpoint-every", "20",
                           "--image-every", "40", "--set", "warp.iterations=1",
                           "--set", "train.stage2_target_mask=ground_truth")) == 0
    stage2 = read_log(run / "log_stage2.csv")
    assert {"loss", "l1", "perceptual", "composition_mask", "tv"} <= set(stage2[0])
    first, last = float(stage2[0]["loss"]), float(stage2[-1]["loss"])
    assert last < first, (first, last)
    # -0.1 * mean(alpha) rewards using the warped cloth: alpha grows inside the garment.
    assert float(stage2[-1]["composition_mask"]) > float(stage2[0]["composition_mask"])
    assert (run / "refinement.weights.h5").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["generator"]["base_filters"] == 16
    assert config["train_stage1"]["stage"] == 1 and config["train_stage2"]["stage"] == 2


def test_stage2_warps_onto_the_predicted_mask(synthetic_world):
    import keras
    import tensorflow as tf

    from training.trainers import VitonStage2
    from viton_tf.config import LossConfig
    from viton_tf.data.readers import make_dataset
    from viton_tf.losses import PerceptualLoss
    from viton_tf.models.refinement import Refinement

    class BlockMask(keras.Model):
        """A G_C stand-in whose clothing mask is a torso block."""

        def call(self, inputs, training=False):
            cloth = inputs["cloth"]
            rows = tf.range(64)[:, None] >= 16
            block = tf.cast(rows & (tf.range(64)[:, None] < 44) & (tf.abs(tf.range(48) - 24) < 12), tf.float32)
            mask = tf.broadcast_to(block[None, :, :, None] * 0.9, tf.shape(cloth[..., :1]))
            return {"coarse_person": tf.zeros_like(cloth), "cloth_mask": mask}

    batch = next(iter(make_dataset(synthetic_world, height=64, width=48, batch_size=2)))
    batch = {"person": batch["person"], "cloth": batch["cloth"], "cloth_mask": batch["cloth_mask"],
             "representation": tf.zeros([2, 64, 48, 22])}
    model = VitonStage2(BlockMask(), Refinement(), PerceptualLoss(LossConfig().stage2_vgg_layers, weights="none"))
    inputs = model.refinement_inputs(batch)
    mask = inputs["garment_mask"].numpy()
    assert mask.sum() == 2 * 28 * 23 and set(np.unique(mask)) == {0.0, 1.0}
    # The warped cloth covers the block: its foreground (not white) lies mostly inside the mask.
    foreground = (inputs["warped_cloth"].numpy() < 0.9).any(axis=-1, keepdims=True)
    assert (foreground & (mask == 1)).sum() > 0.8 * foreground.sum() > 0


def test_gan_trains_a_patch_discriminator_beside_g_c(synthetic_world, tmp_path):
    run = tmp_path / "run"
    assert main(train_argv(synthetic_world, run, "--stage", "1", "--steps", "10", "--gan", *NO_VGG,
                           "--set", "discriminator.base_filters=8")) == 0
    row = read_log(run / "log.csv")[-1]
    adversarial, discriminator = float(row["adversarial"]), float(row["discriminator"])
    assert 0 < adversarial and 0 < discriminator
    l1, mask_l1 = float(row["l1"]), float(row["mask_l1"])
    # The logged loss is a mean over steps of l1 + mask_l1 + 0.1 * adversarial (LossConfig.adversarial).
    assert float(row["loss"]) == pytest.approx(l1 + mask_l1 + 0.1 * adversarial, rel=1e-4)
    assert json.loads((run / "config.json").read_text())["loss"]["adversarial"] == 0.1


def test_stage2_needs_stage1_weights(synthetic_world, tmp_path, capsys):
    assert main(train_argv(synthetic_world, tmp_path / "run", "--stage", "2", "--steps", "10")) == 2
    assert "generator.weights.h5" in capsys.readouterr().err


def test_user_errors_name_what_is_wrong(synthetic_world, tmp_path):
    from training.fit import run_training
    from training.train import SECTIONS
    from viton_tf.config import parse_overrides

    sections = SECTIONS + ("train",)
    args = Namespace(stage=1, method="viton", data=tmp_path / "missing", out=tmp_path / "run", steps=10, batch_size=2,
                     height=64, width=48, vgg_weights="none", gan=False, strategy="default", resume=False, seed=0)
    with pytest.raises(UserError, match="missing"):
        run_training(args)
    (tmp_path / "run" / "backup" / "stage1").mkdir(parents=True)
    args.data = synthetic_world
    with pytest.raises(UserError, match="--resume"):
        run_training(args)
    with pytest.raises(UserError, match="SECTION.FIELD=VALUE"):
        parse_overrides(["base_filters=3"], sections)
    assert parse_overrides(["loss.vgg_layers=[\"block1_conv2\"]", "train.stage2_target_mask=ground_truth"],
                           sections) == {
        "loss": {"vgg_layers": ("block1_conv2",)}, "train": {"stage2_target_mask": "ground_truth"}}


def _cli(*argv):
    return [sys.executable, "-m", "viton_tf.cli", *argv]


# Op determinism (CPU): two runs of the same job give the same weights, so a resumed one can be compared.
DETERMINISTIC_JOB = ("import sys, tensorflow as tf\n"
                     "tf.config.experimental.enable_op_determinism()\n"
                     "from viton_tf.cli import main\n"
                     "sys.exit(main(sys.argv[1:]))\n")


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(synthetic_world, tmp_path):
    # Dropout stays on (0.5): its random state is part of what a backup restores.
    def argv(run):
        return [sys.executable, "-c", DETERMINISTIC_JOB, *train_argv(synthetic_world, run, "--stage", "1",
                "--steps", "60", "--checkpoint-every", "10", "--image-every", "1000", *NO_VGG)]

    whole = tmp_path / "whole"
    result = subprocess.run(argv(whole), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    run = tmp_path / "run"
    metadata = run / "backup" / "stage1" / "training_metadata.json"
    process = subprocess.Popen(argv(run), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Killed once a backup exists, whenever that is (the backup keeps its previous copy too).
        deadline = time.time() + 600  # generous: only a hung job reaches it
        while not metadata.is_file() and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    reached = json.loads(metadata.read_text())["epoch"]
    assert 1 <= reached < 6

    result = subprocess.run(argv(run) + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Epoch {reached + 1}/6" in result.stdout and "Epoch 1/6" not in result.stdout
    assert [int(row["step"]) for row in read_log(run / "log.csv")] == list(range(10, 61, 10))
    assert not (run / "backup" / "stage1").exists()
    resumed, uninterrupted = _weights(run / "generator.weights.h5"), _weights(whole / "generator.weights.h5")
    assert len(resumed) == len(uninterrupted) > 0
    for a, b in zip(resumed, uninterrupted):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(losses_of(run / "log.csv"), losses_of(whole / "log.csv"), rtol=1e-5)
    # Started again with --resume, the finished run is not trained twice.
    again = subprocess.run(argv(run) + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to resume" in again.stdout


def _weights(path: Path) -> list[np.ndarray]:
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.fixture(scope="module")
def single_device_run(synthetic_world, tmp_path_factory):
    run = tmp_path_factory.mktemp("single") / "run"
    subprocess.run(_cli("train", "--data", str(synthetic_world), "--out", str(run), "--stage", "1",
                        "--strategy", "default", *DETERMINISTIC), cwd=REPO, check=True, capture_output=True)
    return run


@pytest.mark.slow
def test_mirrored_over_two_cpu_devices_matches_one_device(synthetic_world, single_device_run, tmp_path):
    run = tmp_path / "run"
    script = (
        "import sys, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "from viton_tf.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", script, "train", "--data", str(synthetic_world), "--out", str(run),
                             "--stage", "1", "--strategy", "mirrored", *DETERMINISTIC],
                            cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on 2 replica(s)" in result.stdout
    np.testing.assert_allclose(losses_of(run / "log.csv"), losses_of(single_device_run / "log.csv"), rtol=2e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_end_identical_and_match_one_device(synthetic_world, single_device_run, tmp_path, processes):
    run = tmp_path / "run"
    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
    workers = processes
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(
            _cli("train", "--data", str(synthetic_world), "--out", str(run), "--stage", "1",
                 "--strategy", "multi-worker", *DETERMINISTIC),
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [worker.communicate(timeout=240)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "on 2 replica(s)" in outputs[0]
    chief, other = _weights(run / "generator.weights.h5"), _weights(run / "worker-1" / "generator.weights.h5")
    assert len(chief) == len(other) > 0
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(losses_of(run / "log.csv"), losses_of(single_device_run / "log.csv"), rtol=2e-3)


def _scalar_steps(folder: Path, tag: str) -> list[int]:
    import tensorflow as tf

    return sorted(event.step for path in folder.glob("events.out.tfevents.*")
                  for event in tf.compat.v1.train.summary_iterator(str(path))
                  for value in event.summary.value if value.tag == tag)


def test_validation_skip_bad_labels_and_defaults_reach_the_run_folder(synthetic_world, tmp_path, capsys):
    import shutil

    world = tmp_path / "world"
    shutil.copytree(synthetic_world, world)
    (world / "train" / "image" / "00003_00.jpg").write_bytes(b"not a jpeg")
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"skipped 1 of 12 pairs .*00003_00\.jpg.*line 4 of"):
        assert main(train_argv(world, run, "--stage", "1", "--steps", "20", "--skip-bad", "--val-fraction", "0.25",
                               "--val-every", "10", "--image-every", "10", *NO_VGG)) == 0
    rows = read_log(run / "log.csv")
    assert [int(row["step"]) for row in rows] == [10, 20]
    for row in rows:  # the held-out 3 pairs (the last quarter of the 11 left), every 10 steps
        assert 0 < float(row["val_loss"]) == pytest.approx(float(row["val_l1"]) + float(row["val_mask_l1"]), rel=1e-4)
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["garment_labels"] == [5] and config["data"]["skip_bad"] is True  # the world's "upper"
    assert config["train"]["cache"] == "none" and config["train"]["val_fraction"] == 0.25
    tensorboard = run / "tensorboard" / "stage1"
    assert _scalar_steps(tensorboard / "train", "loss") == [10, 20]
    assert _scalar_steps(tensorboard / "validation", "loss") == [10, 20]
    assert _scalar_steps(tensorboard / "images", "person | cloth | coarse_person | cloth_mask | target_mask") == [10, 20]
    # Without the bad file's pair the run stops at it, naming the file and the pair line.
    assert main(train_argv(world, tmp_path / "other", "--stage", "1", "--steps", "10")) == 2
    assert re.search(r"image/00003_00\.jpg: corrupt or not an image.*line 4 of", capsys.readouterr().err)


@pytest.mark.parametrize("precision", [pytest.param("mixed_float16", marks=pytest.mark.slow),  # emulated on CPUs
                                       "mixed_bfloat16"])
def test_a_stage_learns_under_mixed_precision(synthetic_world, tmp_path, precision):
    import keras

    run = tmp_path / "run"
    # The VGG (random, cheap at 64x48) under mixed_bfloat16; mixed_float16 is slow on a CPU without it already.
    vgg = NO_VGG if precision == "mixed_float16" else []
    assert main(train_argv(synthetic_world, run, "--stage", "1", "--steps", "30", "--precision", precision,
                           "--image-every", "1000", *vgg)) == 0
    losses = losses_of(run / "log.csv")
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0], losses  # mixed_float16: 1.20 -> 1.00
    assert keras.mixed_precision.global_policy().name == "float32"  # the job leaves the process as it was
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == precision


# One worker of a 2-worker cluster: reads 2 passes of the training stream as `viton-tf train` does and
# writes the persons its replica got, in order.
SHARD_READER = """
import json, sys
from pathlib import Path
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
from training.train import distributed_training_dataset, make_job, pair_tables
from viton_tf.config import TrainConfig
world, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
job = make_job(TrainConfig(height=64, width=48, batch_size=2, vgg_weights="none"), out.parent)
table, _ = pair_tables(world, job)
batches = iter(distributed_training_dataset(strategy, table, job, 0, names=True))
seen = []
for _ in range(steps):
    names = strategy.experimental_local_results(next(batches)["person_name"])
    seen += [name.decode() for local in names for name in local.numpy()]
out.write_text(json.dumps(seen))
"""


@pytest.fixture
def processes():
    """Started subprocesses, each killed at the end of the test whatever its outcome."""
    started = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.slow
def test_two_workers_together_read_each_pair_once_per_pass(synthetic_world, tmp_path, processes):
    pairs = (synthetic_world / "train_pairs.txt").read_text().split()[::2]
    steps = len(pairs)  # 2 passes: a step takes a global batch of 2, one pair from each worker
    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", SHARD_READER, str(synthetic_world), str(tmp_path / f"seen-{index}.json"), str(steps)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    seen = [json.loads((tmp_path / f"seen-{index}.json").read_text()) for index in range(2)]
    half = len(pairs) // 2
    for first in (0, half):  # each pass
        shares = [set(worker[first:first + half]) for worker in seen]
        assert len(shares[0]) == len(shares[1]) == half and not shares[0] & shares[1]
        assert shares[0] | shares[1] == set(pairs)
    assert seen[0][:half] != seen[0][half:]  # each pass its own order


def test_a_file_cache_lives_under_the_run_folder(synthetic_world, tmp_path):
    run = tmp_path / "run"
    assert main(train_argv(synthetic_world, run, "--stage", "1", "--steps", "10", "--cache", "file",
                           "--image-every", "1000", *NO_VGG)) == 0
    assert list((run / "cache" / "stage1").glob("train*.index"))  # tf.data's cache files
    assert json.loads((run / "config.json").read_text())["train"]["cache"] == "file"
