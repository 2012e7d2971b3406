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

from .device import process_place
from .mixed_precision import LOSS_SCALE_PREFIX, MixedPrecision, autocast, minimize
from .nonfinite import SKIPPED


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


class InferenceProgram:
    """A forward-only program: `model_fn()` returns (feeds, fetches) by name.

    Given the `scope` of a `StaticRunner`, it shares the runner's parameters by name (an
    evaluation graph without dropout beside the training graph); without one, it gets a scope of
    its own with freshly initialised parameters, to be overwritten by the caller.
    """

    def __init__(self, model_fn: Callable[[], Tuple[Dict, Dict]], scope=None, place=None):
        self.place = place or process_place()
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


BUCKET_BYTES = 32 << 20  # Paddle fleet's fuse_grad_size_in_MB; PyTorch DDP's buckets are 25 MB


def average_across_ranks(world_size: int, bucket_bytes: int = BUCKET_BYTES):
    """The gradient reduction of data parallelism, as program ops: the sum over ranks, / ranks.
    The gradients go in buckets of about `bucket_bytes`, each flattened into one tensor and
    reduced by one collective, as Paddle's fleet fuses them (`coalesce_tensor`) and PyTorch's DDP
    buckets them: a collective's fixed cost, large between nodes, is paid a few times a step
    rather than once a parameter (about 200 in the base model)."""
    def reduce(params_grads):
        import paddle.distributed as dist
        averaged = []
        for bucket in gradient_buckets(params_grads, bucket_bytes):
            if len(bucket) == 1:
                (param, grad), = bucket
                dist.all_reduce(grad)  # in place
                averaged.append((param, paddle.scale(grad, 1.0 / world_size)))
                continue
            flat = paddle.concat([paddle.flatten(grad) for _, grad in bucket])
            dist.all_reduce(flat)
            pieces = paddle.split(paddle.scale(flat, 1.0 / world_size), [_numel(grad) for _, grad in bucket])
            averaged += [(param, paddle.reshape(piece, grad.shape)) for (param, grad), piece in zip(bucket, pieces)]
        return averaged
    return reduce


def _numel(value) -> int:
    return int(np.prod(value.shape))


def gradient_buckets(params_grads, bucket_bytes: int) -> list:
    """(param, grad) pairs in runs of one dtype of at most `bucket_bytes` (a larger gradient
    alone), in their order."""
    buckets, size = [], 0
    for param, grad in params_grads:
        nbytes = _numel(grad) * paddle.core.size_of_dtype(grad.dtype)
        if not buckets or buckets[-1][0][1].dtype != grad.dtype or size + nbytes > bucket_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append((param, grad))
        size += nbytes
    return buckets


_STATIC_RING: list = []  # the backend whose ring 0 this process made for static programs, once


def connect_static_collectives(backend: str) -> None:
    """Makes the communicator a static program's collectives run on, once a process. Their ops
    (`all_reduce_` with ring_id 0) find it in Paddle's CommContextManager under the name "0":
    gloo's default process group (CPU) registers itself there, NCCL's (GPU) and the other device
    backends' do not (they register under their store key), and the first step would stop on "the
    comm context is nullptr". Paddle's own static-graph collective tests make it the same way,
    `paddle.distributed.collective._init_parallel_env(backend)` over the job's store, before any
    thread of the process uses the store."""
    backend = backend.lower()
    if backend != "gloo" and not _STATIC_RING:
        from paddle.distributed.collective import _init_parallel_env
        _init_parallel_env(backend)
        _STATIC_RING.append(backend)


