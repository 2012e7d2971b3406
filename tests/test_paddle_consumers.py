"""PaddleNLP both ways: `ernie.convert --from/--to paddlenlp` and `ernie.export --format paddlenlp`,
checked against the real `paddlenlp` package (in its own environment: studies/external_env.py)."""
import dataclasses
import json
import pickle

import numpy as np
import pytest

from ernie.convert import main as convert_main
from ernie.export import export
from ernie.formats.checkpoint import CheckpointError, load_model_dir
from ernie.formats.paddlenlp_format import PDPARAMS_FILE, read_paddlenlp_dir, read_pdparams
from ernie.serving.inference_model import inference_program
from studies.external_env import run_in
from tests.test_export import finetuned  # noqa: F401  (fixture)

IDS = [[1, 17, 33, 52, 9, 2], [1, 40, 41, 2, 0, 0]]  # [CLS] ... [SEP], the second row padded
SENT = [[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]]


def _feeds(task_id=0):
    ids = np.array(IDS, np.int64)
    return {"src_ids": ids, "sent_ids": np.array(SENT, np.int64),
            "pos_ids": np.tile(np.arange(ids.shape[1], dtype=np.int64), (2, 1)),
            "input_mask": (ids != 0).astype(np.float32), "task_ids": np.full(ids.shape, task_id, np.int64)}


def test_round_trip_keeps_every_parameter(init_model, tmp_path):  # noqa: F811
    out = export(init_model, "paddlenlp", tmp_path / "nlp")
    config, params, ignored = read_paddlenlp_dir(out)
    original_config, original, _ = load_model_dir(init_model)
    assert ignored == [] and set(params) == set(original)
    assert config == dataclasses.replace(original_config, layer_norm_eps=1e-12)
    for name, value in original.items():
        np.testing.assert_array_equal(params[name], value)
    state = read_pdparams(out / PDPARAMS_FILE)
    assert "encoder.layers.1.linear1.weight" in state and "embeddings.task_type_embeddings.weight" in state
    assert json.loads((out / "config.json").read_text())["architectures"] == ["ErnieModel"]


def test_pickle_that_runs_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            import os
            return os.system, ("echo pwned",)
    (tmp_path / PDPARAMS_FILE).write_bytes(pickle.dumps({"w": Payload()}))
    with pytest.raises(CheckpointError, match=r"refused to load (posix|os)\.system"):
        read_pdparams(tmp_path / PDPARAMS_FILE)


def test_layer_norm_epsilon_is_paddlenlps(init_model, tmp_path, capsys):  # noqa: F811
    """PaddleNLP's ERNIE computes with epsilon 1e-12 whatever its config says: a model read from it
    gets 1e-12; one written for it with another epsilon comes with a note."""
    assert convert_main(["--from", "ernie", "--to", "paddlenlp", str(init_model), str(tmp_path / "nlp")]) == 0
    assert "PaddleNLP's ERNIE always uses 1e-12" in capsys.readouterr().err
    assert json.loads((tmp_path / "nlp" / "config.json").read_text())["layer_norm_eps"] == 1e-12
    config, _, _ = read_paddlenlp_dir(tmp_path / "nlp")
    assert config.layer_norm_eps == 1e-12


LOAD_OURS = """
import json, sys
import numpy as np, paddle
from paddlenlp.transformers import ErnieForSequenceClassification, ErnieModel, ErnieTokenizer
path, feeds = sys.argv[1], json.loads(sys.argv[2])
# the task classes take no task ids: their embeddings use the config's task_id
args = dict(input_ids=paddle.to_tensor(feeds["src_ids"]), token_type_ids=paddle.to_tensor(feeds["sent_ids"]))
classifier = ErnieForSequenceClassification.from_pretrained(path)
classifier.eval()
encoder = ErnieModel.from_pretrained(path)
encoder.eval()
tokenizer = ErnieTokenizer.from_pretrained(path)
print(json.dumps({"logits": classifier(**args).numpy().tolist(),
                  "pooled": encoder(**args, task_type_ids=paddle.to_tensor(feeds["task_ids"]))[1].numpy().tolist(),
                  "ids": tokenizer("war and peace")["input_ids"],
                  "num_labels": classifier.num_labels}))
"""


