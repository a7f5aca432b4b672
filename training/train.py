"""What a `viton-tf train` run is made of: its job (the configs), the VITON builder, the dataset, and the
run folder's config.json. training/fit.py runs it with `model.fit`; the run folder is described there."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from viton_tf.config import (SECTIONS, CAGANConfig, CRNConfig, DataConfig, DiscriminatorConfig, ExperimentConfig,
                             GeneratorConfig, LossConfig, PRGANConfig, RefinementConfig, RepresentationConfig,
                             TrainConfig, WarpConfig, from_dict, load_experiment, parse_overrides, run_record)
from viton_tf.errors import UserError


@dataclass
class TrainJob:
    """Everything a method needs to build its training model (inside the strategy's scope): the sections of
    the run's ExperimentConfig (`config` is its train section) and the run folder."""

    config: TrainConfig
    run: Path  # the run folder (stage 2 reads stage 1's weights here)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    warp: WarpConfig = field(default_factory=WarpConfig)
    data: DataConfig = field(default_factory=DataConfig)
    prgan: PRGANConfig = field(default_factory=PRGANConfig)
    cagan: CAGANConfig = field(default_factory=CAGANConfig)
    crn: CRNConfig = field(default_factory=CRNConfig)

    @classmethod
    def from_experiment(cls, experiment: ExperimentConfig, run: Path) -> "TrainJob":
        sections = {name: getattr(experiment, name) for name in SECTIONS if name != "train"}
        return cls(config=experiment.train, run=Path(run), **sections)

    @property
    def experiment(self) -> ExperimentConfig:
        return ExperimentConfig(train=self.config, **{name: getattr(self, name) for name in SECTIONS
                                                      if name != "train"})

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
    return VitonStage2(generator, Refinement(job.refinement, name="refinement"), perceptual, job.loss, job.warp,
                       config.stage2_target_mask, discriminator)


# --- configuration and the run folder ------------------------------------------------

# `viton-tf train` flag -> the train field it sets (a flag left out keeps the --config file's value).
FLAGS = ("stage", "method", "steps", "batch_size", "height", "width", "vgg_weights", "gan", "strategy", "seed",
         "checkpoint_every", "image_every", "cache", "precision", "val_split", "val_fraction", "val_every")


def experiment_from_args(args) -> ExperimentConfig:
    """The defaults, then the --config file, then the flags given, then the --set overrides."""
    experiment = load_experiment(args.config) if getattr(args, "config", None) else ExperimentConfig()
    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name, None) is not None}
    experiment = experiment.sized(given.pop("height", experiment.train.height),
                                  given.pop("width", experiment.train.width))
    experiment = dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, **given))
    if getattr(args, "skip_bad", None):
        experiment = dataclasses.replace(experiment, data=dataclasses.replace(experiment.data, skip_bad=True))
    experiment = experiment.with_overrides(parse_overrides(getattr(args, "set", None) or [], SECTIONS))
    data = getattr(args, "data", None)
    if data is not None and Path(data).is_dir() and not _gives_garment_labels(args):
        from viton_tf.data.readers import layout_garment_labels

        labels = layout_garment_labels(Path(data))
        experiment = dataclasses.replace(experiment, data=dataclasses.replace(experiment.data, garment_labels=labels))
    return experiment


def _gives_garment_labels(args) -> bool:
    """Whether --config or --set chose data.garment_labels (else the dataset's layout does)."""
    if "garment_labels" in parse_overrides(getattr(args, "set", None) or [], SECTIONS).get("data", {}):
        return True
    config = getattr(args, "config", None)
    return bool(config) and "garment_labels" in json.loads(Path(config).read_text()).get("data", {})


def read_run_config(run: Path) -> dict:
    """The run folder's config.json as a dict of dicts ({} when there is none yet)."""
    path = Path(run) / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None


def make_job(config: TrainConfig, run: Path, overrides: dict[str, dict] | None = None,
             experiment: ExperimentConfig | None = None) -> TrainJob:
    """`experiment` (default: the defaults) with `config` as its train section and sized to its images, the
    run's saved G_C config for stage 2, then the --set overrides."""
    experiment = dataclasses.replace((experiment or ExperimentConfig()).sized(config.height, config.width),
                                     train=config)
    saved = read_run_config(run)
    if config.method == "viton" and config.stage == 2 and "generator" in saved:
        experiment = dataclasses.replace(experiment, generator=from_dict(GeneratorConfig, saved["generator"]))
    return TrainJob.from_experiment(experiment.with_overrides(overrides or {}), run)


def write_run_config(job: TrainJob, run: Path) -> None:
    """RUN/config.json: every section of the job's experiment, its method and this stage's train section."""
    record = run_record(job.experiment, job.stage_name, read_run_config(run))
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(record, indent=2, sort_keys=True))


def log_name(config: TrainConfig) -> str:
    return "log_stage2.csv" if stage_name(config) == "stage2" else "log.csv"


# --- data --------------------------------------------------------------------------------

def pair_tables(root: Path, job: TrainJob):
    """(the training pairs, the validation pairs or None): checked up front (readers.pair_table)."""
    from viton_tf.data.readers import pair_table

    config, skip_bad = job.config, job.data.skip_bad
    if config.val_split not in ("", "test"):
        raise UserError(f"--val-split {config.val_split}: expected 'test' (or none)")
    if config.val_split and config.val_fraction:
        raise UserError("--val-split and --val-fraction: give one of them")
    train = pair_table(root, split="train", skip_bad=skip_bad)
    if config.val_split == "test":
        return train, pair_table(root, split="test", skip_bad=skip_bad, paired=True)
    if not config.val_fraction:
        return train, None
    held_out = max(1, round(len(train) * config.val_fraction))
    if held_out >= len(train):
        raise UserError(f"--val-fraction {config.val_fraction}: holds out all {len(train)} training pairs")
    return train.subset(0, len(train) - held_out), train.subset(len(train) - held_out, len(train))


