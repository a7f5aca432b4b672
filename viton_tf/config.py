"""Hyperparameters and constants, one frozen dataclass per concern.

Conventions used everywhere in viton-tf:
- tensors are NHWC; images are float32 RGB in [-1, 1]; masks are float32 in [0, 1];
- parsing maps are int32 LIP label ids (see `LIP`);
- keypoints are float32 [18, 3] in COCO-18/OpenPose order: x and y in pixels of the
  image they belong to, then the detector's confidence; a missing joint is (0, 0, 0).

Defaults reproduce the VITON paper (Han et al., CVPR 2018) and its official code
(github.com/xthan/VITON, TF1 + MATLAB); each constant says where it comes from, as
`file:line` of that repository at commit 68ce054.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viton_tf.errors import UserError

# Paper's working resolution; utils.py:266-267 (resize_height=256, resize_width=192).
HEIGHT = 256
WIDTH = 192


class LIP:
    """LIP human-parsing label ids, as VITON, CP-VTON and VITON-HD ship them."""

    BACKGROUND = 0
    HAT = 1
    HAIR = 2
    GLOVE = 3
    SUNGLASSES = 4
    UPPER_CLOTHES = 5
    DRESS = 6
    COAT = 7
    SOCKS = 8
    PANTS = 9
    NECK = 10  # VITON-HD's "neck" (LIP's jumpsuits id is reused for it)
    SCARF = 11
    SKIRT = 12
    FACE = 13
    LEFT_ARM = 14
    RIGHT_ARM = 15
    LEFT_LEG = 16
    RIGHT_LEG = 17
    LEFT_SHOE = 18
    RIGHT_SHOE = 19


# DressCode's label maps (SCHP trained on ATR, 18 classes; aimagelab/dress-code data/labelmap.py) as LIP ids.
# ATR has no neck (its head holds it: the reader splits it off at the shoulders as DressCode's loader does), no
# coat, glove or socks; its belt goes with the trousers, and its bag, which LIP has no label for, is background.
DRESSCODE_TO_LIP = {
    0: LIP.BACKGROUND, 1: LIP.HAT, 2: LIP.HAIR, 3: LIP.SUNGLASSES, 4: LIP.UPPER_CLOTHES, 5: LIP.SKIRT,
    6: LIP.PANTS, 7: LIP.DRESS, 8: LIP.PANTS, 9: LIP.LEFT_SHOE, 10: LIP.RIGHT_SHOE, 11: LIP.FACE,
    12: LIP.LEFT_LEG, 13: LIP.RIGHT_LEG, 14: LIP.LEFT_ARM, 15: LIP.RIGHT_ARM, 16: LIP.BACKGROUND, 17: LIP.SCARF,
}
# DressCode's folder of each category, and the frame its keypoints are given in, (width, height), whatever the
# photo's size (data/dataset.py scales them by width/384 and height/512).
DRESSCODE_FOLDERS = {"upper": "upper_body", "lower": "lower_body", "dress": "dresses"}
DRESSCODE_KEYPOINT_FRAME = (384.0, 512.0)

# Keypoint names in COCO-18/OpenPose order (the order of the 18 pose channels).
COCO18 = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow",
    "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
# BODY_25 index of each COCO-18 joint (BODY_25 adds mid-hip 8 and the feet 19-24).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

# Parse labels the paper's representation keeps as the person's own (utils.py:59-63: hat, hair, sunglasses, face).
FACE_HAIR_LABELS = (LIP.HAT, LIP.HAIR, LIP.SUNGLASSES, LIP.FACE)


@dataclass(frozen=True)
class Category:
    """A garment category (DeepFashion's upper-body, lower-body and full-body clothes; DressCode's upper_body,
    lower_body and dresses), as LIP labels of the person wearing it."""

    name: str
    garment_labels: tuple[int, ...]  # the worn garments a try-on of this kind replaces
    skin_labels: tuple[int, ...]  # body parts the new garment may cover or expose
    kept_labels: tuple[int, ...]  # the person's own: shown to the networks as they are, never repainted


_ALL_LABELS = frozenset(range(20))
_UPPER_GARMENT = (LIP.UPPER_CLOTHES, LIP.COAT)
_LOWER_GARMENT = (LIP.PANTS, LIP.SKIRT)
_ARMS_NECK = (LIP.NECK, LIP.LEFT_ARM, LIP.RIGHT_ARM)
_LEGS = (LIP.LEFT_LEG, LIP.RIGHT_LEG)


def _rest(*taken: tuple[int, ...]) -> tuple[int, ...]:
    """Every label but the background and `taken`."""
    return tuple(sorted(_ALL_LABELS - {LIP.BACKGROUND} - {label for labels in taken for label in labels}))


# For an upper-body try-on the trousers stay, for a lower-body one the top, arms, face and hair; a dress
# replaces whatever the person wears on top and below. The upper category keeps only face and hair in the
# representation, as the paper does (so the networks redraw the rest of the person); the others keep all they
# do not replace (as DressCode's and VITON-HD's agnostic maps do), so a network never redraws the top of a
# lower-body try-on.
CATEGORIES: dict[str, Category] = {category.name: category for category in (
    Category("upper", _UPPER_GARMENT, _ARMS_NECK, FACE_HAIR_LABELS),
    Category("lower", _LOWER_GARMENT, _LEGS, _rest(_LOWER_GARMENT, _LEGS, (LIP.DRESS,))),
    Category("dress", _UPPER_GARMENT + (LIP.DRESS,) + _LOWER_GARMENT, _ARMS_NECK + _LEGS,
             _rest(_UPPER_GARMENT, (LIP.DRESS,), _LOWER_GARMENT, _ARMS_NECK, _LEGS)),
)}
CATEGORY_NAMES = tuple(CATEGORIES)


def category(name: str) -> Category:
    """The category called `name`; an unknown name is an error listing the three."""
    if name not in CATEGORIES:
        raise UserError(f"category {name!r}: unknown (choose from {', '.join(CATEGORY_NAMES)})")
    return CATEGORIES[name]


@dataclass(frozen=True)
class RepresentationConfig:
    """The 22-channel clothing-agnostic person representation (paper Sec. 3.1)."""

    height: int = HEIGHT
    width: int = WIDTH
    num_keypoints: int = 18
    # utils.py:48-52: a box from x-5 to x+5 inclusive, i.e. 11x11 ones, at 256x192;
    # scaled with the height at other resolutions.
    keypoint_box: int = 11
    # utils.py:75-78: body mask resized (AREA) to 16x12, then bilinearly back.
    body_shape_height: int = 16
    body_shape_width: int = 12
    # utils.py:59-63: "skin" (kept identity) = hat, hair, sunglasses, face.
    face_hair_labels: tuple[int, ...] = FACE_HAIR_LABELS

    @property
    def channels(self) -> int:
        return self.num_keypoints + 1 + 3


@dataclass(frozen=True)
class DataConfig:
    """Reading a dataset folder into a tf.data pipeline."""

    height: int = HEIGHT
    width: int = WIDTH
    skip_bad: bool = False  # training skips missing/corrupt pairs with a warning instead of failing
    # The one definition of the worn garment (the clothing-mask target M0): training, warp-eval, evaluate and
    # the exported try-on all read it. `viton-tf train` sets it from the dataset's layout unless a --config or
    # --set gives it (readers.layout_garment_labels: VITON-HD, CP-VTON and VITON upper wear 5, 6, 7; the
    # synthetic world the labels of its categories) and records it in the run's config.json.
    garment_labels: tuple[int, ...] = (LIP.UPPER_CLOTHES,)
    # Parse labels that can cover the worn garment: the warp matches the garment's outline
    # behind them and hides the warped garment under them.
    occluder_labels: tuple[int, ...] = (LIP.HAIR, LIP.GLOVE, LIP.LEFT_ARM, LIP.RIGHT_ARM)
    # model_zalando_tps_warp.py:219: product foreground = mean RGB < 253.9 of 255.
    cloth_foreground_threshold: float = 253.9


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic try-on world (`viton-tf synth`)."""

    pairs: int = 64
    height: int = HEIGHT
    width: int = WIDTH
    seed: int = 0
    test_fraction: float = 0.25
    categories: tuple[str, ...] = ("upper",)
    neck_label_probability: float = 0.5  # product photos showing the neck-label shadow
    jpeg_quality: int = 95
    layout: str = "vitonhd"  # or "dresscode": the same world in DressCode's layout (a reader fixture)


