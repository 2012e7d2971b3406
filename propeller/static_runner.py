"""Runs a model function as a Paddle static (PIR) training program; knows nothing about ERNIE.

`model_fn()` is called under a fresh program guard and returns (feeds, fetches, loss): the
`paddle.static.data` inputs by name, the values to fetch by name, and the value to minimise. The
runner adds the optimizer, initialises the parameters in a scope of its own, and runs one step
per `step()`. Its state (every persistable variable: parameters and optimizer accumulators) is
read and written as numpy arrays by name, for checkpoints in any safe format.

Dropout is seeded per step (and rank), so a resumed run draws the same masks as an
uninterrupted one.

Data parallelism (`distributed=True`, in a process started by `python -m paddle.distributed.launch`):
every rank runs the same program on its own batch, and the program itself averages the gradients
across ranks (an all-reduce op per gradient, over gloo on CPU and NCCL on GPU) between the
backward pass and the update, so every rank applies the same update to the same parameters, and
mixed precision, loss scaling and the fused CPU kernels work as in one process. Paddle's fleet
static collective (`fleet.distributed_optimizer(...).minimize`) cannot run this on Paddle 3.3.1:
under PIR it fails in `Program.clone(for_test=...)` with a TypeError, and under the legacy IR it
asks for a GPU or XPU build.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import paddle

from .mixed_precision import LOSS_SCALE_PREFIX, MixedPrecision, has_gpu, minimize


@contextlib.contextmanager
def static_mode():
    """Static graph mode inside the block; the previous mode is restored after it."""
    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        yield
    finally:
        if was_dynamic:
            paddle.disable_static()


def default_place():
    """The first GPU where this is a CUDA build that sees one, else the CPU."""
    return paddle.CUDAPlace(0) if has_gpu() else paddle.CPUPlace()


class InferenceProgram:
    """A forward-only program: `model_fn()` returns (feeds, fetches) by name.

    Given the `scope` of a `StaticRunner`, it shares the runner's parameters by name (an
    evaluation graph without dropout beside the training graph); without one, it gets a scope of
    its own with freshly initialised parameters, to be overwritten by the caller.
    """

    def __init__(self, model_fn: Callable[[], Tuple[Dict, Dict]], scope=None, place=None):
        self.place = place or default_place()
        self.scope = scope if scope is not None else paddle.static.Scope()
        with static_mode():
            self.main, startup = paddle.static.Program(), paddle.static.Program()
            with paddle.static.program_guard(self.main, startup):
                self.feeds, self.fetches = model_fn()
            self.executor = paddle.static.Executor(self.place)
            if scope is None:
                with paddle.static.scope_guard(self.scope):
                    self.executor.run(startup)
        self._fetch_names = list(self.fetches)

    def run(self, feed: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        feed = {name: feed[name] for name in self.feeds}
        with static_mode(), paddle.static.scope_guard(self.scope):
            values = self.executor.run(self.main, feed=feed, fetch_list=[self.fetches[n] for n in self._fetch_names])
        return dict(zip(self._fetch_names, values))

    def save_inference_model(self, path_prefix) -> None:
        """`path_prefix.json` + `.pdiparams`, which `paddle.inference` loads, its outputs named
        as the fetches are (`paddle.inference`'s `get_output_names()`, and ONNX's after
        paddle2onnx)."""
        with static_mode(), paddle.static.scope_guard(self.scope):
            paddle.static.save_inference_model(str(path_prefix), list(self.feeds.values()),
                                               [self.fetches[n] for n in self._fetch_names],
                                               self.executor, program=self.main)
        name_pir_outputs(f"{path_prefix}.json", self._fetch_names)

    def signature(self) -> Dict[str, List[Dict]]:
        """The saved graph's inputs and outputs: name, dtype and shape (-1: any size)."""
        def describe(name, value):
            return {"name": name, "dtype": str(value.dtype).replace("paddle.", ""), "shape": list(value.shape)}
        return {"inputs": [describe(n, v) for n, v in self.feeds.items()],
                "outputs": [describe(n, self.fetches[n]) for n in self._fetch_names]}


