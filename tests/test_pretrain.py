"""Pre-training: heads and losses, learning rates, the training loop, kill-and-resume."""
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import paddle
import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from ernie.formats.checkpoint import load_params
from ernie.model.optimization import decays, linear_warmup_decay, noam
from ernie.model.params_io import layer_params
from ernie.pretrain.model import ErnieForPretraining
from ernie_common import tasks as registry
from ernie_common.fileio import sha256_file
from ernie_common.machine import ISA_CAPS
from tests.conftest import REPO, random_feeds, small_config
from tests.test_data_gen_make import _documents
from tests.test_mixed_precision import NEEDS_CPU_BF16


def test_noam_peaks_at_exactly_the_learning_rate():
    assert noam(5e-5, 4000, 4000) == pytest.approx(5e-5, rel=1e-12)
    assert noam(5e-5, 4000, 2000) == pytest.approx(2.5e-5, rel=1e-12)      # linear warm-up
    assert noam(5e-5, 4000, 16000) == pytest.approx(2.5e-5, rel=1e-12)     # lr * sqrt(warmup / step)
    assert linear_warmup_decay(1e-4, 10, 110, 5) == pytest.approx(5e-5)
    assert linear_warmup_decay(1e-4, 10, 110, 60) == pytest.approx(5e-5)
    assert linear_warmup_decay(1e-4, 10, 110, 110) == 0.0


def test_weight_decay_skips_layer_norm_and_bias():
    assert decays("encoder_layer_0_ffn_fc_0.w_0") and decays("word_embedding")
    assert not decays("encoder_layer_0_ffn_fc_0.b_0")
    assert not decays("encoder_layer_0_post_att_layer_norm_scale") and not decays("pre_encoder_layer_norm_bias")


def test_losses_against_numpy():
    config = small_config()
    model = ErnieForPretraining(config, {"knowledge_masking": None, "capitalization": None, "token_document": None,
                                         "sentence_reordering": 33, "sentence_distance": 3})
    model.eval()
    feeds = random_feeds(config, batch=2, seq_len=6)
    feeds.update(mask_pos=np.array([1, 7, 8], np.int64), mask_label=np.array([5, 6, -1], np.int64),
                 capitalization_label=np.full((2, 6), -1, np.int64), token_document_label=np.full((2, 6), -1, np.int64),
                 sentence_reordering_label=np.array([4, 31], np.int64), sentence_distance_label=np.array([-1, -1], np.int64))
    feeds["capitalization_label"][0, 2] = 1
    order = model.active_task_order
    feeds["task_weights"] = np.array([1.0 if t in ("knowledge_masking", "sentence_reordering") else 0.0 for t in order],
                                     np.float32)
    out = model({k: paddle.to_tensor(v) for k, v in feeds.items()})
    seq, pooled = (t.numpy() for t in model.ernie(*(paddle.to_tensor(feeds[k]) for k in
                                                     ("src_ids", "sent_ids", "pos_ids", "input_mask", "task_ids"))))
    p = layer_params(model)

    def ce(logits, labels):
        logits = logits - logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return -logp[np.arange(len(labels)), labels].mean()

    def gelu(x):
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))

    rows = seq.reshape(-1, config.hidden_size)[[1, 7]]  # the -1 label is ignored
    h = gelu(rows @ p["mask_lm_trans_fc.w_0"] + p["mask_lm_trans_fc.b_0"])
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + config.layer_norm_eps)
    h = h * p["mask_lm_trans_layer_norm_scale"] + p["mask_lm_trans_layer_norm_bias"]
    mlm = ce(h @ p["word_embedding"].T + p["mask_lm_out_fc.b_0"], np.array([5, 6]))
    reorder = ce(pooled @ p["sentence_reordering_fc.w_0"] + p["sentence_reordering_fc.b_0"], np.array([4, 31]))
    got = {k: float(v.numpy().reshape(-1)[0]) for k, v in out.items()}
    assert got["knowledge_masking/loss"] == pytest.approx(mlm, rel=1e-5)
    assert got["sentence_reordering/loss"] == pytest.approx(reorder, rel=1e-5)
    assert got["sentence_distance/loss"] == 0.0 and got["token_document/loss"] == 0.0
    assert got["capitalization/count"] == 1.0  # labelled, but switched off by task_weights:
    assert got["loss"] == pytest.approx((mlm + reorder) / 2, rel=1e-5)


@pytest.fixture(scope="module")
def pretrain_setup(tmp_path_factory, en_vocab):
    root = tmp_path_factory.mktemp("pretrain")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 40)), encoding="utf-8")
    make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                    tasks=["knowledge_masking", "capitalization", "sentence_reordering"], max_seq_len=64,
                    shards=2, stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    (root / "model.yaml").write_text(yaml.safe_dump(dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, use_task_id=True, task_type_vocab_size=8)))
    config = dict(model=str(root / "model.yaml"), data=str(root / "shards"), output=str(root / "unused"),
                  seed=3, batch_tokens=256, log_every=4, checkpoint_every=5,
                  optimization={"learning_rate": 1e-3, "warmup_steps": 5},
                  schedule={"strategy": "continual_multitask",
                            "stages": [["knowledge_masking"], ["capitalization"], ["sentence_reordering"]],
                            "iterations_per_task": 30})
    (root / "pretrain.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture(scope="module")
def four_task_shards(tmp_path_factory, en_vocab):
    root = tmp_path_factory.mktemp("four")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 40)), encoding="utf-8")
    make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                    tasks=["knowledge_masking", "capitalization", "sentence_reordering", "sentence_distance"],
                    max_seq_len=64, shards=2, stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    return root / "shards"


