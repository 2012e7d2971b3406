"""Pre-training continued from a model (`init_model:`): the encoder and every head the model has
are carried bit for bit, a new task's head starts fresh, the task embedding grows keeping its
rows, the model computes before the first update exactly what it computed when it was saved, and
a model that does not fit the shards is a clear error."""
import json
import shutil

import numpy as np
import paddle
import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from ernie.formats.checkpoint import CheckpointError, load_params
from ernie.model.params_io import assign_layer_params
from ernie.pretrain.model import ErnieForPretraining
from ernie.pretrain.trainer import PretrainError, Trainer, load_config
from tests.conftest import REPO
from tests.test_data_gen_make import _documents

MODEL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64, use_task_id=True, task_type_vocab_size=2,
             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _config(root, name, stages, **extra):
    config = dict(data=str(root / "shards"), output=str(root / name), seed=1, batch_tokens=256, log_every=5,
                  checkpoint_every=1000, optimization={"learning_rate": 1e-3, "warmup_steps": 5},
                  schedule={"strategy": "continual_multitask", "stages": stages, "iterations_per_task": 6}, **extra)
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return load_config(root / f"{name}.yaml")


@pytest.fixture(scope="module")
def first_model(tmp_path_factory, en_vocab):
    """Shards of three token-level tasks (ids 0-2) and a model pre-trained on the first alone."""
    root = tmp_path_factory.mktemp("init_model")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 30)), encoding="utf-8")
    make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                    tasks=["knowledge_masking", "capitalization", "token_document"], max_seq_len=64, shards=1,
                    stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    (root / "small.yaml").write_text(yaml.safe_dump(MODEL))
    Trainer(_config(root, "first", [["knowledge_masking"]], model=str(root / "small.yaml"))).train(progress=False)
    return root, root / "first" / "model"


def _saved_model_losses(params, tasks, feeds, config):
    """Per-task losses of a dygraph model holding `params`, dropout off."""
    model = ErnieForPretraining(config, tasks)
    model.eval()
    assign_layer_params(model, {p.name: params[p.name] for p in model.parameters()})
    out = model({k: paddle.to_tensor(v) for k, v in feeds.items() if k != "tokens"})
    return {k: float(v.numpy().reshape(-1)[0]) for k, v in out.items() if k.endswith("/loss")}


def _continued_run_losses(trainer, feeds):
    """Per-task losses of the continued run's own program state, before any update, dropout off."""
    from ernie.pretrain.model import pretraining_feeds
    from propeller.static_runner import InferenceProgram

    def model_fn():
        model = ErnieForPretraining(trainer.train_config, trainer.num_classes)
        model.eval()
        inputs = pretraining_feeds(model)
        return inputs, {k: v for k, v in model(inputs).items() if k.endswith("/loss")}

    program = InferenceProgram(model_fn, scope=trainer.runner.scope, place=trainer.runner.place)
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in program.run(feeds).items()}


def test_a_continued_run_starts_where_the_model_ended(first_model):
    root, model_dir = first_model
    trainer = Trainer(_config(root, "continued", [["knowledge_masking"], ["capitalization"]],
                              init_model=str(model_dir)))
    assert trainer.schedule.learned == ("knowledge_masking",)  # replayed in both stages
    assert trainer.schedule.stages[0].allocation == {"knowledge_masking": 3}
    trainer._start_from_init_model()
    started = trainer.runner.state()
    saved = load_params(model_dir / "params.safetensors")
    for name, value in saved.items():  # the encoder and the masked-LM head, bit for bit
        if name != "task_embedding":
            np.testing.assert_array_equal(started[name], value, err_msg=name)
    # the task embedding grew from 2 rows to capitalization's id + 1, its old rows kept, new rows 0
    assert started["task_embedding"].shape == (2, 32) and trainer.model_config.task_type_vocab_size == 2
    assert not np.allclose(started["capitalization_fc.w_0"], 0)  # the new task's head: fresh, not loaded

    feeds = trainer.data.batch(0, "knowledge_masking", ["knowledge_masking"], trainer.task_order, 0)
    before = _continued_run_losses(trainer, feeds)
    saved_model = _saved_model_losses(saved, {"knowledge_masking": None},
                                      {k: v for k, v in feeds.items() if not k.startswith("capitalization")}
                                      | {"task_weights": np.ones(1, np.float32)}, trainer.model_config)
    assert before["knowledge_masking/loss"] == pytest.approx(saved_model["knowledge_masking/loss"], abs=1e-6)


