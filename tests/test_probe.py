"""The linear probe (ernie/finetune/probe.py): its sentence vectors against the dygraph encoder
run by hand on the same texts, its classifier against scikit-learn fitted independently on
those vectors, its choice of C on dev, and its command line."""
import json

import numpy as np
import paddle
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import StandardScaler

from ernie.finetune import floors, probe
from ernie.finetune.settings import load_settings
from ernie.finetune.tasks import get_task
from ernie.finetune.trainer import read_data, resolve_casing
from ernie.formats.checkpoint import load_model_dir
from ernie.model.features import pack_pair, pad_batch
from ernie.model.modeling import ErnieModel
from ernie.model.params_io import assign_layer_params
from ernie_common.tokenization import FullTokenizer
from tests.test_finetune import model_with_broken_vocab
from tests.test_floors import FILLER, write_texts


def noisy(rng, n):
    """Texts whose label is the majority of "good" over "bad", a fifth of the labels flipped."""
    out = []
    for _ in range(n):
        words = list(rng.choice(FILLER + ["good", "bad"], rng.integers(3, 10)))
        label = "positive" if words.count("good") > words.count("bad") else "negative"
        out.append((" ".join(words).capitalize(), label if rng.random() > 0.2 else
                    {"positive": "negative", "negative": "positive"}[label]))
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    rng = np.random.default_rng(5)
    return write_texts(tmp_path_factory.mktemp("probe") / "d",
                       {"train": noisy(rng, 60), "dev": noisy(rng, 24), "test": noisy(rng, 24)})


def vectors_by_hand(model_dir, texts, max_seq_len, task_id, pooling):
    """The dygraph encoder in eval mode, one text at a time, its top layer averaged in NumPy."""
    config, params, vocab = load_model_dir(model_dir)
    model = ErnieModel(config)
    assign_layer_params(model, params)
    model.eval()
    tok = FullTokenizer(vocab)  # lower-cases, as the settings' do_lower_case
    found = []
    for text in texts:
        feeds = pad_batch([pack_pair(tok.encode(text), None, max_seq_len, tok.cls_id, tok.sep_id)], tok.pad_id, task_id)
        sequence, pooled = model(**{k: paddle.to_tensor(v) for k, v in feeds.items()})
        found.append(sequence.numpy()[0].mean(axis=0) if pooling == "mean" else pooled.numpy()[0])
    return np.stack(found)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_vectors_are_the_frozen_encoders(init_model, data_dir, pooling):
    task = get_task("review-sentiment")
    config, params, vocab = load_model_dir(init_model)
    data = read_data(task, data_dir)
    kind = probe.KINDS[task.kind](task, FullTokenizer(vocab), 16, ["negative", "positive"], pooling=pooling)
    examples = data.dev[:7]
    vectors = probe.sentence_vectors(config, params, kind, kind.features(examples, with_labels=False), 0, 5)
    expected = vectors_by_hand(init_model, [e.text_a for e in examples], 16, 0, pooling)
    np.testing.assert_allclose(vectors, expected, rtol=1e-4, atol=1e-5)


