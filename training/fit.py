"""`viton-tf train`: config in, checkpoints out; `model.fit` under a tf.distribute strategy.

Run folder RUN/: config.json (every config of the run), <network>.weights.h5 (last) and
<network>.best.weights.h5 (lowest validation loss, or training loss without validation), log.csv (log_stage2.csv for stage 2), backup/<stage>/
(what --resume continues from), tensorboard/<stage>/ (train/ and validation/ scalars and images/ grids, all on the global step),
cache/<stage>/ (with --cache file). Non-chief workers of a
multi-worker run write the same files under RUN/worker-<index>/. What a run is made of (its job, the
VITON builder, the dataset, the run folder's config) is in training/train.py.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Callable

from training.train import (TrainJob, build_viton, distributed_training_dataset, experiment_from_args, log_name,
                            make_job, pair_tables, stage_name, training_dataset, validation_dataset,
                            write_run_config)
from viton_tf import methods
from viton_tf.config import SECTIONS, ExperimentConfig, parse_overrides
from viton_tf.errors import UserError


def builders() -> dict[str, Callable[[TrainJob], object]]:
    """Each trainable method of viton_tf.methods -> the builder of its training model (from the job's
    sections: the baselines' own, e.g. --set prgan.l1=50, included)."""
    from training import baselines
    from viton_tf import losses
    from viton_tf.models.baselines.cagan import CAGAN
    from viton_tf.models.baselines.crn import CRN
    from viton_tf.models.baselines.prgan import PRGAN

    def prgan(job):
        return baselines.PRGANTraining(PRGAN(job.prgan, job.generator, name="prgan"), job.discriminator)

    def cagan(job):
        return baselines.CAGANTraining(CAGAN(job.cagan, job.generator, name="cagan"), job.discriminator)

    def crn(job):
        perceptual = losses.PerceptualLoss(job.loss.vgg_layers, job.loss, job.config.vgg_weights, job.config.seed)
        return baselines.CRNTraining(CRN(job.crn, job.config.height, job.config.width, name="crn"), perceptual)

    return {"viton": build_viton, "encoder_decoder": baselines.build_encoder_decoder,
            "prgan": prgan, "cagan": cagan, "crn": crn}


def method_builder(name: str) -> Callable[[TrainJob], object] | None:
    """The builder of the method's training model; None for a method with nothing to learn."""
    if name not in methods.METHODS:
        raise UserError(f"--method {name}: not available (known: {', '.join(sorted(methods.NAMES))})")
    return builders()[name] if methods.METHODS[name].trainable else None


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

def _callbacks(job: TrainJob, out: Path, steps_per_epoch: int, resume: bool, sample_batch, chief: bool,
               loss_names: list[str], validation: bool) -> list:
    import keras

    from training.callbacks import Backup, ImageGrid, NetworkCheckpoint, Scalars, StepColumn

    every_epochs = max(1, math.ceil(job.config.checkpoint_every / steps_per_epoch))
    log_path = out / log_name(job.config)
    monitor = "val_loss" if validation else "loss"  # what .best weights are chosen by
    best = _truncate_log(log_path, out / "backup" / job.stage_name, monitor) if resume else math.inf
    # The log row and weights come before the backup that marks their epoch done; a job killed while
    # writing a backup restarts from the one before.
    callbacks = [StepColumn(steps_per_epoch, [f"val_{name}" for name in loss_names] if validation else []),
                 keras.callbacks.CSVLogger(str(log_path), append=resume and log_path.is_file()),
                 NetworkCheckpoint(out, every_epochs, best, monitor), Backup(out / "backup" / job.stage_name, every_epochs)]
    if chief:
        tensorboard = out / "tensorboard" / job.stage_name
        callbacks += [Scalars(tensorboard), ImageGrid(tensorboard / "images", sample_batch, job.config.image_every)]
    return callbacks


def _truncate_log(log_path: Path, backup_dir: Path, monitor: str = "loss") -> float:
    """Drop the rows logged after the backup a resumed run restarts from; return their best `monitor`."""
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
    values = [float(row[monitor]) for row in kept if row.get(monitor) not in (None, "", "nan", "NA")]
    values = [value for value in values if not math.isnan(value)]
    return min(values, default=math.inf)


def _logged_steps(log_path: Path) -> int:
    if not log_path.is_file():
        return 0
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return max((int(row["step"]) for row in rows), default=0)


# --- the job -----------------------------------------------------------------------------------

def run_training(args) -> int:
    """`viton-tf train`: the experiment (defaults, --config, flags, --set) fitted on --data into --out."""
    experiment = experiment_from_args(args)
    data = Path(args.data)
    if not data.is_dir():
        raise UserError(f"--data {data}: dataset folder not found")
    if experiment.train.method == "viton" and experiment.train.stage not in (1, 2):
        raise UserError(f"--stage {experiment.train.stage}: expected 1 or 2")
    return train(experiment, data, Path(args.out), resume=args.resume,
                 overrides=parse_overrides(getattr(args, "set", None) or [], SECTIONS))


def train(experiment: ExperimentConfig, data: Path, run: Path, resume: bool = False,
          overrides: dict[str, dict] | None = None) -> int:
    """Fit one method/stage on the dataset folder `data`, writing the run folder `run`; `overrides` (the
    --set ones, already in `experiment`) are applied again over a stage-2 run's saved G_C config."""
    config = experiment.train
    builder = method_builder(config.method)
    if builder is None:  # nothing to learn (nonparametric): the run folder only records its config
        write_run_config(make_job(config, run, overrides, experiment), run)
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

    from training.callbacks import Backup
    from training.trainers import TrainingModel

    strategy, worker = make_strategy(config.strategy)  # first: multi-worker must start before other TF work
    out = run / worker if worker else run
    job = make_job(config, run, overrides, experiment)
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
    train_pairs, validation_pairs = pair_tables(data, job)
    sample_batch = next(iter(training_dataset(train_pairs, job).take(1)))
    if config.precision not in PRECISIONS:
        raise UserError(f"--precision {config.precision}: expected one of {', '.join(PRECISIONS)}")
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        with strategy.scope():
            model = builder(job)
            model.compile(*[_optimizer(config) for _ in range(2)])
            model.build_all(sample_batch)
            model.build_optimizers([v for network in model.saved_networks().values()
                                    for v in network.trainable_variables])
    finally:  # the policy applies when layers are made: the built model keeps it
        keras.mixed_precision.set_global_policy(policy)
    if validation_pairs is not None and type(model).loss_terms is TrainingModel.loss_terms:
        raise UserError(f"--method {config.method}: validation is not available for this method "
                        "(drop --val-split / --val-fraction)")
    if worker is None:
        write_run_config(job, run)
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        with strategy.scope():
            initial_epoch = Backup.restore(model, backup_dir)
    else:
        initial_epoch = 0
    dataset = distributed_training_dataset(strategy, train_pairs, job, initial_epoch * steps_per_epoch,
                                           out / "cache" / job.stage_name / "train")
    validation = {}
    if validation_pairs is not None:
        validation = {"validation_data": validation_dataset(validation_pairs, job),
                      "validation_steps": math.ceil(len(validation_pairs) / config.batch_size),
                      "validation_freq": max(1, math.ceil(config.val_every / steps_per_epoch))}
    callbacks = _callbacks(job, out, steps_per_epoch, resume, sample_batch, worker is None,
                           [metric.name for metric in model.metrics], bool(validation))
    print(f"{config.method} {job.stage_name}: {epochs * steps_per_epoch} steps of batch {config.batch_size} at "
          f"{config.height}x{config.width} on {strategy.num_replicas_in_sync} replica(s), {config.precision}, "
          f"{len(train_pairs)} training pairs"
          + (f", {len(validation_pairs)} validation pairs" if validation_pairs is not None else "")
          + f" -> {out}", flush=True)
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, shuffle=False,
              initial_epoch=initial_epoch, verbose="auto" if worker is None else 0, **validation)
    sys.stdout.flush()
    return 0


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _optimizer(config):
    """Adam as the paper's; under mixed_float16 wrapped in a LossScaleOptimizer (dynamic loss scaling)."""
    import keras

    optimizer = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1)
    return keras.optimizers.LossScaleOptimizer(optimizer) if config.precision == "mixed_float16" else optimizer