@pytest.mark.parametrize("length_pool", [1, 4])
@pytest.mark.parametrize("strategy", ["continual", "multitask", "continual_multitask"])
def test_the_reader_switches_on_each_task_for_exactly_its_budget(four_task_shards, strategy, length_pool):
    """A replay of the reader over a whole schedule: each task's loss is on for exactly its
    iterations; steps of token-level tasks alone read only plain segments (natural order: no
    reordered, no cross-document example), text-task steps their own task's examples; batches
    cut from length-sorted pools too."""
    from data_gen.examples import NO_TASK
    from ernie.pretrain.data import PretrainingData
    from ernie.pretrain.schedule import build_schedule

    budgets = {"knowledge_masking": 40, "capitalization": 24, "sentence_reordering": 30, "sentence_distance": 12}
    schedule = build_schedule(strategy, [[t] for t in budgets], budgets)
    data = PretrainingData(four_task_shards, seed=1, batch_tokens=256, pad_id=0, mask_token_id=3,
                           first_normal_id=5, length_pool=length_pool)
    order = list(budgets)
    read, loss_on = [], Counter()
    original = data._feeds
    data._feeds = lambda examples, *rest: read.extend(examples) or original(examples, *rest)
    for index, step in enumerate(schedule.steps()):
        del read[:]
        feed = data.batch(index, step.task, step.on, order, registry.get(step.task).task_id)
        loss_on.update(t for t, w in zip(order, feed["task_weights"]) if w)
        task = registry.get(step.task)
        expected = NO_TASK if task.level == registry.TOKEN else task.task_id
        assert read and all(ex.task == expected for ex in read), (index, step)
        if task.level == registry.TOKEN:
            assert all(not (ex.sent_ids[1:] != ex.sent_ids[:-1]).any() for ex in read)  # one segment, unbroken
    assert loss_on == budgets


def _batches(data, steps, stream_task="knowledge_masking"):
    """The examples (task, token ids) and the padded shape of each of `steps` batches of one stream."""
    rows = []
    original = data._feeds
    data._feeds = lambda examples, *rest: rows.append(examples) or original(examples, *rest)
    shapes = [data.batch(i, stream_task, [stream_task], [stream_task], 0)["src_ids"].shape for i in range(steps)]
    data._feeds = original
    return [[(ex.task, list(ex.src_ids)) for ex in b] for b in rows], shapes


def test_length_pools_fill_batches_with_real_tokens_and_resume_exactly(four_task_shards):
    """Batches cut from a length-sorted pool stay within the token budget, hold more real tokens
    than batches read in order, serve every example of the pool once, and a reader restored from
    the state saved after some batches serves the same batches as the uninterrupted one."""
    from ernie.pretrain.data import PLAIN_STREAM, PretrainingData

    def reader(pool):
        return PretrainingData(four_task_shards, seed=1, batch_tokens=256, pad_id=0, mask_token_id=3,
                               first_normal_id=5, length_pool=pool)

    fill = {}
    for pool in (1, 2, 8):
        data = reader(pool)
        batches, shapes = _batches(data, 40)
        real = sum(len(ids) for b in batches for _, ids in b)
        fill[pool] = real / sum(n * length for n, length in shapes)
        assert all(n * length <= 256 for n, length in shapes), (pool, shapes)
    assert fill[8] > fill[1] + 0.05, fill

    data = reader(8)  # a pool's batches hold exactly the examples next in the stream's order
    data._fill_pending(PLAIN_STREAM)
    pooled = sorted(ref for b in data.pending[PLAIN_STREAM] for ref in b)
    in_order = reader(1)
    assert pooled == sorted(in_order._next_example(PLAIN_STREAM)[1] for _ in pooled)

    whole = reader(8)
    first, _ = _batches(whole, 13)
    rest, _ = _batches(whole, 20)
    resumed = reader(8)
    _batches(resumed, 13)
    saved = json.loads(json.dumps(resumed.state()))
    restored = reader(8)
    restored.load_state(saved)
    assert _batches(restored, 20)[0] == rest


def test_a_stream_smaller_than_a_pool_puts_no_example_twice_in_a_batch(four_task_shards):
    """A pool ends with its epoch: a stream of fewer tokens than a pool (a task-adaptive corpus)
    gives batches of distinct examples, each example once an epoch, not its copies side by side."""
    from ernie.pretrain.data import PLAIN_STREAM, PretrainingData
    data = PretrainingData(four_task_shards, seed=1, batch_tokens=256, pad_id=0, mask_token_id=3,
                           first_normal_id=5, length_pool=64)
    stream = data.streams[PLAIN_STREAM]
    tokens = sum(len(data.shards[s][i]) for s, i in stream.T)
    assert tokens < 64 * 256  # the whole stream is less than a pool
    batches, _ = _batches(data, 60)
    assert all(len({tuple(ids) for _, ids in b}) == len(b) for b in batches)
    served = Counter()
    for b in batches:
        served.update(tuple(ids) for _, ids in b)
    assert sum(served.values()) > 2 * stream.shape[1] and max(served.values()) - min(served.values()) <= 1


