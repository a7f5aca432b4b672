"""`viton-tf train`: config in, checkpoints out; `model.fit` under a tf.distribute strategy.

Run folder RUN/: config.json (every config of the run), <network>.weights.h5 (last) and
<network>.best.weights.h5 (lowest logged loss), log.csv (log_stage2.csv for stage 2), backup/<stage>/
(what --resume continues from), tensorboard/<stage>/ (scalars and image grids). Non-chief workers of a
multi-worker run write the same files under RUN/worker-<index>/.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from viton_tf.config import (DataConfig, DiscriminatorConfig, GeneratorConfig, LossConfig, RefinementConfig,
                             RepresentationConfig, TrainConfig, WarpConfig, from_dict, override, parse_overrides)
from viton_tf.errors import UserError


@dataclass
class TrainJob:
    """Everything a method needs to build its training model (inside the strategy's scope)."""

    config: TrainConfig
    run: Path  # the run folder (stage 2 reads stage 1's weights here)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    warp: WarpConfig = field(default_factory=WarpConfig)
    data: DataConfig = field(default_factory=DataConfig)

    @property
    def stage_name(self) -> str:
        return stage_name(self.config)


def stage_name(config: TrainConfig) -> str:
    """"stage1"/"stage2" for VITON, the method's name for a baseline: names its backup, logs and summaries."""
    return f"stage{config.stage}" if config.method == "viton" else config.method


def build_viton(job: TrainJob):
    """VITON stage 1 (G_C) or stage 2 (G_R on top of the run's frozen stage-1 G_C)."""
    from training.trainers import VitonStage1, VitonStage2
    from viton_tf.losses import PerceptualLoss
    from viton_tf.models.generator import Generator
    from viton_tf.models.refinement import Refinement

    config = job.config
    discriminator = job.discriminator if config.gan else None
    generator = Generator(job.generator, name="generator")
    if config.stage == 1:
        perceptual = None if job.loss.stage1_perceptual == 0 else \
            PerceptualLoss(job.loss.vgg_layers, job.loss, config.vgg_weights, config.seed)
        return VitonStage1(generator, perceptual, job.loss, discriminator)
    weights = job.run / "generator.weights.h5"
    if not weights.is_file():
        raise UserError(f"{weights}: stage 2 needs the stage-1 generator weights in the same run folder; "
                        f"run `viton-tf train --stage 1 --out {job.run}` first")
    perceptual = None if job.loss.stage2_perceptual == 0 else \
        PerceptualLoss(job.loss.stage2_vgg_layers, job.loss, config.vgg_weights, config.seed)
    height, width = config.height, config.width
    import tensorflow as tf

    generator({"representation": tf.zeros([1, height, width, job.representation.channels]),
               "cloth": tf.zeros([1, height, width, 3])})
    try:
        generator.load_weights(weights)
    except Exception as error:
        raise UserError(f"{weights}: cannot load the stage-1 generator ({error})") from None
    warp = dataclasses.replace(job.warp, matcher=config.warp_matcher)
    return VitonStage2(generator, Refinement(job.refinement, name="refinement"), perceptual, job.loss, warp,
                       config.stage2_target_mask, discriminator)


# Method name -> builder of its training model. Baselines register theirs from training/baselines.py
# (a module-level METHODS dict there is merged in when a method is not found here).
# None = nothing to learn here (layout ships its weights: `viton-tf train-layout` retrains them).
METHODS: dict[str, Callable[[TrainJob], object]] = {"viton": build_viton, "layout": None}


def method_builder(name: str) -> Callable[[TrainJob], object]:
    if name not in METHODS:
        try:
            from training import baselines
        except ModuleNotFoundError as error:
            if error.name != "training.baselines":
                raise
            baselines = None
        METHODS.update(getattr(baselines, "METHODS", {}))
    if name not in METHODS:
        raise UserError(f"--method {name}: not available (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


# --- configuration and the run folder ------------------------------------------------

def train_config(args) -> TrainConfig:
    config = TrainConfig(
        stage=args.stage or 1, method=args.method, steps=args.steps, batch_size=args.batch_size,
        height=args.height, width=args.width, vgg_weights=args.vgg_weights, gan=args.gan, strategy=args.strategy,
        seed=args.seed, checkpoint_every=getattr(args, "checkpoint_every", TrainConfig.checkpoint_every),
        image_every=getattr(args, "image_every", TrainConfig.image_every),
        cache=getattr(args, "cache", TrainConfig.cache))
    return override(config, "train", parse_overrides(getattr(args, "set", []), SECTIONS + ("train",)))


def read_run_config(run: Path) -> dict:
    """The run folder's config.json as a dict of dicts ({} when there is none yet)."""
    path = Path(run) / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None


SECTIONS = ("generator", "refinement", "discriminator", "loss", "representation", "warp", "data")


def make_job(config: TrainConfig, run: Path, overrides: dict[str, dict] | None = None) -> TrainJob:
    """Defaults (sized to the run's images), the run's saved G_C config for stage 2, then the --set overrides."""
    saved = read_run_config(run)
    job = TrainJob(config=config, run=run,
                   representation=RepresentationConfig(height=config.height, width=config.width),
                   data=DataConfig(height=config.height, width=config.width, seed=config.seed),
                   loss=dataclasses.replace(LossConfig(), adversarial=LossConfig.gan_weight_when_enabled
                                            if config.gan else 0.0))
    if config.method == "viton" and config.stage == 2 and "generator" in saved:
        job.generator = from_dict(GeneratorConfig, saved["generator"])
    for section in SECTIONS:
        setattr(job, section, override(getattr(job, section), section, overrides or {}))
    return job


def write_run_config(job: TrainJob, run: Path) -> None:
    saved = read_run_config(run)
    saved.update({name: dataclasses.asdict(getattr(job, name)) for name in SECTIONS})
    saved["method"] = job.config.method
    saved[f"train_{job.stage_name}"] = dataclasses.asdict(job.config)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(saved, indent=2, sort_keys=True))


def log_name(config: TrainConfig) -> str:
    return "log_stage2.csv" if stage_name(config) == "stage2" else "log.csv"


# --- data --------------------------------------------------------------------------------

def training_dataset(root: Path, job: TrainJob):
    """Batches of person, cloth, cloth_mask, representation, garment_mask: decoded once and cached,
    shuffled per pass, repeated forever; the representation is computed in the pipeline."""
    import tensorflow as tf

    from viton_tf.data.readers import make_dataset
    from viton_tf.representation import garment_mask, label_mask, person_representation

    config = job.config
    dataset = make_dataset(root, split="train", height=config.height, width=config.width)
    keys = ("person", "cloth", "cloth_mask", "parsing", "keypoints")
    dataset = dataset.map(lambda example: {key: example[key] for key in keys})
    if config.cache == "memory":
        dataset = dataset.cache()
    elif config.cache != "none":
        dataset = dataset.cache(config.cache)
    dataset = dataset.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(config.batch_size, drop_remainder=True)

    def features(batch):
        return {
            "person": batch["person"], "cloth": batch["cloth"], "cloth_mask": batch["cloth_mask"],
            "representation": person_representation(batch["person"], batch["parsing"], batch["keypoints"],
                                                    job.representation),
            "garment_mask": garment_mask(batch["parsing"], job.data.garment_labels),
            "occluder_mask": label_mask(batch["parsing"], job.data.occluder_labels),
        }

    dataset = dataset.map(features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Every worker reads the whole list and keeps its share of each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# --- tf.distribute -------------------------------------------------------------------------

def make_strategy(name: str):
    """(strategy, worker folder name or None for the chief)."""
    import tensorflow as tf

    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy multi-worker: set TF_CONFIG (cluster and task) in every worker's environment")
        try:
            tf_config = json.loads(os.environ["TF_CONFIG"])
            task = tf_config["task"]
        except (json.JSONDecodeError, KeyError) as error:
            raise UserError(f"TF_CONFIG: expected JSON with 'cluster' and 'task' ({error})") from None
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        chief = task["type"] == "chief" or (task["type"] == "worker" and task["index"] == 0
                                            and "chief" not in tf_config.get("cluster", {}))
        return strategy, None if chief else f"worker-{task['index']}"
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices), None
    if name == "auto" and gpus:
        return tf.distribute.MirroredStrategy(), None
    return tf.distribute.get_strategy(), None


# --- callbacks ------------------------------------------------------------------------------

def _callbacks(model, job: TrainJob, out: Path, steps_per_epoch: int, resume: bool, sample_batch, chief: bool):
    import keras
    import tensorflow as tf

    every_epochs = max(1, math.ceil(job.config.checkpoint_every / steps_per_epoch))
    stage = job.stage_name
    backup_dir = out / "backup" / stage
    log_path = out / log_name(job.config)

    class StepColumn(keras.callbacks.Callback):
        """Adds the global step to the epoch logs (before CSVLogger reads them)."""

        def on_epoch_end(self, epoch, logs=None):
            logs["step"] = (epoch + 1) * steps_per_epoch

    class Backup(keras.callbacks.BackupAndRestore):
        """BackupAndRestore at whole epochs, every `every_epochs` of them (a restart resumes at that step)."""

        def on_epoch_end(self, epoch, logs=None):
            self._current_epoch = epoch + 1
            if (epoch + 1) % every_epochs == 0:
                self._save_model()

    class NetworkCheckpoint(keras.callbacks.Callback):
        """<stem>.weights.h5 (last) and <stem>.best.weights.h5 (lowest loss) for each trained network."""

        def __init__(self, best: float):
            super().__init__()
            self.best = best

        def save(self, suffix):
            for stem, network in model.saved_networks().items():
                network.save_weights(out / f"{stem}{suffix}.weights.h5")

        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % every_epochs:
                return
            self.save("")
            if logs["loss"] < self.best:
                self.best = float(logs["loss"])
                self.save(".best")

        def on_train_end(self, logs=None):
            self.save("")
            if logs and "loss" in logs and logs["loss"] < self.best:
                self.save(".best")

    class ImageGrid(keras.callbacks.Callback):
        """TensorBoard image grid of a fixed batch (one row per sample) every `image_every` steps."""

        def __init__(self):
            super().__init__()
            self.writer = tf.summary.create_file_writer(str(out / "tensorboard" / stage / "images"))

        def on_train_batch_end(self, batch, logs=None):
            step = int(model.optimizer.iterations.numpy())
            if step % job.config.image_every == 0:
                columns = model.image_grid(sample_batch)
                grid = tf.clip_by_value(tf.concat([image for _, image in columns], axis=2), 0.0, 1.0)
                with self.writer.as_default():
                    tf.summary.image(" | ".join(name for name, _ in columns), grid, step=step, max_outputs=4)
                self.writer.flush()

    best = _truncate_log(log_path, backup_dir) if resume else math.inf
    # The log row and weights come before the backup that marks their epoch done; double_checkpoint:
    # a job killed while writing a backup restarts from the one before.
    callbacks = [StepColumn(), keras.callbacks.CSVLogger(str(log_path), append=resume and log_path.is_file()),
                 NetworkCheckpoint(best), Backup(str(backup_dir), double_checkpoint=True)]
    if chief:
        callbacks += [keras.callbacks.TensorBoard(str(out / "tensorboard" / stage), write_graph=False,
                                                  profile_batch=0), ImageGrid()]
    return callbacks


def _truncate_log(log_path: Path, backup_dir: Path) -> float:
    """Drop the rows logged after the backup a resumed run restarts from; return their best loss."""
    metadata = backup_dir / "training_metadata.json"
    if not log_path.is_file():
        return math.inf
    epoch = json.loads(metadata.read_text())["epoch"] if metadata.is_file() else 0
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [row for row in rows if int(row["epoch"]) < epoch]
    if not kept:
        log_path.unlink()
        return math.inf
    with open(log_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return min(float(row["loss"]) for row in kept)


def _logged_steps(log_path: Path) -> int:
    if not log_path.is_file():
        return 0
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return max((int(row["step"]) for row in rows), default=0)


# --- the job -----------------------------------------------------------------------------------

def run_training(args) -> int:
    config = train_config(args)
    data = Path(args.data)
    if not data.is_dir():
        raise UserError(f"--data {data}: dataset folder not found")
    if config.method == "viton" and config.stage not in (1, 2):
        raise UserError(f"--stage {config.stage}: expected 1 or 2")
    return train(config, data, Path(args.out), resume=args.resume,
                 overrides=parse_overrides(getattr(args, "set", []), SECTIONS + ("train",)))


def train(config: TrainConfig, data: Path, run: Path, resume: bool = False,
          overrides: dict[str, dict] | None = None) -> int:
    """Fit one method/stage on the dataset folder `data`, writing the run folder `run`."""
    builder = method_builder(config.method)
    if builder is None:  # nothing to learn (nonparametric, layout): the run folder only records its config
        write_run_config(make_job(config, run, overrides), run)
        print(f"{config.method}: nothing to train; wrote {run / 'config.json'}")
        return 0
    steps_per_epoch = min(config.log_every, config.steps)
    epochs = math.ceil(config.steps / steps_per_epoch)
    log_path = run / log_name(config)
    if resume and config.strategy != "multi-worker" and not (run / "backup" / stage_name(config)).exists() \
            and _logged_steps(log_path) >= epochs * steps_per_epoch:
        print(f"{log_path}: already trained for {epochs * steps_per_epoch} steps; nothing to resume")
        return 0

    import keras

    strategy, worker = make_strategy(config.strategy)  # first: multi-worker must start before other TF work
    out = run / worker if worker else run
    job = make_job(config, run, overrides)
    backup_dir = out / "backup" / job.stage_name
    if backup_dir.exists() and not resume:
        raise UserError(f"{backup_dir} holds an interrupted run: add --resume to continue it, "
                        "or delete that folder to start over")
    if epochs * steps_per_epoch != config.steps:
        print(f"training {epochs * steps_per_epoch} steps: --steps rounded up to whole logs of {steps_per_epoch}")
    if config.batch_size % strategy.num_replicas_in_sync:
        raise UserError(f"--batch-size {config.batch_size}: must be a multiple of the "
                        f"{strategy.num_replicas_in_sync} replicas")

    keras.utils.set_random_seed(config.seed)
    dataset = training_dataset(data, job)
    sample_batch = next(iter(dataset.take(1)))
    with strategy.scope():
        model = builder(job)
        model.compile(keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1),
                      keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1))
        model.build_all(sample_batch)
        model.build_optimizers([v for network in model.saved_networks().values()
                                for v in network.trainable_variables])
    if worker is None:
        write_run_config(job, run)
    out.mkdir(parents=True, exist_ok=True)
    callbacks = _callbacks(model, job, out, steps_per_epoch, resume, sample_batch, chief=worker is None)
    print(f"{config.method} {job.stage_name}: {epochs * steps_per_epoch} steps of batch {config.batch_size} at "
          f"{config.height}x{config.width} on {strategy.num_replicas_in_sync} replica(s) -> {out}", flush=True)
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, shuffle=False,
              verbose="auto" if worker is None else 0)
    sys.stdout.flush()
    return 0