def test_real_paddlenlp_loads_the_export(finetuned, tmp_path):  # noqa: F811
    """PaddleNLP 2.8.1's ErnieForSequenceClassification gives the fine-tuned model's logits, its
    ErnieModel the encoder's pooled output, its ErnieTokenizer this library's ids."""
    out = export(finetuned, "paddlenlp", tmp_path / "nlp")
    feeds = _feeds()
    got = json.loads(run_in("paddle-consumers", LOAD_OURS, str(out), json.dumps({k: v.tolist() for k, v in feeds.items()})))
    expected = inference_program(finetuned).run(feeds)
    np.testing.assert_allclose(got["logits"], expected["logits"], atol=1e-5)
    assert got["num_labels"] == 2
    config, params, vocab = load_model_dir(finetuned)
    from ernie.model.static_graph import StaticEncoder
    _, pooled = StaticEncoder(config, params).run(feeds)
    np.testing.assert_allclose(got["pooled"], pooled, atol=1e-5)
    from ernie_common.tokenization import FullTokenizer
    tokenizer = FullTokenizer(vocab)
    assert got["ids"] == [tokenizer.cls_id, *tokenizer.encode("war and peace"), tokenizer.sep_id]


SAVE_THEIRS = """
import json, sys
import paddle
from paddlenlp.transformers import ErnieConfig, ErnieModel
path, feeds = sys.argv[1], json.loads(sys.argv[2])
paddle.seed(11)
config = ErnieConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                     max_position_embeddings=40, type_vocab_size=2, use_task_id=True, task_type_vocab_size=3)
model = ErnieModel(config)
model.eval()
model.save_pretrained(path)
sequence, pooled = model(input_ids=paddle.to_tensor(feeds["src_ids"]), token_type_ids=paddle.to_tensor(feeds["sent_ids"]),
                         task_type_ids=paddle.to_tensor(feeds["task_ids"]))
print(json.dumps({"sequence": sequence.numpy().tolist(), "pooled": pooled.numpy().tolist()}))
"""


def test_real_paddlenlp_save_converts(tmp_path):
    """A model PaddleNLP 2.8.1 saved (`save_pretrained`) converts with `--from paddlenlp` and gives
    PaddleNLP's outputs; a padded row is masked alike."""
    feeds = _feeds(task_id=2)
    got = json.loads(run_in("paddle-consumers", SAVE_THEIRS, str(tmp_path / "theirs"),
                            json.dumps({k: v.tolist() for k, v in feeds.items()})))
    assert convert_main(["--from", "paddlenlp", "--to", "ernie", str(tmp_path / "theirs"), str(tmp_path / "ours")]) == 0
    config, params, _ = load_model_dir(tmp_path / "ours")
    assert config.layer_norm_eps == 1e-12 and config.sent_type_vocab_size == 2 and config.use_task_id
    from ernie.model.static_graph import StaticEncoder
    sequence, pooled = StaticEncoder(config, params).run(feeds)
    np.testing.assert_allclose(got["pooled"], pooled, atol=1e-5)
    real = feeds["input_mask"].astype(bool)
    np.testing.assert_allclose(np.array(got["sequence"])[real], sequence[real], atol=1e-5)


HUB_RUN = """
import json, sys
import paddlehub as hub
try:
    import ernie  # noqa: F401
    sys.exit("the framework is importable here: the module would not be shown self-contained")
except ImportError:
    pass
module = hub.Module(directory=sys.argv[1])
texts = json.loads(sys.argv[2])
print(json.dumps({"name": module.name, "predictions": module.predict(texts)}))
try:
    module.predict(texts, texts)
except ValueError as err:
    print(json.dumps({"pair_error": str(err)}))
"""


def test_real_paddlehub_loads_and_runs_the_hub_export(finetuned, tmp_path):  # noqa: F811
    """PaddleHub 2.4.0's `hub.Module(directory=...)` loads the exported folder, without this
    project importable, and predicts what `ernie.predict` does; a pair for a one-text model is
    refused."""
    from ernie.predict import Predictor
    out = export(finetuned, "hub", tmp_path / "hub")
    texts = ["war and peace", "the people of the nation", "taxes taxes economy", "a"]
    lines = run_in("paddle-consumers", HUB_RUN, str(out), json.dumps(texts)).splitlines()
    got, refused = json.loads(lines[-2]), json.loads(lines[-1])
    assert got["name"] == "ernie_sst_2"
    assert got["predictions"] == Predictor(out).predict(texts)
    assert "takes one text an example" in refused["pair_error"]