@dataclass(frozen=True)
class GeneratorConfig:
    """Multi-task encoder-decoder G_C (model_zalando_mask_content.py:96-170)."""

    base_filters: int = 64  # model_zalando_mask_content.py:55 (ngf=64)
    # model_zalando_mask_content.py:106-117: 64-128-256-512-512-512.
    filter_multipliers: tuple[int, ...] = (1, 2, 4, 8, 8, 8)
    kernel_size: int = 4  # utils.py:381-395 (4x4 filters, stride 2)
    leaky_relu_slope: float = 0.2  # utils.py:411 (lrelu a=0.2)
    dropout: float = 0.5  # model_zalando_mask_content.py:124 (first decoder layer only)
    batch_norm_momentum: float = 0.999  # utils.py:424 (decay=0.999)
    batch_norm_epsilon: float = 1e-5
    # Batch statistics over the global batch under tf.distribute (the official code ran on one GPU).
    synchronized_batch_norm: bool = True


@dataclass(frozen=True)
class RefinementConfig:
    """Refinement network G_R (model_zalando_tps_warp.py:194-213)."""

    filters: int = 64  # three 3x3x64 convolutions with layer norm and lrelu
    num_layers: int = 3
    kernel_size: int = 3
    leaky_relu_slope: float = 0.2


