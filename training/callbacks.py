"""The callbacks of `viton-tf train`: the step column of the log, weight files, backups, image grids.

Each reads the model it is attached to (`self.model`): a training model of training/trainers.py or
training/baselines.py, with `saved_networks()` and `image_grid(batch)`.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


class StepColumn(keras.callbacks.Callback):
    """Adds the global step to the epoch logs (before CSVLogger reads them), and NaN for the validation
    columns on the epochs without validation (CSVLogger keeps the columns of the first row)."""

    def __init__(self, steps_per_epoch: int, validation_columns: list[str] = ()):
        super().__init__()
        self.steps_per_epoch, self.validation_columns = steps_per_epoch, list(validation_columns)

    def on_epoch_end(self, epoch, logs=None):
        logs["step"] = (epoch + 1) * self.steps_per_epoch
        for name in self.validation_columns:
            logs.setdefault(name, float("nan"))


class NetworkCheckpoint(keras.callbacks.Callback):
    """OUT/<stem>.weights.h5 (last) and OUT/<stem>.best.weights.h5 (lowest `monitor`: val_loss when there is
    validation, else loss) for each trained network, every `every_epochs` epochs and at the end."""

    def __init__(self, out: Path, every_epochs: int, best: float, monitor: str = "loss"):
        super().__init__()
        self.out, self.every_epochs, self.best, self.monitor = Path(out), every_epochs, best, monitor
        self.last = math.inf  # the latest value of `monitor`

    def save(self, suffix: str) -> None:
        for stem, network in self.model.saved_networks().items():
            network.save_weights(self.out / f"{stem}{suffix}.weights.h5")

    def on_epoch_end(self, epoch, logs=None):
        value = float(logs.get(self.monitor, math.nan))
        if not math.isnan(value):
            self.last = value
        if (epoch + 1) % self.every_epochs:
            return
        self.save("")
        if self.last < self.best:
            self.best = self.last
            self.save(".best")

    def on_train_end(self, logs=None):
        self.save("")
        if self.last < self.best:
            self.best = self.last
            self.save(".best")


class Scalars(keras.callbacks.Callback):
    """TensorBoard scalars of every logged loss on the global step (as the image grids): FOLDER/train and,
    for the val_* ones, FOLDER/validation under the same names."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)
        self.writers = {}

    def writer(self, name: str):
        if name not in self.writers:
            self.writers[name] = tf.summary.create_file_writer(str(self.folder / name))
        return self.writers[name]

    def on_epoch_end(self, epoch, logs=None):
        step = int(logs["step"])
        for key, value in logs.items():
            if key == "step" or not isinstance(value, (int, float)) or math.isnan(float(value)):
                continue
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self.writer(split).as_default():
                tf.summary.scalar(name, float(value), step=step)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()


class Backup(keras.callbacks.Callback):
    """FOLDER/latest.weights.h5 (the model's and optimizers' state) and FOLDER/training_metadata.json (the
    epochs done), every `every_epochs` epochs; the previous copy is kept as *.bkp, so a job killed while
    writing restarts from the one before. Removed when training ends. `restore` reads it back."""

    WEIGHTS = "latest.weights.h5"
    METADATA = "training_metadata.json"
    RNG = "random_states.npz"  # the dropout layers' seed states, which weight files leave out

    def __init__(self, folder: Path, every_epochs: int):
        super().__init__()
        self.folder, self.every_epochs = Path(folder), every_epochs

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            self.save(epoch + 1)

    def save(self, epochs_done: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in (self.WEIGHTS, self.RNG, self.METADATA):
            if (self.folder / name).exists():
                shutil.copyfile(self.folder / name, self.folder / f"{name}.bkp")
        self.model.save_weights(self.folder / self.WEIGHTS, overwrite=True)
        with open(self.folder / self.RNG, "wb") as f:
            np.savez(f, *[np.asarray(state) for state in random_states(self.model)])
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
            if (folder / f"{cls.RNG}.bkp").exists():
                shutil.copyfile(folder / f"{cls.RNG}.bkp", folder / cls.RNG)
            if (folder / f"{cls.METADATA}.bkp").exists():
                shutil.copyfile(folder / f"{cls.METADATA}.bkp", metadata)
            elif metadata.exists():
                metadata.unlink()
            model.load_weights(weights)
        if (folder / cls.RNG).exists():
            with np.load(folder / cls.RNG) as saved:
                for state, index in zip(random_states(model), range(len(saved.files))):
                    state.assign(saved[f"arr_{index}"])
        return json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0


def random_states(model: keras.Model) -> list:
    """The seed-generator states of a model's layers (dropout): in `model.variables`, not in its weights."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


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
            grid = tf.clip_by_value(tf.concat([tf.cast(image, tf.float32) for _, image in columns], axis=2), 0.0, 1.0)
            with self.writer.as_default():
                tf.summary.image(" | ".join(name for name, _ in columns), grid, step=step, max_outputs=4)
            self.writer.flush()
