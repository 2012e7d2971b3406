"""Runs a model in dygraph, alone or data-parallel under Paddle's fleet; knows nothing about ERNIE.

The interface is `StaticRunner`'s: `step(step, feed, learning_rate)`, `state()`, `load_state()`.
`model_fn()` returns a `paddle.nn.Layer` whose forward takes the feed dict (as tensors) and returns
a dict of tensors with a `loss`. With `distributed=True` the process must have been started by
`python -m paddle.distributed.launch`: fleet's collective mode (gloo on CPU, NCCL on GPU)
averages the gradients of the ranks before every update, so all ranks keep identical parameters.
The static runner does the same with the averaging in its program; this runner has no mixed
precision, because Paddle 3.3.1's dygraph `auto_cast` and `GradScaler` switch themselves off on
a CPU (they run on CUDA, XPU and custom devices only), so nothing of them could be tested here.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Callable, Dict, Mapping

import numpy as np
import paddle

from .nonfinite import SKIPPED
from .static_runner import FedLearningRate, step_seed


class DygraphRunner:
    """`accumulate` k > 1: a step takes a list of up to k micro-batch feeds, adds the gradients of
    each one's loss / their number (data parallelism reduces them once, after the last) and
    updates once. A step whose loss or gradient is not finite is skipped on every rank (`skipped`
    in the last output)."""

    def __init__(self, model_fn: Callable[[], paddle.nn.Layer],
                 optimizer_fn: Callable[[FedLearningRate, list], paddle.optimizer.Optimizer], seed: int,
                 distributed: bool = False, accumulate: int = 1):
        if accumulate < 1:
            raise ValueError(f"accumulate must be at least 1, got {accumulate}")
        self.seed = seed
        self.accumulate = accumulate
        self.distributed = distributed
        self.rank = 0
        self.learning_rate = FedLearningRate()
        paddle.seed(seed)
        self.model = model_fn()
        self.model.train()
        self.optimizer = optimizer_fn(self.learning_rate, self.model.parameters())
        self.param_names = [p.name for p in self.model.parameters()]
        self._forward = self.model
        if distributed:
            from paddle.distributed import fleet
            fleet.init(is_collective=True)
            self.rank = fleet.worker_index()
            self._forward = fleet.distributed_model(self.model)
            self.optimizer = fleet.distributed_optimizer(self.optimizer)

    def step(self, step: int, feed, learning_rate: float):
        """One update from a feed, or from a list of `accumulate` micro-batch feeds (then the
        list of their outputs is returned)."""
        self.learning_rate.set(learning_rate)
        feeds = feed if self.accumulate > 1 else [feed]
        if not 1 <= len(feeds) <= self.accumulate or not all(isinstance(f, Mapping) for f in feeds):
            raise ValueError(f"step {step}: expected 1 to {self.accumulate} micro-batch feed(s), got {len(feeds)}")
        outs = []
        for j, micro in enumerate(feeds):
            paddle.seed(step_seed(self.seed, step * self.accumulate + j, self.rank))
            last = j == len(feeds) - 1
            # data parallelism all-reduces in the backward pass: only in the last micro-batch's
            with contextlib.nullcontext() if last or not self.distributed else self._forward.no_sync():
                out = self._forward({name: paddle.to_tensor(value) for name, value in micro.items()})
                (out["loss"] / len(feeds) if len(feeds) > 1 else out["loss"]).backward()
            outs.append({name: value.numpy() for name, value in out.items()})
        skipped = self._nonfinite(outs)
        if not skipped:
            self.optimizer.step()
        self.optimizer.clear_grad()
        outs[-1][SKIPPED] = skipped
        return outs if self.accumulate > 1 else outs[0]

    def _nonfinite(self, outs) -> bool:
        """Whether any micro-batch's loss, on any rank, or the reduced gradient is not finite:
        such a step is skipped on every rank (`propeller.nonfinite` does the same in programs)."""
        bad = any(not np.all(np.isfinite(o["loss"])) for o in outs)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not bad and grads:
            bad = not bool(paddle.stack([paddle.isfinite(g).all() for g in grads]).all())
        if self.distributed:  # the gradients agree across ranks; the losses need telling
            flag = paddle.to_tensor([1.0 if bad else 0.0])
            paddle.distributed.all_reduce(flag)
            bad = float(flag.numpy()[0]) > 0
        return bad

    def state(self) -> Dict[str, np.ndarray]:
        state = {p.name: p.numpy() for p in self.model.parameters()}
        for name, value in self.optimizer.state_dict().items():
            if isinstance(value, paddle.Tensor):
                state[name] = value.numpy()
        return state

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        missing = [p.name for p in self.model.parameters() if p.name not in state]
        if missing:
            raise KeyError(f"checkpoint lacks parameter {missing[0]}")
        self.assign({name: state[name] for name in self.param_names})
        # accumulators are created at the first update; the optimizer keeps these until then. Its
        # learning rate is fed at every step (FedLearningRate): the scheduler's own state, which
        # Paddle requires beside the accumulators, is the one it has.
        scheduler = self.optimizer._learning_rate
        self.optimizer.set_state_dict({**{name: paddle.to_tensor(value) for name, value in state.items()
                                          if name not in self.param_names},
                                       **({"LR_Scheduler": scheduler.state_dict()}
                                          if isinstance(scheduler, paddle.optimizer.lr.LRScheduler) else {})})

    def assign(self, values: Mapping[str, np.ndarray]) -> None:
        """Sets the given parameters to the given values; shapes must fit."""
        by_name = {p.name: p for p in self.model.parameters()}
        for name, value in values.items():
            if name not in by_name:
                raise KeyError(f"the model has no parameter {name}")
            p = by_name[name]
            if tuple(p.shape) != tuple(value.shape):
                raise ValueError(f"parameter {name}: model has shape {tuple(p.shape)}, given {tuple(value.shape)}")
            p.set_value(value)

    def parameters_digest(self) -> str:
        digest = hashlib.sha256()
        for p in sorted(self.model.parameters(), key=lambda p: p.name):
            digest.update(p.name.encode())
            digest.update(np.ascontiguousarray(p.numpy()).tobytes())
        return digest.hexdigest()