@dataclass(frozen=True)
class DiscriminatorConfig:
    """PatchGAN discriminator (pix2pix, Isola et al. 2017); ndf=64 as utils' flags."""

    base_filters: int = 64  # model_zalando_mask_content.py:57 (ndf=64)
    num_layers: int = 3  # pix2pix's 70x70 PatchGAN
    leaky_relu_slope: float = 0.2
    gan_loss: str = "lsgan"  # "lsgan" or "hinge"


@dataclass(frozen=True)
class LossConfig:
    """Loss weights of both stages."""

    # Stage 1, model_zalando_mask_content.py:76-78.
    stage1_perceptual: float = 3.0
    stage1_l1: float = 1.0
    stage1_mask_l1: float = 1.0
    # Stage 2, model_zalando_tps_warp.py:78-81.
    stage2_l1: float = 0.2
    stage2_perceptual: float = 0.8
    stage2_mask: float = 0.1  # subtracted: rewards using the warped cloth
    stage2_tv: float = 5e-6
    # VGG19 layers and their normalisers, model_zalando_mask_content.py:199-210:
    # each layer's L1 is divided by these, then the sum by 5 (stage 1) or 3 (stage 2)
    # and by 128 ("to normalise to [0, 1]").
    vgg_layers: tuple[str, ...] = (
        "block1_conv2", "block2_conv2", "block3_conv2", "block4_conv2", "block5_conv2",
    )
    vgg_layer_weights: tuple[float, ...] = (
        2.5 / 5.3, 1.0 / 2.7 / 1.2, 1.0 / 1.35 / 2.3, 1.0 / 0.67 / 8.2, 1.0 / 0.16,
    )
    stage2_vgg_layers: tuple[str, ...] = ("block3_conv2", "block4_conv2", "block5_conv2")
    perceptual_normaliser: float = 128.0
    adversarial: float = 0.1  # the PatchGAN term's weight, when `train.gan` (--gan) adds one