def test_score_is_scikit_learns_on_the_same_vectors_and_c_is_chosen_on_dev(init_model, data_dir):
    task = get_task("review-sentiment")
    settings = resolve_casing(load_settings(None, None, ["pooling=mean", "max_seq_len=16"]), init_model / "vocab.txt")
    config, params, vocab = load_model_dir(init_model)
    data = read_data(task, data_dir)
    result = probe.linear_probe(task, settings, config, params, vocab, data)

    # the vectors as the probe computes them (checked against the encoder by hand above: a C near
    # a tie can turn on their last bits), the classifier from scikit-learn alone
    kind = probe.KINDS[task.kind](task, FullTokenizer(vocab), 16, ["negative", "positive"], pooling="mean")
    split_vectors = {name: probe.sentence_vectors(config, params, kind, kind.features(examples, False), 0, 32)
                     for name, examples in (("train", data.train), ("dev", data.dev), ("test", data.test))}
    labels = {name: [e.label for e in examples]
              for name, examples in (("train", data.train), ("dev", data.dev), ("test", data.test))}
    scaler = StandardScaler().fit(split_vectors["train"])

    def accuracy(C, split):
        model = LogisticRegression(C=C, max_iter=floors.MAX_ITER).fit(scaler.transform(split_vectors["train"]),
                                                                      labels["train"])
        return accuracy_score(labels[split], model.predict(scaler.transform(split_vectors[split])))
    on_dev = {C: accuracy(C, "dev") for C in floors.C_GRID}
    chosen = max(floors.C_GRID, key=on_dev.get)  # the first of the highest
    assert result["chosen"] == {"C": chosen}
    assert [g["dev"] for g in result["grid"]] == pytest.approx([on_dev[C] for C in floors.C_GRID])
    assert result["dev"]["acc"] == pytest.approx(on_dev[chosen])
    assert result["test"]["acc"] == pytest.approx(accuracy(chosen, "test"))
    assert (result["train_examples"], result["pooling"], result["cut_to_max_seq_len"]) == (60, "mean", 0)


def test_cli_writes_probe_json_random_encoders_by_seed(init_model, data_dir, tmp_path, capsys):
    out = tmp_path / "probe.json"
    assert probe.main(["--task", "review-sentiment", "--data", str(data_dir), "--init-model", str(init_model),
                       "--set", "max_train_examples=40", "--set", "max_seq_len=8", "--output", str(out)]) == 0
    written = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == written
    assert written["train_examples"] == written["max_train_examples"] == 40 and written["cut_to_max_seq_len"] > 0
    assert written["init_model"] == str(init_model)

    no_test = tmp_path / "no-test"
    no_test.mkdir()
    for split in ("train", "dev"):
        (no_test / f"{split}.tsv").write_bytes((data_dir / f"{split}.tsv").read_bytes())
    assert probe.main(["--task", "review-sentiment", "--data", str(no_test), "--init-model", str(init_model)]) == 0
    assert "test" not in json.loads(capsys.readouterr().out)  # no test file: dev alone

    vocab, model_config = str(init_model / "vocab.txt"), str(init_model / "ernie_config.json")
    random = [["--task", "review-sentiment", "--data", str(data_dir), "--vocab", vocab, "--model-config", model_config,
               "--seed", str(seed), "--set", "max_seq_len=16"] for seed in (1, 1, 2)]
    grids = []
    for args in random:
        assert probe.main(args) == 0
        grids.append(json.loads(capsys.readouterr().out)["grid"])
    assert grids[0] == grids[1] and grids[0] != grids[2]  # a seed fixes the random encoder, another changes it


def test_cli_errors_are_one_line_and_exit_2(init_model, data_dir, tmp_path, capsys):
    model = ["--init-model", str(init_model)]
    for args, message in ((["--task", "nope", *model], "unknown task 'nope'"),
                          (["--task", "STS-B", "--data", str(data_dir), *model], "STS-B is a regression task"),
                          (["--task", "review-sentiment", "--data", str(data_dir)], "random initialisation needs --vocab"),
                          (["--task", "review-sentiment", "--data", str(tmp_path / "none"), *model], "data file not found"),
                          (["--task", "review-sentiment", "--data", str(data_dir), "--init-model", str(tmp_path)],
                           str(tmp_path)),
                          (["--task", "review-sentiment", "--data", str(data_dir), "--init-model",
                            str(model_with_broken_vocab(init_model, tmp_path / "broken"))], "vocab.txt:100: empty token"),
                          (["--task", "review-sentiment", "--data", str(data_dir), *model, "--set", "max_seq_len=65"],
                           "max_seq_len 65 exceeds the model's max_position_embeddings 64")):
        assert probe.main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
