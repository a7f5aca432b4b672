"""What PRGAN and CAGAN share: a baseline built around the VITON encoder-decoder, with its own config."""
from __future__ import annotations

import dataclasses

import keras

from viton_tf.config import GeneratorConfig, from_dict
from viton_tf.models.generator import Generator


class GeneratorBaseline(keras.Model):
    """Holds `generator` (G_C's U-Net) and the method's `config` (an instance of `config_class`)."""

    config_class: type

    def __init__(self, config=None, generator_config: GeneratorConfig = GeneratorConfig(), **kwargs):
        super().__init__(**kwargs)
        self.config = config if config is not None else self.config_class()
        self.generator_config = generator_config
        self.generator = Generator(generator_config, name="generator")

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config),
                "generator_config": dataclasses.asdict(self.generator_config)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config=from_dict(cls.config_class, config.pop("config")),
                   generator_config=from_dict(GeneratorConfig, config.pop("generator_config")), **config)