@dataclass(frozen=True)
class TrainConfig:
    """A training run: config in, checkpoints out."""

    stage: int = 1
    method: str = "viton"
    steps: int = 1000
    batch_size: int = 16  # model_zalando_mask_content.py:52
    height: int = HEIGHT
    width: int = WIDTH
    learning_rate: float = 2e-4  # model_zalando_mask_content.py:74
    beta_1: float = 0.5  # model_zalando_mask_content.py:75
    vgg_weights: str = "imagenet"  # "imagenet", "none" or a path to a .weights.h5 / .h5
    gan: bool = False
    strategy: str = "auto"  # "auto", "mirrored", "multi-worker", "default"
    seed: int = 0
    log_every: int = 10  # model_zalando_mask_content.py:50 (log_every_n_steps=10)
    image_every: int = 100  # model_zalando_mask_content.py:60 (summary_freq=100)
    checkpoint_every: int = 500  # steps between backups and weight files (rounded up to log_every)
    # Decoded examples: "none" (decoded each pass: memory bounded whatever the dataset's size), "file" (tf.data's
    # disk cache under the run folder, RUN/cache/), or "memory" (~1.6 MB a pair at 256x192: small datasets only).
    cache: str = "none"
    shuffle_buffer: int = 256  # with a cache only; without one every pass is a full seeded permutation
    precision: str = "float32"  # "float32", "mixed_float16" (GPUs; with loss scaling) or "mixed_bfloat16"
    # Validation: the losses on held-out pairs every `val_every` steps (rounded up to log_every), as val_*
    # columns: the test split's pairs, each person with their own garment ("test"), or the last
    # `val_fraction` of the training pairs; "" and 0: none.
    val_split: str = ""
    val_fraction: float = 0.0
    val_every: int = 100
    # Stage 2 warps the cloth onto, and keeps alpha inside, G_C's predicted mask ("predicted", as at test
    # time, model_zalando_refine_test.py:138) or the parsed garment ("ground_truth", as the official
    # training did: prepare_data/extract_tps.m:27-35, model_zalando_tps_warp.py:258).
    stage2_target_mask: str = "predicted"


@dataclass(frozen=True)
class WarpConfig:
    """Shape-context TPS matching (shape_context/tps_main.m:8-21)."""

    num_points: int = 100  # tps_main.m:10 (nsamp)
    dummy_fraction: float = 0.25  # tps_main.m:12 (ndum_frac)
    dummy_cost: float = 0.25  # tps_main.m:11 (eps_dum)
    angle_bins: int = 12  # tps_main.m:15 (nbins_theta)
    radius_bins: int = 5  # tps_main.m:16 (nbins_r)
    radius_inner: float = 1.0 / 8.0  # tps_main.m:17 (r_inner)
    radius_outer: float = 2.0  # tps_main.m:18 (r_outer)
    iterations: int = 6  # tps_main.m:20 (n_iter)
    orientation_weight: float = 0.1  # tps_main.m:14 (ori_weight; tangent cost, tps_main.m:127)
    min_boundary_pixels: int = 16  # fewer boundary pixels at 64x48: identity warp
    affine_lambda: float = 1000.0  # tps_main.m:113 (first iteration, lambda_o)
    beta_init: float = 1.0  # tps_main.m:21; beta_k = mean_dist^2 * lambda_o (tps_main.m:120)
    match_height: int = 64  # the matching runs on masks at 64x48
    match_width: int = 48
    control_grid: int = 10  # model_zalando_tps_warp.py:227 (10x10 control points)
    flow_stride: int = 4  # the dense flow is exact every 4th pixel, bilinear between (tps.py)
    matcher: str = "sinkhorn"
    sinkhorn_iterations: int = 10  # with epsilon annealing; 20 gives the same IoU (README, Warp)
    sinkhorn_epsilon: float = 0.005  # costs are in [0, 1]; 0.02 still blurs neighbouring points
    sinkhorn_epsilon_start: float = 0.1  # annealed down to sinkhorn_epsilon
    collar_fix: bool = True
    neck_label_fix: bool = True
    # Occluders (arms, hands, hair) with garment on both sides within this many matching-grid
    # pixels (1/4 of the garment's width at 64x48) count as garment for the matching.
    occlusion_reach: int = 8


@dataclass(frozen=True)
class ServingConfig:
    """Export and serving defaults."""

    model_name: str = "viton"
    max_request_bytes: int = 16 * 1024 * 1024
    max_batch_size: int = 8


@dataclass(frozen=True)
class PRGANConfig:
    """PRGAN baseline (VITON paper Sec. 4.2): pix2pix on the representation without face and hair."""

    # Channels 0..18 of the representation: the 18 keypoint boxes and the body shape.
    representation_channels: int = 19
    # pix2pix (Isola et al. 2017, Sec. 4): L1 weighted 100 against an adversarial weight of 1.
    l1: float = 100.0
    adversarial: float = 1.0