def pair_order(pairs: int, seed: int, first: int = 0, pipeline: int = 0, pipelines: int = 1):
    """The pair indices of the training stream from position `first` on: position k is pair
    index_shuffle(k mod pairs) under the seed (seed, k // pairs), so every pass is its own seeded permutation,
    any position (a resumed step) is reached without replaying the ones before, and input pipeline p of P
    (one per worker) reads the positions k = p mod P: together each pair once per pass."""
    import tensorflow as tf

    def pair(position):
        seed_of_pass = tf.stack([tf.constant(seed, tf.int64), position // pairs])
        return tf.random.experimental.index_shuffle(position % pairs, seed_of_pass, tf.constant(pairs - 1, tf.int64))

    return tf.data.Dataset.range(first + pipeline, 2 ** 62, pipelines).map(pair)


def training_dataset(table, job: TrainJob, first_step: int = 0, pipeline: int = 0, pipelines: int = 1,
                     batch_size: int | None = None, cache: Path | None = None, names: bool = False):
    """Batches of person, cloth, cloth_mask, representation, garment_mask, occluder_mask, repeated forever,
    from training step `first_step` on: in TF ops, decoded in parallel, nothing kept in memory (without a
    cache). `pipeline` of `pipelines` with `batch_size` (its share of the global batch) is one worker's
    shard; `cache` is the file prefix of --cache file (None: that run's first batch, read without it);
    `names` adds person_name (tests)."""
    import tensorflow as tf

    from viton_tf.data.readers import decoded

    config = job.config
    batch_size = batch_size or config.batch_size
    first = first_step * config.batch_size  # the stream's position: a step takes a global batch
    if config.cache == "none" or (config.cache == "file" and cache is None):
        examples = decoded(table, pair_order(len(table), config.seed, first, pipeline, pipelines),
                           config.height, config.width, job.data.skip_bad)
    elif config.cache in ("memory", "file"):
        examples = decoded(table, tf.data.Dataset.range(len(table)), config.height, config.width, job.data.skip_bad)
        if config.cache == "file":
            cache.parent.mkdir(parents=True, exist_ok=True)
        examples = examples.cache("" if config.cache == "memory" else str(cache))
        examples = examples.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
        examples = examples.repeat().shard(pipelines, pipeline).skip(first // pipelines)
    else:
        raise UserError(f"--cache {config.cache}: expected none, file or memory")
    batches = examples.batch(batch_size, drop_remainder=True)
    return _with_features(batches, job, names).prefetch(tf.data.AUTOTUNE)


def validation_dataset(table, job: TrainJob):
    """The validation pairs once, in order, in batches (the last one may be smaller)."""
    import tensorflow as tf

    from viton_tf.data.readers import decoded

    config = job.config
    examples = decoded(table, tf.data.Dataset.range(len(table)), config.height, config.width, job.data.skip_bad)
    return _with_features(examples.batch(config.batch_size), job).prefetch(tf.data.AUTOTUNE)


def _with_features(batches, job: TrainJob, names: bool = False):
    """The batches a training model reads: the representation and the masks computed per batch in TF ops."""
    import tensorflow as tf

    from viton_tf.representation import batch_categories, label_mask, person_representation, replaced_mask

    def features(batch):
        # One model for every category: each example's category decides what its representation keeps of the
        # person and which garment is the mask target (upper: the paper's).
        extra = {"person_name": batch["person_name"]} if names else {}
        category = batch_categories(batch)
        return {
            "person": batch["person"], "cloth": batch["cloth"], "cloth_mask": batch["cloth_mask"],
            "representation": person_representation(batch["person"], batch["parsing"], batch["keypoints"],
                                                    job.representation, category),
            "garment_mask": replaced_mask(batch["parsing"], category, job.data, job.representation),
            "occluder_mask": label_mask(batch["parsing"], job.data.occluder_labels), **extra,
        }

    options = tf.data.Options()
    # Each worker's pipeline reads its own shard (pair_order): tf.data's auto-sharding stays off.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return batches.map(features, num_parallel_calls=tf.data.AUTOTUNE).with_options(options)


def distributed_training_dataset(strategy, table, job: TrainJob, first_step: int, cache: Path | None = None,
                                 names: bool = False):
    """What `model.fit` reads under `strategy`: one input pipeline per worker, each a shard of the pairs
    batched at the per-replica batch size (tf.distribute's distribute_datasets_from_function).

    Sharding is by pair, before anything is read: worker p of P decodes only the stream positions p mod P
    (pair_order), so each pair is read by one worker once per pass. tf.data's auto-sharding is off: FILE
    would shard the source files, and our source is one in-memory list of pairs (FILE falls back to DATA
    on it); DATA has every worker read and decode every pair, then keep its share of each batch, which
    spends P times the input work the training needs."""
    import tensorflow as tf

    if strategy.num_replicas_in_sync == 1 and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return training_dataset(table, job, first_step, cache=cache, names=names)

    def dataset(context):
        return training_dataset(table, job, first_step, context.input_pipeline_id, context.num_input_pipelines,
                                context.get_per_replica_batch_size(job.config.batch_size), cache, names)

    return strategy.distribute_datasets_from_function(dataset)
