"""run_pretrain.sh's verdict on a data-parallel run, from each rank's exit code
(scripts/pretrain_launch.py writes it): a node other than 0 succeeds when its own ranks did,
whether or not rank 0's model is visible there, and no node takes an old model for success."""
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO
from tests.test_data_gen_make import _documents

FAKE_LAUNCHER = """#!/usr/bin/env bash
# python, except that `-m paddle.distributed.launch` stands for the launcher: each local rank
# "exits" with $FAKE_CODE through the status file scripts/pretrain_launch.py would write
[ "$1 $2" = "-m data_gen" ] && echo "$3" >> "$(dirname "$0")/../calls-node-$NODE_RANK"
if [ "$1 $2" = "-m paddle.distributed.launch" ]; then
  for ((i = 0; i < NPROC; i++)); do echo "$FAKE_CODE" > "$ERNIE_LAUNCH_STATUS/rank-$((NODE_RANK * NPROC + i)).exit"; done
  exit 0
fi
exec {python} "$@"
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, en_vocab):
    root = tmp_path_factory.mktemp("launch")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(2, 20)), encoding="utf-8")
    (root / "data.yaml").write_text(yaml.safe_dump(dict(
        input=str(root / "corpus.txt"), vocab=str(en_vocab), output=str(root / "shards"), lang="en",
        tasks=["knowledge_masking"], max_seq_len=64, shards=2, stopwords=str(REPO / "configs/stopwords/en.txt"))))
    (root / "pretrain.yaml").write_text(yaml.safe_dump(dict(
        model=str(REPO / "configs/model/tiny.yaml"), data=str(root / "shards"), output=str(root / "run"), batch_tokens=256,
        schedule={"strategy": "continual_multitask", "stages": [["knowledge_masking"]], "iterations_per_task": 4})))
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(FAKE_LAUNCHER.format(python=sys.executable))
    (bin_dir / "python").chmod(0o755)
    return root


def _run(setup, node, code, **changes):
    env = {**os.environ, "PATH": f"{setup / 'bin'}:{os.environ['PATH']}", "DATA_CONFIG": str(setup / "data.yaml"),
           "CONFIG": str(setup / "pretrain.yaml"), "NPROC": "2", "NNODES": "2", "NODE_RANK": str(node),
           "MASTER": "127.0.0.1:1", "FAKE_CODE": str(code), **changes}
    return subprocess.run(["bash", str(REPO / "run_pretrain.sh")], env=env, capture_output=True, text=True)


def test_node_1_succeeds_on_its_own_ranks_without_seeing_the_model(setup):
    result = _run(setup, 1, 0)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "node 1: its 2 rank(s) finished; rank 0, on node 0, writes the model" in result.stdout
    assert not (setup / "run" / "model").exists()


def test_node_0_alone_prepares_the_data(setup):
    """The shards are shared: nodes making them at once would write over each other."""
    for node in (1, 0):
        assert _run(setup, node, 0, DATA_ONLY="1").returncode == 0
    calls = {node: (setup / f"calls-node-{node}").read_text().split() for node in (0, 1)}  # data_gen's commands
    assert "make" in calls[0] and not {"make", "fetch", "build-vocab"} & set(calls[1])


def test_several_nodes_need_node_0s_address(setup):
    """Without MASTER each node's launcher would wait for peers of its own, for ever."""
    env = {k: v for k, v in os.environ.items() if k != "MASTER"}
    result = subprocess.run(["bash", str(REPO / "run_pretrain.sh")], capture_output=True, text=True,
                            env={**env, "NNODES": "2", "NODE_RANK": "0", "DATA_CONFIG": str(setup / "data.yaml")})
    assert result.returncode == 2 and result.stderr.startswith("error: NNODES=2 needs MASTER=ip:port")


def test_a_failed_rank_fails_its_node_even_with_an_old_model_there(setup):
    model = setup / "run" / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "params.safetensors").write_bytes(b"from an earlier run")
    for node in (0, 1):
        result = _run(setup, node, 1)
        assert result.returncode == 1 and "pre-training failed" in result.stderr, result.stdout[-2000:]


def test_each_rank_writes_its_exit_code(tmp_path):
    env = {**os.environ, "ERNIE_LAUNCH_STATUS": str(tmp_path), "PADDLE_TRAINER_ID": "3"}
    result = subprocess.run([sys.executable, str(REPO / "scripts/pretrain_launch.py"), "--config",
                             str(tmp_path / "none.yaml")], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and (tmp_path / "rank-3.exit").read_text() == "2\n"
    (tmp_path / "rank-3.exit").unlink()
    result = subprocess.run([sys.executable, str(REPO / "scripts/pretrain_launch.py"), "--no-such-option"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2 and (tmp_path / "rank-3.exit").read_text() == "2\n"  # argparse's exit