@dataclass(frozen=True)
class CAGANConfig:
    """CAGAN baseline (Jetchev & Bergmann 2017, Sec. 3): person and two cloths in, image and alpha out."""

    cycle: float = 1.0  # gamma_c, weight of the cycle (swap back to the worn cloth) L1
    alpha: float = 0.1  # gamma_i, weight of the L1 on the alpha mask (keeps the person unchanged)
    adversarial: float = 1.0


@dataclass(frozen=True)
class CRNConfig:
    """CRN baseline (Chen & Koltun 2017, Sec. 3): refinement modules from coarse to full resolution."""

    coarsest_height: int = 8  # 8x6 at 256x192, as the paper's 4x8 start for its 256x512 images
    # The paper keeps 1024 features up to 256x512; here the coarsest module has max_filters and
    # each finer one half as many, down to min_filters (a CPU-sized budget).
    max_filters: int = 512
    min_filters: int = 64
    leaky_relu_slope: float = 0.2  # the paper's lrelu


SIZED = ("train", "data", "representation")  # the sections that carry the image size


@dataclass(frozen=True)
class ExperimentConfig:
    """The root: every section of one experiment. Named experiments are configs/*.json; a run folder's
    config.json records the one it was trained with. `to_dict()`/`from_dict()` round-trip it whole, and an
    unknown section or field is an error naming it. The image size is one: `train.height`/`train.width`,
    which `data` and `representation` repeat (`sized` sets all three)."""

    data: DataConfig = field(default_factory=DataConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    warp: WarpConfig = field(default_factory=WarpConfig)
    prgan: PRGANConfig = field(default_factory=PRGANConfig)
    cagan: CAGANConfig = field(default_factory=CAGANConfig)
    crn: CRNConfig = field(default_factory=CRNConfig)

    def __post_init__(self):
        sizes = {f"{name}.height/width": (getattr(self, name).height, getattr(self, name).width) for name in SIZED}
        if len(set(sizes.values())) > 1:
            raise UserError("the image size must be one: " + ", ".join(f"{k} {h}x{w}" for k, (h, w) in sizes.items()))

    def sized(self, height: int, width: int) -> "ExperimentConfig":
        """This experiment at another image size (every section that carries it)."""
        return dataclasses.replace(self, **{name: dataclasses.replace(getattr(self, name), height=height, width=width)
                                            for name in SIZED})

    def to_dict(self) -> dict[str, dict]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "ExperimentConfig":
        """From a dict of sections, each with any of its fields (the rest keep their defaults). A size given
        in one of train, data, representation is the size of all three; two different ones are an error."""
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise UserError(f"{source}: unknown section(s) {unknown} (sections: {', '.join(SECTIONS)})")
        sections = {}
        for name, section_values in values.items():
            if not isinstance(section_values, dict):
                raise UserError(f"{source}: section {name!r} must be an object of fields, got {section_values!r}")
            sections[name] = _section(SECTION_TYPES[name], section_values, f"{source}: {name}")
        sizes = {(name, axis): section_values[axis] for name, section_values in values.items()
                 if name in SIZED for axis in ("height", "width")
                 if axis in section_values}
        for axis in ("height", "width"):
            given = {value for (_, a), value in sizes.items() if a == axis}
            if len(given) > 1:
                raise UserError(f"{source}: {axis} must be one, got " + ", ".join(
                    f"{name}.{a}={value}" for (name, a), value in sorted(sizes.items()) if a == axis))
        height = next((v for (_, a), v in sizes.items() if a == "height"), HEIGHT)
        width = next((v for (_, a), v in sizes.items() if a == "width"), WIDTH)
        for name in SIZED:
            sections[name] = dataclasses.replace(sections.get(name, SECTION_TYPES[name]()), height=height, width=width)
        return cls(**sections)

    def with_overrides(self, overrides: dict[str, dict]) -> "ExperimentConfig":
        """This experiment with the fields that `overrides` ({section: {field: value}}, as `parse_overrides`
        gives them) replaced; a size override resizes every section that carries the size."""
        config = self
        for section in overrides:
            if section not in SECTIONS:
                raise UserError(f"--set {section}.*: no such section (sections: {', '.join(SECTIONS)})")
            replaced = override(getattr(config, section), section, overrides)
            if section in SIZED:
                config = config.sized(replaced.height, replaced.width)
            config = dataclasses.replace(config, **{section: replaced})
        return config


SECTION_TYPES: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(ExperimentConfig)}
SECTIONS = tuple(SECTION_TYPES)