def name_pir_outputs(json_path, names: List[str]) -> None:
    """Gives the fetch ops of a saved PIR program the names `names`, in fetch order.

    Paddle 3 names an output after its value only where the value is persistable (a parameter),
    so every computed output is saved as `fetch_name_<i>`; `Value.name` refuses to be set on
    anything else. The fetch op's `name` attribute is what `paddle.inference` reports and
    paddle2onnx carries over, so it is set in the saved program's JSON."""
    import json
    with open(json_path, encoding="utf-8") as f:
        program = json.load(f)
    fetches = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("#") == "1.fetch":
                fetches.append(node)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)
    walk(program)
    attrs = [{a["N"]: a["AT"] for a in op.get("A", [])} for op in fetches]
    if len(fetches) != len(names) or not all("name" in a and "col" in a for a in attrs):
        raise RuntimeError(f"{json_path}: found {len(fetches)} fetch ops for outputs {names}; "
                           f"this Paddle version saves programs differently")
    for a in attrs:
        a["name"]["D"] = names[a["col"]["D"]]
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(program, f)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The random seed of one training step of one rank: dropout differs between steps and
    between data-parallel ranks, and is the same again when a run resumes."""
    return seed * 1_000_003 + step + rank * 1_000_000_007


class FedLearningRate(paddle.optimizer.lr.LRScheduler):
    """A learning rate the caller sets before every step (`set`), for schedules computed outside
    the program, such as a warm-up per pre-training task."""

    def __init__(self):
        super().__init__(learning_rate=0.0)

    def set(self, value: float) -> None:
        self.last_lr = float(value)

    def get_lr(self) -> float:
        return self.last_lr


def average_across_ranks(world_size: int):
    """The gradient reduction of data parallelism, as program ops: the sum over ranks, / ranks."""
    def reduce(params_grads):
        import paddle.distributed as dist
        averaged = []
        for param, grad in params_grads:
            dist.all_reduce(grad)  # in place
            averaged.append((param, paddle.scale(grad, 1.0 / world_size)))
        return averaged
    return reduce


class StaticRunner:
    """`mixed_precision` (see `propeller.mixed_precision`) trains with float16 or bfloat16 O1;
    with float16, `step()` also returns the loss scale in force after the step (`loss_scale`).
    `distributed`: data-parallel over the ranks of `paddle.distributed.launch` (module docstring)."""

    def __init__(self, model_fn: Callable[[], Tuple[Dict, Dict, paddle.Tensor]],
                 optimizer_fn: Callable[[FedLearningRate], paddle.optimizer.Optimizer], seed: int,
                 place=None, mixed_precision: Optional[MixedPrecision] = None, distributed: bool = False):
        self.place = place or default_place()
        self.seed = seed
        self.scope = paddle.static.Scope()
        self.learning_rate = FedLearningRate()
        self.rank, reduce = 0, None
        if distributed:
            import paddle.distributed as dist
            if not dist.is_initialized():
                dist.init_parallel_env()
            self.rank, reduce = dist.get_rank(), average_across_ranks(dist.get_world_size())
        # Fresh generated names (accumulators, loss scale) whatever was built before in this
        # process, so a checkpoint's variable names match the program that resumes from it.
        with static_mode(), paddle.utils.unique_name.guard():
            paddle.seed(seed)  # the same initial parameters on every rank
            self.main, startup = paddle.static.Program(), paddle.static.Program()
            with paddle.static.program_guard(self.main, startup):
                self.feeds, self.fetches = minimize(model_fn, optimizer_fn(self.learning_rate), mixed_precision,
                                                    reduce)
            self.executor = paddle.static.Executor(self.place)
            with paddle.static.scope_guard(self.scope):
                self.executor.run(startup)
        self._fetch_names = list(self.fetches)
        self.state_names = self._persistable_names()
        scales = [n for n in self.state_names if n.startswith(LOSS_SCALE_PREFIX)]
        self._loss_scale_name = scales[0] if scales else None

    def _persistable_names(self) -> List[str]:
        from paddle.static.pir_io import get_pir_parameters
        params, opts = get_pir_parameters(self.main)
        return sorted({v.name for v in params + opts})

    def step(self, step: int, feed: Mapping[str, np.ndarray], learning_rate: float) -> Dict[str, np.ndarray]:
        self.learning_rate.set(learning_rate)
        feed = {name: feed[name] for name in self.feeds}
        with static_mode(), paddle.static.scope_guard(self.scope):
            paddle.seed(step_seed(self.seed, step, self.rank))
            values = self.executor.run(self.main, feed=feed, fetch_list=[self.fetches[n] for n in self._fetch_names])
        out = dict(zip(self._fetch_names, values))
        if self._loss_scale_name is not None:
            out["loss_scale"] = np.array(self.scope.find_var(self._loss_scale_name).get_tensor())
        return out

    def state(self) -> Dict[str, np.ndarray]:
        return {name: np.array(self.scope.find_var(name).get_tensor()) for name in self.state_names}

    def parameters_digest(self) -> str:
        """SHA-256 of the whole state, to check that data-parallel ranks agree."""
        digest = hashlib.sha256()
        for name, value in sorted(self.state().items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(value).tobytes())
        return digest.hexdigest()

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        missing = [n for n in self.state_names if n not in state]
        if missing:
            raise KeyError(f"checkpoint lacks {len(missing)} variable(s), first {missing[:3]}")
        self.assign({name: state[name] for name in self.state_names})

    def assign(self, values: Mapping[str, np.ndarray]) -> None:
        """Sets the given variables (a subset of the state) to the given values; shapes must fit."""
        for name in values:
            if name not in self.state_names:
                raise KeyError(f"the program has no variable {name}")
            tensor = self.scope.find_var(name).get_tensor()
            current, value = np.array(tensor), np.asarray(values[name])
            if current.shape != value.shape:
                if current.size == value.size == 1:  # a scalar, stored as [1] by some writers
                    value = value.reshape(current.shape)
                else:
                    raise ValueError(f"variable {name}: program has shape {current.shape}, "
                                     f"checkpoint {value.shape}")
            tensor.set(value.astype(current.dtype, copy=False), self.place)