def _total_steps(root) -> int:
    """The fixture schedule's steps (sentence-reordering steps carry the token-level tasks too)."""
    from ernie.pretrain.schedule import load_schedule
    return load_schedule(root / "pretrain.yaml").total_steps


def _pretrain(root, output, *extra, wait=True):
    command = [sys.executable, "-m", "ernie.pretrain", "--config", str(root / "pretrain.yaml"),
               "--output", str(output), "--quiet", *extra]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.parametrize("accumulate", [(), ("--set", "max_tokens_per_device=128")], ids=["one", "accumulated"])
def test_killed_run_resumes_to_the_same_parameters(pretrain_setup, tmp_path, accumulate):
    root = pretrain_setup
    whole = _pretrain(root, tmp_path / "whole", *accumulate)
    assert whole.returncode == 0, whole.stderr
    log = [json.loads(l) for l in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == _total_steps(root) and {"knowledge_masking/loss", "capitalization/loss",
                                      "sentence_reordering/loss"} <= set(log[-1])

    process = _pretrain(root, tmp_path / "killed", *accumulate, wait=False)
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= "step-00000040"):
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it could be killed"

    checkpointed = json.loads((latest.parent / latest.read_text().strip() / "trainer_state.json").read_text())
    resumed = _pretrain(root, tmp_path / "killed", "--resume", *accumulate)
    assert resumed.returncode == 0, resumed.stderr
    # the training time counts the killed segment's seconds up to its checkpoint and the resumed ones
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["train_seconds"] > checkpointed["train_seconds"] > 0
    assert summary["machine"].startswith("CPU: ")
    a = load_params(tmp_path / "whole" / "model" / "params.safetensors")
    b = load_params(tmp_path / "killed" / "model" / "params.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], atol=1e-6, rtol=0, err_msg=name)
    assert _log(tmp_path / "killed") == _log(tmp_path / "whole")  # no step logged twice, none of another window
    # the summary names the model's bytes: the same model, resumed or not (a study made again checks it)
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["params_sha256"] == whole["params_sha256"] == sha256_file(tmp_path / "killed" / "model" / "params.safetensors")


def _log(run) -> list:
    """A run's log records without their speed (tokens_per_s: each segment's own seconds)."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


@pytest.mark.parametrize("mode", ["static", "dygraph"])
def test_a_run_stopped_inside_a_log_window_resumes_to_the_same_log_and_parameters(pretrain_setup, tmp_path, mode):
    """Stopped at step 42 (a checkpoint there; log lines every 4 steps), the resumed run logged
    the mean of steps 43-44 alone as step 44's, and the summary's final losses with it; and in
    dygraph it could not resume at all (Paddle's optimizer wants its scheduler's state)."""
    whole = _pretrain(pretrain_setup, tmp_path / "whole", "--mode", mode)
    assert whole.returncode == 0, whole.stderr
    stopped = _pretrain(pretrain_setup, tmp_path / "stopped", "--mode", mode, "--max-steps", "42")
    assert stopped.returncode == 0 and "stopped after step 42" in stopped.stdout, stopped.stderr
    resumed = _pretrain(pretrain_setup, tmp_path / "stopped", "--mode", mode, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _log(tmp_path / "stopped") == _log(tmp_path / "whole")
    a = load_params(tmp_path / "whole" / "model" / "params.safetensors")
    b = load_params(tmp_path / "stopped" / "model" / "params.safetensors")
    assert all(np.array_equal(a[name], b[name]) for name in a) and a.keys() == b.keys()


def test_a_new_run_into_an_earlier_runs_output_is_refused_unless_told(pretrain_setup, tmp_path):
    """Started without --resume over an earlier run, a run pruned its own checkpoint among the
    old run's (its `latest` named a deleted folder) and left the old model and summary beside
    its own log."""
    (tmp_path / "run" / "checkpoints" / ".step-00000005.otherhost-1.x.tmp").mkdir(parents=True)  # a first one cut off
    first = _pretrain(pretrain_setup, tmp_path / "run", "--max-steps", "13")  # log lines every 4 steps
    assert first.returncode == 0 and "stopped after step 13 of " in first.stdout
    assert ", the steps since the last log record: knowledge_masking/loss " in first.stdout
    both = _pretrain(pretrain_setup, tmp_path / "run", "--resume", "--overwrite")
    assert both.returncode == 2 and "--resume continues the run in the output, --overwrite removes it" in both.stderr
    again = _pretrain(pretrain_setup, tmp_path / "run", "--max-steps", "6")
    assert again.returncode == 2 and again.stderr == (
        f"error: {tmp_path / 'run'} holds another run (checkpoints/): --resume continues it, --overwrite starts "
        f"afresh and removes it (run_pretrain.sh: RESUME=1, OVERWRITE=1), or choose another output\n")
    assert (tmp_path / "run" / "checkpoints" / "step-00000013").is_dir()  # left as it was
    fresh = _pretrain(pretrain_setup, tmp_path / "run", "--max-steps", "6", "--overwrite")
    assert fresh.returncode == 0, fresh.stderr
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["latest", "step-00000005",
                                                                                     "step-00000006"]
    # a checkpoint past `latest` (a run killed before `latest` named it) neither outlives nor prunes the new one
    (tmp_path / "run" / "checkpoints" / "step-00000099").mkdir()
    resumed = _pretrain(pretrain_setup, tmp_path / "run", "--max-steps", "7", "--resume", "--set", "keep_checkpoints=1")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["latest", "step-00000007"]


def test_visualdl_log_and_plot(pretrain_setup, tmp_path):
    from visualdl import LogReader
    result = _pretrain(pretrain_setup, tmp_path / "run", "--visualdl")
    assert result.returncode == 0, result.stderr
    (logfile,) = (tmp_path / "run" / "visualdl").iterdir()
    reader = LogReader(file_path=str(logfile))
    assert {"loss/knowledge_masking", "accuracy/sentence_reordering", "train/lr"} <= set(reader.get_tags()["scalar"])
    plot = subprocess.run([sys.executable, "-m", "ernie.plot", str(tmp_path / "run")], capture_output=True, text=True)
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "run" / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_refuses_another_config(pretrain_setup, tmp_path):
    root = pretrain_setup
    assert "no checkpoint" in _pretrain(root, tmp_path / "none", "--resume").stderr
    changed = yaml.safe_load((root / "pretrain.yaml").read_text())
    changed["optimization"]["learning_rate"] = 2e-3
    changed["schedule"]["iterations_per_task"] = 4
    (root / "changed.yaml").write_text(yaml.safe_dump(changed))
    first = _pretrain(root, tmp_path / "run")
    assert first.returncode == 0, first.stderr
    result = subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(root / "changed.yaml"),
                             "--output", str(tmp_path / "run"), "--resume", "--quiet"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "the config differs" in result.stderr and "optimization" in result.stderr and "schedule" in result.stderr


def test_resume_refuses_shards_made_again_from_another_corpus(pretrain_setup, tmp_path, en_vocab):
    """Its reading positions would point into other streams: refused in one line, before step 1."""
    root = pretrain_setup
    config = yaml.safe_load((root / "pretrain.yaml").read_text())
    config["data"] = str(tmp_path / "shards")
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(config))
    data = dict(vocab=str(en_vocab), output=str(tmp_path / "shards"), max_seq_len=64, shards=2,
                tasks=["knowledge_masking", "capitalization", "sentence_reordering"],
                stopwords=str(REPO / "configs/stopwords/en.txt"))
    make(DataConfig(input=[str(root / "corpus.txt")], **data), progress=False)
    first = _pretrain(tmp_path, tmp_path / "run", "--max-steps", "6")
    assert first.returncode == 0, first.stderr
    (tmp_path / "grown.txt").write_text((root / "corpus.txt").read_text() + "".join(_documents(6, 40)[4]) + "\n")
    make(DataConfig(input=[str(tmp_path / "grown.txt")], **data), progress=False)
    result = _pretrain(tmp_path, tmp_path / "run", "--resume")
    assert result.returncode == 2, result.stderr
    assert f"the shards in {tmp_path / 'shards'} are not the ones" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("changed,gpu,allowed", [(["amp"], False, True), (["amp", "seed"], False, False),
                                                 (["amp"], True, False)])
def test_a_resume_may_change_only_the_cpu_precision(monkeypatch, changed, gpu, allowed):
    import propeller.mixed_precision
    from ernie.pretrain.trainer import _only_cpu_precision_changed
    monkeypatch.setattr(propeller.mixed_precision, "has_gpu", lambda: gpu)
    assert _only_cpu_precision_changed(changed, {"amp": "off"}, {"amp": "bf16"}) is allowed
    assert not _only_cpu_precision_changed(["amp"], {"amp": "fp16"}, {"amp": "off"})  # float16 has a loss scale


@NEEDS_CPU_BF16
def test_a_float32_run_resumes_in_bfloat16_on_a_cpu(pretrain_setup, tmp_path):
    first = _pretrain(pretrain_setup, tmp_path / "run", "--max-steps", "20")
    assert first.returncode == 0, first.stderr
    resumed = _pretrain(pretrain_setup, tmp_path / "run", "--resume", "--amp", "bf16")
    assert resumed.returncode == 0, resumed.stderr
    assert "trained with amp off, the run goes on with amp bf16" in resumed.stdout
    segments = json.loads((tmp_path / "run" / "summary.json").read_text())["segments"]
    assert [(s["from_step"], s["amp"]) for s in segments] == [(0, "off"), (20, "bf16")]
    assert all(s["machine"].startswith("CPU: ") for s in segments)


def _launch(config, output, logs, *extra, nodes=None, wait=True, script=REPO / "scripts" / "pretrain_launch.py",
            env=None):
    """`paddle.distributed.launch` of two ranks: one launcher with two processes, or
    `nodes=(node rank, master)`: one of two launchers of one process each, as two machines run;
    `env`: the launcher's environment (this process's by default)."""
    topology = ["--nproc_per_node", "2"] if nodes is None else \
        ["--nproc_per_node", "1", "--nnodes", "2", "--rank", str(nodes[0]), "--master", nodes[1]]
    command = [sys.executable, "-m", "paddle.distributed.launch", *topology, "--log_dir", str(logs),
               str(script), "--config", str(config), "--output", str(output), "--quiet", *extra]
    if not wait:
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "launcher.out", "w") as out:  # not a pipe: nobody reads it while the job runs
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    launch = subprocess.run(command, capture_output=True, text=True, env=env)
    worker_logs = [(logs / f"workerlog.{r}").read_text() for r in (0, 1)]
    assert launch.returncode == 0, launch.stdout[-2000:] + launch.stderr[-2000:]
    for rank, text in enumerate(worker_logs):  # the launcher can exit 0 when a worker failed
        assert f"rank {rank}: parameters identical on all 2 ranks" in text, text[-3000:]
        assert f"rank {rank} of 2: device cpu" in text, text[:3000]  # each rank says where it runs
    return load_params(output / "model" / "params.safetensors")


def _dp_config(root, name, **changes):
    """The test config without dropout (so a single process can stand for two ranks), changed."""
    model = yaml.safe_load((root / "model.yaml").read_text())
    (root / "model_nodrop.yaml").write_text(yaml.safe_dump({**model, "hidden_dropout_prob": 0.0,
                                                             "attention_probs_dropout_prob": 0.0}))
    config = yaml.safe_load((root / "pretrain.yaml").read_text())
    config.update(model=str(root / "model_nodrop.yaml"), checkpoint_every=1000)
    config["schedule"]["iterations_per_task"] = 8
    config.update(changes)
    (root / name).write_text(yaml.safe_dump(config))
    return root / name


def _one_process_over_both_ranks_batches(config_path, tmp_path, accumulate=1):
    """Parameters after a dygraph run in one process whose every step averages the losses of the
    batches the two ranks read (each rank's `accumulate` micro-batches, where it has several)."""
    from ernie.pretrain.data import PretrainingData
    from ernie.pretrain.trainer import Trainer, load_config

    reference = load_config(config_path, {"output": str(tmp_path / "ref"), "mode": "dygraph", "amp": "off"},
                            ["max_tokens_per_device=null"])
    trainer = Trainer(reference)
    vocab_ids = (trainer.data.pad_id, trainer.data.mask_token_id, trainer.data.first_normal_id)
    readers = [PretrainingData(reference.data, reference.seed, reference.batch_tokens // accumulate, *vocab_ids,
                               rank=r, world_size=2) for r in (0, 1)]
    runner, task_steps, tokens = trainer.runner, {}, 0
    initial = {p.name: p.numpy() for p in runner.model.parameters()}
    for i, step in enumerate(trainer.schedule.steps()):
        task_steps[step.task] = task_steps.get(step.task, 0) + 1
        runner.learning_rate.set(trainer.learning_rate(step.task, task_steps[step.task]))
        losses = []
        for reader in readers:
            for j in range(accumulate):
                feed = reader.batch(i * accumulate + j, step.task, step.on, trainer.task_order,
                                    registry.get(step.task).task_id)
                losses.append(runner.model({k: paddle.to_tensor(feed[k]) for k in trainer.feed_names})["loss"])
                tokens += int(feed["tokens"])
        (sum(losses) / len(losses)).backward()
        runner.optimizer.step()
        runner.optimizer.clear_grad()
    return initial, {p.name: p.numpy() for p in runner.model.parameters()}, tokens


@pytest.mark.parametrize("mode,accumulate", [("static", 1), ("dygraph", 1), ("static", 2), ("dygraph", 2)])
def test_two_processes_equal_one_process_over_the_same_global_batches(pretrain_setup, tmp_path, mode, accumulate):
    """Data parallelism on CPU (gloo), in the static program (the all-reduce in the program) and
    in dygraph (fleet), each rank's batch in one piece or accumulated over two micro-batches
    (`max_tokens_per_device`): both ranks end identical, and equal a single process that averages
    the losses of the two ranks' (micro-)batches (dropout off, so no randomness differs)."""
    config = _dp_config(pretrain_setup, f"pretrain_dp_{accumulate}.yaml",
                        max_tokens_per_device=256 // accumulate if accumulate > 1 else None)
    distributed = _launch(config, tmp_path / "dp", tmp_path / "logs", "--mode", mode)
    initial, single, tokens = _one_process_over_both_ranks_batches(config, tmp_path, accumulate)
    logged = [json.loads(line) for line in (tmp_path / "dp" / "log.jsonl").read_text().splitlines()]
    assert sum(r.get("tokens", 0) for r in logged) == tokens  # the real tokens of both ranks, not rank 0's x 2
    assert single.keys() == distributed.keys()
    for name in single:
        np.testing.assert_allclose(distributed[name], single[name], atol=1e-6, rtol=0, err_msg=name)
    assert max(float(np.abs(single[n] - initial[n]).max()) for n in single) > 1e-3  # it did train


@NEEDS_CPU_BF16
def test_two_processes_train_in_bfloat16(pretrain_setup, tmp_path):
    """bf16 in the data-parallel static program: ranks identical, close to float32 in one process."""
    config = _dp_config(pretrain_setup, "pretrain_dp_bf16.yaml", amp="bf16")
    distributed = _launch(config, tmp_path / "dp", tmp_path / "logs")
    initial, single, _ = _one_process_over_both_ranks_batches(config, tmp_path)
    moved = np.sqrt(sum(float(((single[n] - initial[n]) ** 2).sum()) for n in single))
    apart = np.sqrt(sum(float(((distributed[n] - single[n]) ** 2).sum()) for n in single))
    assert apart < 0.1 * moved, (apart, moved)


INJECT_INF = """
import os, sys
sys.path.insert(0, {repo!r})
import numpy as np
from ernie.pretrain import data
from ernie.pretrain.trainer import main
original = data.PretrainingData.batch
def batch(self, step, *args, **kwargs):
    feed = original(self, step, *args, **kwargs)
    if os.environ["PADDLE_TRAINER_ID"] == "1" and step == 5:  # rank 1's sixth batch only
        feed["task_weights"] = np.full_like(feed["task_weights"], np.inf)
        self.corrupt_examples += 1  # and, as if its shards had one, an example skipped as corrupt
    return feed
data.PretrainingData.batch = batch
sys.exit(main())
"""


INJECT_SEED = """
import os, sys
sys.path.insert(0, {repo!r})
import paddle
from ernie.pretrain.trainer import main
if os.environ["PADDLE_TRAINER_ID"] == "1":  # rank 1 builds its initial parameters from another seed
    original, calls = paddle.seed, []
    def seed(value):
        calls.append(value)
        return original(value + 1 if len(calls) == 1 else value)
    paddle.seed = seed
sys.exit(main())
"""


INJECT_SET = """
import os, sys
sys.path.insert(0, {repo!r})
from ernie.pretrain.trainer import main
if os.environ["PADDLE_TRAINER_ID"] == "1":  # rank 1's node has its own copy of the config, at another rate
    sys.argv += ["--set", "optimization.learning_rate=0.5"]
sys.exit(main())
"""


INJECT_MAX_STEPS = """
import os, sys
sys.path.insert(0, {repo!r})
from ernie.pretrain.trainer import main
if os.environ["PADDLE_TRAINER_ID"] == "1":  # rank 1's node was started for a smoke test
    sys.argv += ["--max-steps", "2"]
sys.exit(main())
"""


@pytest.mark.parametrize("inject, error", [
    (INJECT_SEED, "the ranks would start step 1 from different parameters"),
    (INJECT_SET, r"the ranks would train different runs: config keys optimization\.learning_rate differ between "
                 r"rank 0 and rank\(s\) 1;"),
    (INJECT_MAX_STEPS, r"the ranks would train different runs: last step \(--max-steps\) differ between rank 0 "
                       r"and rank\(s\) 1;")])
def test_ranks_that_would_start_differently_stop_before_the_first_step(pretrain_setup, tmp_path, inject, error):
    """Each rank builds its initial parameters from the seed and reads its own copy of the config
    and its own command line; one that builds other parameters, would train at another rate or
    stop at another step (whose checkpoint's gathering would meet the other's all-reduce: a hang)
    stops the job at the start, in one line on every rank naming what differs, before a step is
    trained."""
    (tmp_path / "inject.py").write_text(inject.format(repo=str(REPO)))
    config = _dp_config(pretrain_setup, "pretrain_seed.yaml")
    logs = tmp_path / "logs"
    launch = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                             "--log_dir", str(logs), str(tmp_path / "inject.py"), "--config", str(config),
                             "--output", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True)
    assert launch.returncode != 0
    for rank in (0, 1):
        text = (logs / f"workerlog.{rank}").read_text()
        assert re.search(rf"^error: rank {rank}: {error}", text, re.M), text[-3000:]
        # no Python traceback; the launcher may stop the slower rank once the first has exited, after its
        # error line, and Paddle's signal handler then prints a "C++ Traceback" of the SIGTERM
        assert not re.search(r"^Traceback", text, re.M), text[-3000:]
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "model").exists()


