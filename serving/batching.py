"""Server-side batching of concurrent requests, as TF Serving's BasicBatchScheduler does it.

Each request is a task; batch threads take tasks from one queue, concatenate their inputs along
dim 0 until `max_batch_size` is reached or the oldest task has waited `batch_timeout_micros`,
run the signature once and hand every task its own rows of the outputs.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Callable

import grpc
import numpy as np

from serving.config import BatchOptions
from serving.status import ServingError, from_exception, invalid_argument, unavailable

log = logging.getLogger("viton-tf.serve")
Tensors = dict[str, np.ndarray]


class _Task:
    __slots__ = ("inputs", "size", "key", "enqueued_at", "done", "outputs", "error")

    def __init__(self, inputs: Tensors, size: int):
        self.inputs = inputs
        self.size = size
        # Only tasks whose non-batch shapes agree can share a batch.
        self.key = tuple(sorted((name, value.shape[1:], value.dtype.str) for name, value in inputs.items()))
        self.enqueued_at = time.monotonic()
        self.done = threading.Event()
        self.outputs: Tensors | None = None
        self.error: ServingError | None = None


class Batcher:
    """Runs `run` on batches of concurrent calls; `close` drains the queue and stops the threads."""

    def __init__(self, run: Callable[[Tensors], Tensors], options: BatchOptions, name: str):
        self._run = run
        self._options = options
        self._queue: deque[_Task] = deque()
        self._queued_size = 0
        self._closed = False
        self._cond = threading.Condition()
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # recent batch sizes, for logs and tests
        self._threads = [threading.Thread(target=self._work, name=f"batch-{name}-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    @property
    def _execution_limit(self) -> int:
        options = self._options
        if options.enable_large_batch_splitting and options.max_execution_batch_size:
            return options.max_execution_batch_size
        return options.max_batch_size

    def __call__(self, inputs: Tensors, size: int) -> Tensors:
        options = self._options
        if size > options.max_batch_size and not options.enable_large_batch_splitting:
            raise invalid_argument(f"Task size {size} is larger than maximum input batch size "
                                   f"{options.max_batch_size}")
        limit = self._execution_limit
        starts = list(range(0, size, limit)) or [0]
        tasks = [self._enqueue({name: value[start:start + limit] for name, value in inputs.items()},
                               min(limit, size - start)) for start in starts]
        for task in tasks:
            task.done.wait()
        for task in tasks:
            if task.error is not None:
                raise task.error
        if len(tasks) == 1:
            return tasks[0].outputs
        return {name: np.concatenate([task.outputs[name] for task in tasks]) for name in tasks[0].outputs}

    def _enqueue(self, inputs: Tensors, size: int) -> _Task:
        task = _Task(inputs, size)
        with self._cond:
            if self._closed:
                raise unavailable("the model version is being unloaded; retry the request")
            batches = math.ceil((self._queued_size + size) / self._execution_limit)
            if batches > self._options.max_enqueued_batches:
                raise unavailable("The batch scheduling queue to which this task was submitted is full")
            self._queue.append(task)
            self._queued_size += size
            self._cond.notify_all()
        return task

    def _next_batch(self) -> list[_Task] | None:
        limit = self._execution_limit
        timeout = self._options.batch_timeout_micros / 1e6
        with self._cond:
            while True:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return None
                deadline = self._queue[0].enqueued_at + timeout
                while self._queue and not self._closed and self._queued_size < limit:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if not self._queue:  # another batch thread took them
                    continue
                batch = [self._queue.popleft()]
                total = batch[0].size
                while self._queue and total + self._queue[0].size <= limit and self._queue[0].key == batch[0].key:
                    total += self._queue[0].size
                    batch.append(self._queue.popleft())
                self._queued_size -= total
                return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Task]) -> None:
        try:
            outputs = self._run_padded([task.inputs for task in batch])
            self.batch_sizes.append(sum(task.size for task in batch))
            start = 0
            for task in batch:
                task.outputs = {name: value[start:start + task.size] for name, value in outputs.items()}
                start += task.size
        except BaseException as error:
            if len(batch) > 1:  # one bad request must not fail its neighbours: rerun them one by one
                for task in batch:
                    self._run_batch([task])
                return
            batch[0].error = from_exception(error)
        for task in batch:
            task.done.set()

    def _run_padded(self, parts: list[Tensors]) -> Tensors:
        inputs = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        total = len(next(iter(inputs.values())))
        padded = next((size for size in self._options.allowed_batch_sizes if size >= total), total)
        if padded > total:  # TF Serving pads with copies of the first example
            inputs = {name: np.concatenate([value, np.repeat(value[:1], padded - total, axis=0)])
                      for name, value in inputs.items()}
        outputs = self._run(inputs)
        for name, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != padded:
                raise ServingError(grpc.StatusCode.INTERNAL,
                                   f"output '{name}' has shape {list(value.shape)}; batching needs outputs "
                                   f"whose first dimension is the batch ({padded})")
        return outputs

    def close(self) -> None:
        """Stop taking tasks, finish the queued ones, stop the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