class StaticRunner:
    """`mixed_precision` (see `propeller.mixed_precision`) trains with float16 or bfloat16 O1;
    with float16, `step()` also returns the loss scale in force after the step (`loss_scale`).
    `distributed`: data-parallel over the ranks of `paddle.distributed.launch` (module docstring).
    `accumulate` k > 1: a step takes a list of k micro-batch feeds and makes one update from
    their accumulated gradients (`propeller.accumulation`); it returns the k outputs.
    `recompute`: the segments the model marks are computed again in the backward pass instead of
    kept (`propeller.recompute`). `program_pass(program, kept_values)`: rewrites each built
    training program (the update's, and the micro-batch's) after its backward pass, leaving the
    values it is given (the fetches) as they are."""

    def __init__(self, model_fn: Callable[[], Tuple[Dict, Dict, paddle.Tensor]],
                 optimizer_fn: Callable[[FedLearningRate], paddle.optimizer.Optimizer], seed: int,
                 place=None, mixed_precision: Optional[MixedPrecision] = None, distributed: bool = False,
                 accumulate: int = 1, recompute: bool = False, program_pass: Optional[Callable] = None):
        if accumulate < 1:
            raise ValueError(f"accumulate must be at least 1, got {accumulate}")
        self.place = place or process_place()
        self.seed = seed
        self.accumulate = accumulate
        self.scope = paddle.static.Scope()
        self.learning_rate = FedLearningRate()
        self.rank, reduce = 0, None
        if distributed:
            import paddle.distributed as dist
            if not dist.is_initialized():
                dist.init_parallel_env()
                # NCCL builds its communicator at the first collective, over the job's store; one
                # now, before any thread of this process uses the store (propeller.rank_watch),
                # as Paddle's fleet warms up its groups (fleet/base/topology.py)
                if paddle.in_dynamic_mode():  # (in static mode it would only append an op)
                    dist.barrier()
            connect_static_collectives(dist.get_backend())
            self.rank, reduce = dist.get_rank(), average_across_ranks(dist.get_world_size())
        # Fresh generated names (accumulators, loss scale) whatever was built before in this
        # process, so a checkpoint's variable names match the program that resumes from it.
        with static_mode(), paddle.utils.unique_name.guard():
            paddle.seed(seed)  # the same initial parameters on every rank
            self.main, startup = paddle.static.Program(), paddle.static.Program()
            with paddle.static.program_guard(self.main, startup):
                self.feeds, self.fetches, accumulators, self._skipped = minimize(
                    model_fn, optimizer_fn(self.learning_rate), mixed_precision, reduce, accumulate, recompute)
                if program_pass is not None:
                    program_pass(self.main, [*self.fetches.values(), *([self._skipped] if self._skipped is not None else [])])
            self.executor = paddle.static.Executor(self.place)
            with paddle.static.scope_guard(self.scope):
                self.executor.run(startup)
        self._fetch_names = list(self.fetches)
        self.state_names = self._persistable_names()
        scales = [n for n in self.state_names if n.startswith(LOSS_SCALE_PREFIX)]
        self._loss_scale_name = scales[0] if scales else None
        self.micro = None  # the micro-batch program (accumulate > 1)
        if accumulate > 1:
            from .accumulation import micro_batch_program
            amp = mixed_precision.dtype if mixed_precision else None
            with static_mode(), paddle.utils.unique_name.guard():
                self.micro, micro_feeds, self.micro_fetches = micro_batch_program(
                    model_fn, [acc.name for acc in accumulators], build_context=lambda: autocast(amp),
                    loss_scale=self._loss_scale_name, recompute=recompute)
                if program_pass is not None:
                    with paddle.static.program_guard(self.micro):
                        program_pass(self.micro, list(self.micro_fetches.values()))
            if list(micro_feeds) != list(self.feeds) or list(self.micro_fetches) != self._fetch_names:
                raise RuntimeError("the model function built different feeds or fetches for the micro-batch program")

    def _persistable_names(self) -> List[str]:
        from paddle.static.pir_io import get_pir_parameters
        params, opts = get_pir_parameters(self.main)
        return sorted({v.name for v in params + opts})

    def step(self, step: int, feed, learning_rate: float):
        """One update. `feed`: a mapping of inputs, or with `accumulate` k > 1 a list of 1 to k
        (micro-batches: all but the last only add their gradients, the last updates with their
        mean); returns the fetches, or a list of the micro-batches' fetches. The last one also
        holds `skipped` (where the optimizer can skip, `propeller.nonfinite`): True where a
        non-finite loss or gradient of any micro-batch of any rank left the state as it was."""
        self.learning_rate.set(learning_rate)
        feeds = feed if self.accumulate > 1 else [feed]
        if not 1 <= len(feeds) <= self.accumulate or not all(isinstance(f, Mapping) for f in feeds):
            raise ValueError(f"step {step}: expected 1 to {self.accumulate} micro-batch feed(s), got {len(feeds)}")
        outs = []
        if self.accumulate > 1:
            from .accumulation import SCALE
            self.scope.find_var(SCALE).get_tensor().set(np.full([1], 1.0 / len(feeds), np.float32), self.place)
        with static_mode(), paddle.static.scope_guard(self.scope):
            for j, micro_feed in enumerate(feeds):
                last = j == len(feeds) - 1
                program, fetches = (self.main, self.fetches) if last else (self.micro, self.micro_fetches)
                # dropout seeded per micro-batch; with one micro-batch a step, as it always was
                paddle.seed(step_seed(self.seed, step * self.accumulate + j, self.rank))
                extra = [self._skipped] if last and self._skipped is not None else []
                values = self.executor.run(program, feed={name: micro_feed[name] for name in self.feeds},
                                           fetch_list=[fetches[n] for n in self._fetch_names] + extra)
                outs.append(dict(zip(self._fetch_names, values)))
                if extra:
                    outs[-1][SKIPPED] = bool(np.asarray(values[-1]).reshape(-1)[0])
        if self._loss_scale_name is not None:
            outs[-1]["loss_scale"] = np.array(self.scope.find_var(self._loss_scale_name).get_tensor())
        return outs if self.accumulate > 1 else outs[0]

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