def test_an_inf_on_one_rank_skips_the_step_on_both_and_the_run_goes_on(pretrain_setup, tmp_path):
    """Rank 1 alone sees an infinite loss at step 6: both ranks skip that step (their parameters
    stay identical), the log counts it, the run ends; allowed no skip, it stops in one line
    naming the step. The summary counts the corrupt examples every rank skipped (rank 1's one)."""
    (tmp_path / "inject.py").write_text(INJECT_INF.format(repo=str(REPO)))
    config = _dp_config(pretrain_setup, "pretrain_inf.yaml", corrupt_shards="skip")
    _launch(config, tmp_path / "run", tmp_path / "logs", script=tmp_path / "inject.py")
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert sum(r.get("skipped_steps", 0) for r in records) == 1
    assert "skipped 1 step(s) for a non-finite loss or gradient" in (tmp_path / "logs" / "workerlog.0").read_text()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["corrupt_examples_skipped"] == 1

    logs = tmp_path / "logs-stop"
    launch = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                             "--log_dir", str(logs), str(tmp_path / "inject.py"), "--config", str(config),
                             "--output", str(tmp_path / "stop"), "--quiet", "--set", "max_skipped_steps=0"],
                            capture_output=True, text=True)
    rank0 = (logs / "workerlog.0").read_text()
    assert re.search(r"^error: step 6: 1 steps in a row skipped .*at most 0 allowed", rank0, re.M), rank0[-3000:]
    assert "Traceback" not in rank0 and not (tmp_path / "stop" / "model").exists(), launch.stdout[-2000:]