def test_the_task_embedding_grows_for_a_new_tasks_id(first_model):
    root, model_dir = first_model
    trainer = Trainer(_config(root, "grown", [["knowledge_masking"], ["token_document"]],
                              init_model=str(model_dir)))
    trainer._start_from_init_model()
    table = trainer.runner.state()["task_embedding"]
    saved = load_params(model_dir / "params.safetensors")["task_embedding"]
    assert table.shape == (3, 32)  # token-document relation's id is 2
    np.testing.assert_array_equal(table[:2], saved)
    np.testing.assert_array_equal(table[2:], 0)


def test_a_model_that_does_not_fit_is_a_clear_error(first_model, tmp_path, en_vocab):
    root, model_dir = first_model
    other = dict(MODEL, hidden_size=64, num_attention_heads=4)
    (root / "other.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(PretrainError, match="does not have the shape of the config's model: hidden_size 32"):
        Trainer(_config(root, "bad", [["knowledge_masking"]], init_model=str(model_dir), model=str(root / "other.yaml")))
    vocab_dir = tmp_path / "model"
    vocab_dir.mkdir()
    for f in model_dir.iterdir():
        (vocab_dir / f.name).write_bytes(f.read_bytes())
    lines = (vocab_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (vocab_dir / "vocab.txt").write_text("\n".join(lines[:-1] + ["zzzzz"]) + "\n", encoding="utf-8")
    with pytest.raises(PretrainError, match="its vocabulary .* is not the shards'"):
        Trainer(_config(root, "bad2", [["knowledge_masking"]], init_model=str(vocab_dir)))


def test_a_model_pre_trained_on_cased_shards_records_it(tmp_path, en_vocab):
    """Pre-training writes its shards' casing beside the model, so that fine-tuning, conversion
    and export read text as the model did."""
    from ernie.formats.checkpoint import model_lower_cases
    (tmp_path / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(2, 20)), encoding="utf-8")
    make(DataConfig(input=[str(tmp_path / "corpus.txt")], vocab=str(en_vocab), output=str(tmp_path / "shards"),
                    tasks=["knowledge_masking"], max_seq_len=64, shards=1, do_lower_case=False,
                    stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(MODEL))
    config = _config(tmp_path, "cased", [["knowledge_masking"]], model=str(tmp_path / "small.yaml"))
    config.schedule["iterations_per_task"] = 2
    Trainer(config).train(progress=False)
    assert model_lower_cases(tmp_path / "cased" / "model") is False


def test_a_cased_model_refuses_shards_made_lower_cased(first_model, tmp_path):
    """A cased model (its source's tokenizer_config.json, kept by the conversion) continued on
    lower-cased shards of the same vocabulary passed every check and trained on text it never saw."""
    from ernie.convert import convert
    root, model_dir = first_model
    with pytest.raises(CheckpointError, match="records that the model learned from lower-cased text; reading "
                                              "cased text would lose what it learned: leave out --cased"):
        convert("ernie", "hf", model_dir, tmp_path / "refused", do_lower_case=False)  # pre-training recorded it
    unrecorded = tmp_path / "unrecorded"
    shutil.copytree(model_dir, unrecorded)
    (unrecorded / "tokenizer_config.json").unlink()
    hf = tmp_path / "hf"
    convert("ernie", "hf", unrecorded, hf, do_lower_case=False)  # an HF directory that says it is cased
    convert("hf", "ernie", hf, tmp_path / "cased")
    assert (tmp_path / "cased" / "tokenizer_config.json").read_text() == '{"do_lower_case": false}\n'
    with pytest.raises(PretrainError, match=r"was trained on cased text \(tokenizer_config.json\), the shards were "
                                            r"made lower-cased: set do_lower_case: false in the data config"):
        Trainer(_config(root, "cased", [["knowledge_masking"]], init_model=str(tmp_path / "cased")))
    # the record travels on: to a copy of the model directory, to an export of the pre-trained model
    from ernie.export import export_library_dir
    convert("ernie", "ernie", tmp_path / "cased", tmp_path / "cased-copy")
    export_library_dir(tmp_path / "cased-copy", tmp_path / "hf-again", "hf")
    assert json.loads((tmp_path / "hf-again" / "tokenizer_config.json").read_text())["do_lower_case"] is False
    convert("ernie", "hf", model_dir, tmp_path / "hf-uncased")  # the record: lower-cased
    convert("hf", "ernie", tmp_path / "hf-uncased", tmp_path / "uncased")
    Trainer(_config(root, "uncased", [["knowledge_masking"]], init_model=str(tmp_path / "uncased")))  # agrees