def _section(cls: type, values: dict, source: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"{source}.{unknown[0]}: no such field (fields: {', '.join(sorted(names))})")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _read_sections(path: Path, what: str) -> dict:
    """A JSON object of config sections, or a UserError naming the file."""
    try:
        values = json.loads(path.read_text())
    except OSError as error:
        raise UserError(f"{path}: cannot read {what} ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected an object of sections")
    return values


def load_experiment(path) -> ExperimentConfig:
    """A named experiment (configs/*.json): sections with the fields that differ from the defaults."""
    path = Path(path)
    values = _read_sections(path, "the experiment config")
    values = {k: v for k, v in values.items() if k != "description"}  # a named experiment says what it is
    return ExperimentConfig.from_dict(values, str(path))


# Keys of a run folder's config.json beside the sections: the method, and each stage's train section
# ("train_stage1", "train_stage2", "train_<method>") as it was when that stage ran.
RUN_METHOD_KEY = "method"
RUN_STAGE_PREFIX = "train_"
# Fields that run folders written before the root config still record; reading a run drops them (they
# did nothing, or another field says the same: WarpConfig.matcher, LossConfig.adversarial, TrainConfig.seed).
RETIRED_FIELDS = {"data": ("split", "shuffle", "seed"), "loss": ("gan_weight_when_enabled",),
                  "train": ("warp_matcher",)}


def load_run_config(run_dir) -> ExperimentConfig:
    """The experiment a run folder's config.json records (as `viton-tf train` writes it: the sections, the
    method and each stage's train section). Without a train section (a hand-written file) the latest stage's,
    else just the method."""
    path = Path(run_dir) / "config.json"
    saved = _read_sections(path, "the run's config")
    sections = {k: v for k, v in saved.items() if k != RUN_METHOD_KEY and not k.startswith(RUN_STAGE_PREFIX)}
    if "train" not in sections:
        stages = sorted(k for k in saved if k.startswith(RUN_STAGE_PREFIX))
        sections["train"] = dict(saved[stages[-1]]) if stages else {}
        if RUN_METHOD_KEY in saved:
            sections["train"]["method"] = saved[RUN_METHOD_KEY]
    sections = {name: {k: v for k, v in values.items() if k not in RETIRED_FIELDS.get(name, ())}
                if isinstance(values, dict) else values for name, values in sections.items()}
    return ExperimentConfig.from_dict(sections, str(path))


def run_record(experiment: ExperimentConfig, stage_name: str, saved: dict | None = None) -> dict:
    """What a run folder's config.json holds after a stage ran: `saved` (the file so far) updated with every
    section, the method, and this stage's train section under "train_<stage name>"."""
    record = dict(saved or {})
    record.update(experiment.to_dict())
    record[RUN_METHOD_KEY] = experiment.train.method
    record[RUN_STAGE_PREFIX + stage_name] = dataclasses.asdict(experiment.train)
    return record


def to_json(config: Any) -> str:
    """A config dataclass as JSON (run folders store their config this way)."""
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)


def from_dict(cls: type, values: dict) -> Any:
    """Build `cls` from a dict, turning lists back into tuples and naming unknown keys."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def parse_overrides(items: list[str], sections: tuple[str, ...]) -> dict[str, dict]:
    """--set ["generator.base_filters=32", ...] -> {"generator": {"base_filters": 32}}; values are JSON or strings."""
    parsed_sections: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in sections:
            raise UserError(f"--set {item}: expected SECTION.FIELD=VALUE with SECTION one of {', '.join(sections)}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        parsed_sections.setdefault(section, {})[name] = tuple(parsed) if isinstance(parsed, list) else parsed
    return parsed_sections


def override(config, section: str, overrides: dict[str, dict]):
    """`config` (a dataclass) with the fields that `overrides[section]` names replaced."""
    values = overrides.get(section, {})
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"--set {section}.{unknown[0]}: no such field (fields: {', '.join(sorted(names))})")
    return dataclasses.replace(config, **values)
