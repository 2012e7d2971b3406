"""Which device a process computes on: under `paddle.distributed.launch`, the one its rank was given.

Paddle's launcher gives each process of a node its own GPU in `FLAGS_selected_gpus` (one id per
process when it starts several; the whole list when it starts one), and Paddle's own
high-level API places a rank on the first id of that list (`ParallelEnv().device_id`). Making
`CUDAPlace(0)` instead puts every rank of an 8-GPU node on GPU 0. A process given the whole list
would train on its first GPU and leave the others idle (several nodes launched with one process
each): it is refused, naming the number of processes to start. `device_choice` is the
decision alone, a function of the environment and the GPU count, so it is tested with the
variables the launcher sets on machines that have no GPU.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Tuple

SELECTED_GPUS = "FLAGS_selected_gpus"


class DeviceError(RuntimeError):
    """The launcher's assignment names a device this process cannot use."""


def cuda_device_count() -> int:
    """GPUs this process sees: 0 in a CPU build of Paddle."""
    import paddle
    return paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0


def device_choice(env: Mapping[str, str], gpus: int) -> Tuple[str, int]:
    """("gpu", id) or ("cpu", 0): the launcher's GPU for this rank where it gave one, else the
    first GPU, else the CPU."""
    if gpus == 0:
        return "cpu", 0
    given = [g.strip() for g in env.get(SELECTED_GPUS, "").split(",") if g.strip()]
    if not given:
        return "gpu", 0
    if len(given) > 1:
        raise DeviceError(f"{SELECTED_GPUS}={env[SELECTED_GPUS]!r} gives this process {len(given)} GPUs, and a "
                          f"process trains on one: start one process a GPU (run_pretrain.sh: NPROC={len(given)}; "
                          f"paddle.distributed.launch: --nproc_per_node {len(given)})")
    first = given[0]
    if not first.isdigit() or int(first) >= gpus:
        raise DeviceError(f"{SELECTED_GPUS}={env[SELECTED_GPUS]!r} names GPU {first}, but this process sees "
                          f"{gpus} GPU(s) (CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', 'unset')}): "
                          f"launch with --devices listing GPUs of this machine")
    return "gpu", int(first)


def process_place(env: Optional[Mapping[str, str]] = None):
    """The Paddle place of `device_choice` for this process."""
    import paddle
    kind, index = device_choice(os.environ if env is None else env, cuda_device_count())
    return paddle.CUDAPlace(index) if kind == "gpu" else paddle.CPUPlace()


def describe(place) -> str:
    """`gpu:3` or `cpu`, for the start-up line of each rank."""
    return f"gpu:{place.gpu_device_id()}" if place.is_gpu_place() else "cpu"