def _children(pid):
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def test_a_dead_rank_stops_the_job_naming_it_and_resume_ends_as_uninterrupted(pretrain_setup, tmp_path):
    """Two machines' worth of launchers (one rank each); rank 1 is killed (kill -9) after a
    checkpoint: rank 0 stops by itself with an error naming rank 1, and resuming (one
    launcher, two ranks) ends with the parameters of an uninterrupted data-parallel run."""
    root = pretrain_setup
    whole = _launch(root / "pretrain.yaml", tmp_path / "whole", tmp_path / "logs-whole")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        master = f"127.0.0.1:{s.getsockname()[1]}"
    killed = tmp_path / "killed"
    nodes = [_launch(root / "pretrain.yaml", killed, tmp_path / f"logs-node{n}", nodes=(n, master), wait=False)
             for n in (0, 1)]
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= "step-00000040"):
        time.sleep(0.02)
    (worker,) = _children(nodes[1].pid)
    os.kill(worker, signal.SIGKILL)
    nodes[0].wait(timeout=300)  # a bound on a hang only: rank 0 must stop by itself, long before
    nodes[1].wait(timeout=300)
    assert not (killed / "model").exists(), "the run finished before it could be killed"
    assert nodes[0].returncode != 0
    rank0 = (tmp_path / "logs-node0" / "workerlog.0").read_text()
    assert re.search(r"error: rank 0: step \d+ failed \(.*\): rank 1 stopped", rank0), rank0[-3000:]

    resumed = _launch(root / "pretrain.yaml", killed, tmp_path / "logs-resumed", "--resume")
    for name in whole:
        np.testing.assert_allclose(resumed[name], whole[name], atol=1e-6, rtol=0, err_msg=name)
    steps = [json.loads(line)["step"] for line in (killed / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == _total_steps(root)


def test_ranks_on_cpus_of_two_kinds_agree_on_one_precision_under_amp_auto(pretrain_setup, tmp_path):
    """Two machines' worth of launchers, the second's capped at AVX2 (a CPU without bfloat16
    instructions): under `amp: auto` the first decides bf16 and the second float32; they agree on
    float32, which the run records, instead of building programs of two precisions."""
    from ernie.kernels.cpu_kernels import auto_amp
    if auto_amp()[0] != "bf16":
        pytest.skip(f"needs a CPU where amp auto is bf16; here: {auto_amp()[1]}")
    config = _dp_config(pretrain_setup, "pretrain_dp_auto.yaml", amp="auto")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        master = f"127.0.0.1:{s.getsockname()[1]}"
    nodes = [_launch(config, tmp_path / "run", tmp_path / f"logs-node{n}", nodes=(n, master), wait=False,
                     env={**os.environ, **(ISA_CAPS["avx2"] if n else {})}) for n in (0, 1)]
    for node in nodes:
        assert node.wait(timeout=300) == 0
    rank0, rank1 = ((tmp_path / f"logs-node{n}" / "workerlog.0").read_text() for n in (0, 1))
    assert "amp auto: bf16" in rank0 and "amp auto: off (this CPU has no bfloat16 instructions" in rank1
    assert "amp auto: off on every rank: ranks [0] chose bfloat16 for their CPUs and the others not" in rank0
    assert "parameters identical on all 2 ranks" in rank0
    segments = json.loads((tmp_path / "run" / "summary.json").read_text())["segments"]
    assert [s["amp"] for s in segments] == ["off"]


def _with_model(root, name, **changes):
    """The fixture's pre-training config with its model preset changed."""
    model = yaml.safe_load((root / "model.yaml").read_text())
    (root / f"{name}_model.yaml").write_text(yaml.safe_dump({**model, **changes}))
    config = yaml.safe_load((root / "pretrain.yaml").read_text())
    config["model"] = str(root / f"{name}_model.yaml")
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return root / f"{name}.yaml"


@pytest.mark.parametrize("changes,message", [
    ({"sent_type_vocab_size": 2}, r"task sentence_reordering's examples hold 4 sentence types, but the model "
                                  r"\(.*_model.yaml\) has 2 \(sent_type_vocab_size\)"),
    ({"max_position_embeddings": 32}, r"shards of max_seq_len 64, but the model \(.*_model.yaml\) has 32 positions"),
    ({"task_type_vocab_size": 2}, r"task sentence_reordering has id 3, which the task embedding of the model"),
], ids=["sentence-types", "positions", "task-ids"])
def test_a_model_that_does_not_fit_the_shards_is_refused_before_step_1(pretrain_setup, tmp_path, changes, message):
    config = _with_model(pretrain_setup, "misfit", **changes)
    result = subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(config), "--output",
                             str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.fullmatch(r"error: .*" + message + r".*\n", result.stderr), result.stderr[-2000:]
    assert not (tmp_path / "out" / "log.jsonl").exists()  # refused before anything was trained


def test_a_model_of_two_sentence_types_grows_them_for_sentence_reordering(pretrain_setup, tmp_path, en_vocab):
    """A BERT-shaped model (2 sentence types) continued with sentence reordering (up to 4 segments):
    its table grows, the new rows copies of its second, said at start-up, and training runs."""
    from ernie.formats.checkpoint import save_model_dir
    from ernie.model.config import ErnieConfig
    from ernie.model.param_names import encoder_param_shapes
    model = yaml.safe_load((pretrain_setup / "model.yaml").read_text())
    config = ErnieConfig(**{**model, "vocab_size": len(en_vocab.read_text().splitlines()),
                            "sent_type_vocab_size": 2, "use_task_id": False})
    rng = np.random.default_rng(0)
    params = {n: rng.normal(0, 0.02, s).astype(np.float32) for n, s in encoder_param_shapes(config).items()}
    bert = save_model_dir(tmp_path / "bert", config, params, vocab_file=en_vocab)
    run = yaml.safe_load((pretrain_setup / "pretrain.yaml").read_text())
    run.pop("model")
    (tmp_path / "continue.yaml").write_text(yaml.safe_dump({**run, "init_model": str(bert)}))
    result = subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(tmp_path / "continue.yaml"),
                             "--output", str(tmp_path / "out"), "--quiet", "--max-steps", "3"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "grown: task embedding 0 -> 8 rows (new rows zero), sentence types 2 -> 4 (new rows copies of row 1)" \
        in result.stdout, result.stdout
    table = load_params(tmp_path / "out" / "checkpoints" / "step-00000003" / "params.safetensors")["sent_embedding"]
    assert table.shape == (4, model["hidden_size"])


def test_grown_sentence_types_copy_the_last_row():
    from ernie.pretrain.init_model import grow_sentence_types
    table = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(grow_sentence_types(table, 4), [[0, 1, 2], [3, 4, 5], [3, 4, 5], [3, 4, 5]])


def test_models_saved_at_token_counts_are_the_same_after_a_resume(pretrain_setup, tmp_path):
    """save_models_at_tokens: a model where the run's real tokens first reach each count, the
    count kept by checkpoints, so a killed and resumed run saves the same models at the same steps."""
    counts = "save_models_at_tokens=[500,2000,5000]"
    whole = _pretrain(pretrain_setup, tmp_path / "whole", "--set", counts)
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = _pretrain(pretrain_setup, tmp_path / "killed", "--set", counts, "--max-steps", "12")
    assert first.returncode == 0, first.stderr[-2000:]
    rest = _pretrain(pretrain_setup, tmp_path / "killed", "--set", counts, "--resume")
    assert rest.returncode == 0, rest.stderr[-2000:]
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    records = [r for r in records if "tokens" in r]
    assert summary["tokens_seen"] == sum(r["tokens"] for r in records)
    for n in (500, 2000, 5000):
        saved = [json.loads((run / "models" / f"tokens-{n}" / "tokens.json").read_text())
                 for run in (tmp_path / "whole", tmp_path / "killed")]
        assert saved[0] == saved[1] and saved[0]["tokens_seen"] >= n > saved[0]["tokens_seen"] - 600
        a, b = (load_params(run / "models" / f"tokens-{n}" / "params.safetensors")
                for run in (tmp_path / "whole", tmp_path / "killed"))
        for name in a:
            np.testing.assert_allclose(a[name], b[name], atol=1e-6, rtol=0, err_msg=name)
    from ernie.formats.checkpoint import model_lower_cases
    for saved in (tmp_path / "whole" / "model", tmp_path / "whole" / "models" / "tokens-500"):
        assert model_lower_cases(saved) is True  # the shards' casing, for fine-tuning to read text alike


def test_constant_schedule_warms_up_then_holds():
    from ernie.model.optimization import linear_warmup_constant
    assert [linear_warmup_constant(1e-3, 4, s) for s in (1, 2, 4, 5, 10_000)] == [2.5e-4, 5e-4, 1e-3, 1e-3, 1e-3]


def test_a_corrupt_manifest_or_checkpoint_state_is_named(pretrain_setup, tmp_path):
    """Cut short, a manifest gave a JSON error naming no file, and one without `vocab` a KeyError
    traceback; a checkpoint's broken trainer_state.json the same."""
    import shutil
    shutil.copytree(pretrain_setup / "shards", tmp_path / "shards")
    manifest = tmp_path / "shards" / "manifest.json"
    whole = manifest.read_text()
    for text in (whole[:500], json.dumps({k: v for k, v in json.loads(whole).items() if k != "vocab"})):
        manifest.write_text(text)
        done = _pretrain(pretrain_setup, tmp_path / "run", "--set", f"data={tmp_path / 'shards'}")
        assert done.returncode == 2 and done.stderr.startswith(
            f"error: {manifest}: not a manifest as `data_gen make` writes it ("), done.stderr
        inspected = subprocess.run([sys.executable, "-m", "data_gen", "inspect", str(tmp_path / "shards")],
                                   capture_output=True, text=True)
        assert inspected.returncode == 2 and f"{manifest}: not a manifest" in inspected.stderr
    nowhere = subprocess.run([sys.executable, "-m", "data_gen", "inspect", str(tmp_path / "nope")],
                             capture_output=True, text=True)
    assert nowhere.stderr == f"error: {tmp_path / 'nope'} not found: a shard or a directory of shards\n"
    assert _pretrain(pretrain_setup, tmp_path / "run", "--max-steps", "5").returncode == 0
    state = tmp_path / "run" / "checkpoints" / "step-00000005" / "trainer_state.json"
    state.write_text(state.read_text()[:40])
    done = _pretrain(pretrain_setup, tmp_path / "run", "--resume")
    assert done.returncode == 2 and done.stderr.startswith(
        f"error: --resume: {state.parent} is not a checkpoint this trainer wrote (JSONDecodeError: "), done.stderr
