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
         "checkpoint_every", "image_every", "cache")


def experiment_from_args(args) -> ExperimentConfig:
    """The defaults, then the --config file, then the flags given, then the --set overrides."""
    experiment = load_experiment(args.config) if getattr(args, "config", None) else ExperimentConfig()
    given = {name: getattr(args, name) for name in FLAGS if getattr(args, name, None) is not None}
    experiment = experiment.sized(given.pop("height", experiment.train.height),
                                  given.pop("width", experiment.train.width))
    experiment = dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, **given))
    return experiment.with_overrides(parse_overrides(getattr(args, "set", None) or [], SECTIONS))


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

def training_dataset(root: Path, job: TrainJob):
    """Batches of person, cloth, cloth_mask, representation, garment_mask: decoded once and cached,
    shuffled per pass, repeated forever; the representation is computed in the pipeline."""
    import tensorflow as tf

    from viton_tf.data.readers import make_dataset
    from viton_tf.representation import garment_mask, label_mask, person_representation

    config = job.config
    dataset = make_dataset(root, split="train", height=config.height, width=config.width, skip_bad=job.data.skip_bad)
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
