"""Each rank on its own device (`propeller.device`): the choice made from the variables
`paddle.distributed.launch` sets for each process, as Paddle's own `ParallelEnv` reads them."""
import os
import subprocess
import sys

import pytest

from propeller.device import SELECTED_GPUS, DeviceError, device_choice
from tests.conftest import REPO


def launcher_env(rank: int, selected: str) -> dict:
    """What the launcher sets for process `rank` of a node (paddle/distributed/launch/controllers/collective.py)."""
    return {"PADDLE_TRAINER_ID": str(rank), "PADDLE_LOCAL_RANK": str(rank), "PADDLE_TRAINERS_NUM": "8",
            SELECTED_GPUS: selected}


def test_eight_ranks_of_a_node_take_eight_gpus():
    assert [device_choice(launcher_env(r, str(r)), gpus=8) for r in range(8)] == [("gpu", r) for r in range(8)]


def test_one_process_given_several_gpus_is_told_to_start_one_a_gpu_and_no_launcher_means_gpu_0():
    """Two nodes launched with one process each (run_pretrain.sh's NPROC left at 1): the launcher
    gives each process the node's whole list, where it would train on the first GPU alone."""
    with pytest.raises(DeviceError, match=r"gives this process 8 GPUs.*NPROC=8; .*--nproc_per_node 8"):
        device_choice(launcher_env(0, "0,1,2,3,4,5,6,7"), gpus=8)
    assert device_choice(launcher_env(0, "2"), gpus=4) == ("gpu", 2)
    assert device_choice({}, gpus=2) == ("gpu", 0)


def test_a_cpu_build_or_a_machine_without_gpus_runs_on_the_cpu():
    assert device_choice(launcher_env(3, "3"), gpus=0) == ("cpu", 0)
    assert device_choice({}, gpus=0) == ("cpu", 0)


@pytest.mark.parametrize("selected", ["8", "gpu1"])
def test_an_assignment_this_process_cannot_use_is_refused_by_name(selected):
    with pytest.raises(DeviceError, match=f"FLAGS_selected_gpus='{selected}'"):
        device_choice(launcher_env(0, selected), gpus=8)


@pytest.mark.parametrize("user_set,value,local_ranks,expected", [(True, "3", None, 3), (False, "1", None, 2),
                                                                 (False, "1", "2", 1)])
def test_the_math_threads_are_the_users_or_the_cores_shared_among_local_ranks(monkeypatch, user_set, value,
                                                                               local_ranks, expected):
    """What a run records as its threads: the user's OMP_NUM_THREADS, else the cores (here 2) over
    the node's ranks; never the 1 that Paddle's import writes into the environment."""
    import ernie
    from ernie.kernels import cpu_runtime
    monkeypatch.setattr(ernie, "USER_SET_THREADS", user_set)
    monkeypatch.setattr(cpu_runtime, "usable_cores", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    if local_ranks:
        monkeypatch.setenv("PADDLE_LOCAL_SIZE", local_ranks)
    else:
        monkeypatch.delenv("PADDLE_LOCAL_SIZE", raising=False)
    assert cpu_runtime.math_threads() == expected


@pytest.mark.parametrize("cuda_build, gpus, serial", [(False, 0, True), (True, 0, True), (True, 1, False)])
def test_the_executor_runs_ops_one_at_a_time_wherever_no_gpu_is_seen(monkeypatch, cuda_build, gpus, serial):
    """Serial execution is the faster one on a CPU, also for a CUDA build on a machine without a GPU
    (or with CUDA_VISIBLE_DEVICES empty); a GPU keeps Paddle's parallel streams."""
    import paddle

    from ernie.kernels import cpu_runtime
    flag = "FLAGS_new_executor_serial_run"
    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: cuda_build)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: gpus)
    before = paddle.get_flags(flag)[flag]
    try:
        paddle.set_flags({flag: False})
        cpu_runtime.configure()
        assert paddle.get_flags(flag)[flag] is serial
    finally:
        paddle.set_flags({flag: before})


@pytest.mark.parametrize("marked, expected", [(True, "cores"), (False, "1")])
def test_ranks_of_paddles_launcher_share_the_cores_where_the_user_set_no_threads(marked, expected):
    """Paddle's launcher passes its ranks the OMP_NUM_THREADS=1 its import of Paddle set;
    run_pretrain.sh marks a launch where the user set none, and each rank then takes the cores over
    the node's ranks, not one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PADDLE_LOCAL_SIZE": "1", "PYTHONPATH": str(REPO)}
    env.pop("ERNIE_THREADS_UNSET", None)
    if marked:
        env["ERNIE_THREADS_UNSET"] = "1"
    done = subprocess.run([sys.executable, "-c", "from ernie.kernels.cpu_runtime import math_threads, usable_cores; "
                           "print(math_threads(), usable_cores())"], env=env, capture_output=True, text=True, check=True)
    threads, cores = done.stdout.split()
    assert threads == (cores if expected == "cores" else "1")
