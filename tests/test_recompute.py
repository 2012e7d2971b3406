"""Activation recomputation (`recompute: true`): the encoder's layers are computed again in the
backward pass, with the forward's dropout masks, so training ends with the parameters it ends with
without recomputation: with the fused CPU kernels, with Paddle's own ops, and with accumulation."""
import numpy as np
import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from ernie.pretrain.trainer import Trainer, load_config
from tests.conftest import REPO
from tests.test_data_gen_make import _documents

MODEL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64, use_task_id=True, task_type_vocab_size=8,
             hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


@pytest.fixture(scope="module")
def root(tmp_path_factory, en_vocab):
    root = tmp_path_factory.mktemp("recompute")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(3, 30)), encoding="utf-8")
    make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                    tasks=["knowledge_masking", "sentence_reordering"], max_seq_len=64, shards=1,
                    stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    (root / "model.yaml").write_text(yaml.safe_dump(MODEL))
    return root


def _train(root, name, **extra):
    config = dict(model=str(root / "model.yaml"), data=str(root / "shards"), output=str(root / name), seed=2,
                  batch_tokens=256, log_every=2, checkpoint_every=1000,
                  optimization={"learning_rate": 1e-3, "warmup_steps": 2},
                  schedule={"strategy": "multitask", "stages": [["knowledge_masking", "sentence_reordering"]],
                            "iterations_per_task": 2}, **extra)
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
    trainer = Trainer(load_config(root / f"{name}.yaml"))
    trainer.train(progress=False)
    return trainer


@pytest.mark.parametrize("kernels", ["1", "0"], ids=["fused", "paddle-ops"])
@pytest.mark.parametrize("accumulate", [None, 128], ids=["one", "accumulated"])
def test_recompute_gives_the_gradients_of_the_plain_program(root, monkeypatch, kernels, accumulate):
    monkeypatch.setenv("ERNIE_CPU_KERNELS", kernels)
    name = f"{kernels}-{accumulate}"
    plain = _train(root, f"plain-{name}", max_tokens_per_device=accumulate)
    recomputed = _train(root, f"recomputed-{name}", max_tokens_per_device=accumulate, recompute=True)
    assert len(recomputed.runner.main.global_block().ops) > len(plain.runner.main.global_block().ops)
    a, b = plain.runner.state(), recomputed.runner.state()
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-7, err_msg=key)
