"""TF Serving's two config files, parsed with TF Serving's own protos.

`models.config` is a `ModelServerConfig` text proto (tensorflow_serving.config ships its
Python module). `batching.config` is a `BatchingParameters` text proto; that message lives in
tensorflow_serving/servables/tensorflow/session_bundle_config.proto, which the pip package does
not ship, so it is declared here field for field (same names, numbers and types), which makes
the text format accept and reject exactly what tensorflow_model_server does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2


def _batching_parameters_class():
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    label, int64 = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, descriptor_pb2.FieldDescriptorProto.TYPE_INT64
    wrapped = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    # session_bundle_config.proto at tensorflow/serving@9d981c5, message BatchingParameters.
    for name, number, kind in (("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
                               ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
                               ("thread_pool_name", 5, "StringValue"),
                               ("enable_large_batch_splitting", 8, "BoolValue"),
                               ("max_execution_batch_size", 9, "Int64Value")):
        message.field.add(name=name, number=number, label=label, type=wrapped,
                          type_name=f".google.protobuf.{kind}")
    message.field.add(name="allowed_batch_sizes", number=6, type=int64,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, label=label,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


@dataclass(frozen=True)
class BatchOptions:
    """The batching parameters with TF Serving's defaults filled in (BasicBatchScheduler::Options)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0


def _parse(path: Path, message, what: str):
    try:
        return text_format.Parse(Path(path).read_text(), message)
    except (OSError, text_format.ParseError) as error:
        raise ValueError(f"{path}: not a valid {what} text proto: {error}") from None


def read_model_config(path: Path) -> list:
    """The `ModelConfig`s of a `model_config_list` file, checked as tensorflow_model_server checks them."""
    config = _parse(path, model_server_config_pb2.ModelServerConfig(), "ModelServerConfig")
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: expected a model_config_list")
    models = list(config.model_config_list.config)
    names = [model.name for model in models]
    if not models:
        raise ValueError(f"{path}: model_config_list has no config")
    for model in models:
        if not model.name or not model.base_path:
            raise ValueError(f"{path}: every config needs a name and a base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {model.name!r}: only model_platform \"tensorflow\" is served")
        if names.count(model.name) > 1:
            raise ValueError(f"{path}: model name {model.name!r} appears twice")
    return models


def read_batching_config(path: Path) -> BatchOptions:
    params = _parse(path, BatchingParameters(), "BatchingParameters")
    defaults = BatchOptions()
    options = BatchOptions(
        **{name: getattr(params, name).value if params.HasField(name) else getattr(defaults, name)
           for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
                        "enable_large_batch_splitting", "max_execution_batch_size")},
        allowed_batch_sizes=tuple(params.allowed_batch_sizes))
    if options.max_batch_size < 1 or options.num_batch_threads < 1 or options.max_enqueued_batches < 1:
        raise ValueError(f"{path}: max_batch_size, num_batch_threads and max_enqueued_batches must be >= 1")
    sizes = options.allowed_batch_sizes
    if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != options.max_batch_size):
        raise ValueError(f"{path}: allowed_batch_sizes must increase and end with max_batch_size "
                         f"({options.max_batch_size}), got {list(sizes)}")
    return options
