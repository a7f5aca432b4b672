"""The callbacks of `viton-tf train`: the step column of the log, weight files, backups, image grids.

Each reads the model it is attached to (`self.model`): a training model of training/trainers.py or
training/baselines.py, with `saved_networks()` and `image_grid(batch)`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import tensorflow as tf


class StepColumn(keras.callbacks.Callback):
    """Adds the global step to the epoch logs (before CSVLogger reads them)."""

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs["step"] = (epoch + 1) * self.steps_per_epoch


class NetworkCheckpoint(keras.callbacks.Callback):
    """OUT/<stem>.weights.h5 (last) and OUT/<stem>.best.weights.h5 (lowest loss) for each trained network,
    every `every_epochs` epochs and at the end."""

    def __init__(self, out: Path, every_epochs: int, best: float):
        super().__init__()
        self.out, self.every_epochs, self.best = Path(out), every_epochs, best

    def save(self, suffix: str) -> None:
        for stem, network in self.model.saved_networks().items():
            network.save_weights(self.out / f"{stem}{suffix}.weights.h5")

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs:
            return
        self.save("")
        if logs["loss"] < self.best:
            self.best = float(logs["loss"])
            self.save(".best")

    def on_train_end(self, logs=None):
        self.save("")
        if logs and "loss" in logs and logs["loss"] < self.best:
            self.save(".best")


class Backup(keras.callbacks.Callback):
    """FOLDER/latest.weights.h5 (the model's and optimizers' state) and FOLDER/training_metadata.json (the
    epochs done), every `every_epochs` epochs; the previous copy is kept as *.bkp, so a job killed while
    writing restarts from the one before. Removed when training ends. `restore` reads it back."""

    WEIGHTS = "latest.weights.h5"
    METADATA = "training_metadata.json"

    def __init__(self, folder: Path, every_epochs: int):
        super().__init__()
        self.folder, self.every_epochs = Path(folder), every_epochs

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            self.save(epoch + 1)

    def save(self, epochs_done: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in (self.WEIGHTS, self.METADATA):
            if (self.folder / name).exists():
                shutil.copyfile(self.folder / name, self.folder / f"{name}.bkp")
        self.model.save_weights(self.folder / self.WEIGHTS, overwrite=True)
        (self.folder / self.METADATA).write_text(json.dumps({"epoch": epochs_done, "batch": 0}))

    def on_train_end(self, logs=None):
        shutil.rmtree(self.folder, ignore_errors=True)

    @classmethod
    def restore(cls, model: keras.Model, folder: Path) -> int:
        """Load the backup in `folder` into the built `model`; the epoch to continue from (0 without one)."""
        folder = Path(folder)
        weights, metadata = folder / cls.WEIGHTS, folder / cls.METADATA
        if not weights.exists():
            return 0
        try:
            model.load_weights(weights)
        except OSError:  # killed while writing: the previous copy
            previous = folder / f"{cls.WEIGHTS}.bkp"
            if not previous.exists():
                raise
            shutil.copyfile(previous, weights)
            if (folder / f"{cls.METADATA}.bkp").exists():
                shutil.copyfile(folder / f"{cls.METADATA}.bkp", metadata)
            elif metadata.exists():
                metadata.unlink()
            model.load_weights(weights)
        return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0


class ImageGrid(keras.callbacks.Callback):
    """TensorBoard image grid of a fixed batch (one row per sample) every `every_steps` steps."""

    def __init__(self, logdir: Path, batch, every_steps: int):
        super().__init__()
        self.batch, self.every_steps = batch, every_steps
        self.writer = tf.summary.create_file_writer(str(logdir))

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every_steps == 0:
            columns = self.model.image_grid(self.batch)
            grid = tf.clip_by_value(tf.concat([image for _, image in columns], axis=2), 0.0, 1.0)
            with self.writer.as_default():
                tf.summary.image(" | ".join(name for name, _ in columns), grid, step=step, max_outputs=4)
            self.writer.flush()
