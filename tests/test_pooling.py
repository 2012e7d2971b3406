"""Mean pooling for sentence-level heads: the served model computes the mean of the top layer over
the real tokens (checked against numpy on the encoder's own outputs), the choice travels with the
model, and where it cannot be expressed (token heads, Hugging Face's classes) it is refused."""
import json

import numpy as np
import pytest

from ernie.export import export
from ernie.finetune.__main__ import main as finetune_main
from ernie.finetune.settings import SettingsError, load_settings
from ernie.formats.checkpoint import load_model_dir
from ernie.model.static_graph import StaticEncoder
from ernie.predict import Predictor
from tests.test_finetune import finetune_sst2

TEXTS = ["war and peace", "the people of the nation and their freedom", "taxes"]


@pytest.fixture(scope="module")
def mean_pooled(tmp_path_factory, init_model):  # noqa: F811
    return finetune_sst2(tmp_path_factory.mktemp("mean"), init_model, "pooling=mean")


def test_mean_pooled_head_is_the_masked_mean_of_the_top_layer(mean_pooled):
    assert json.loads((mean_pooled / "finetune.json").read_text())["pooling"] == "mean"
    predictor = Predictor(export(mean_pooled, "paddle-inference", mean_pooled.parent / "inference"))
    batch = predictor.kind.batch(predictor.kind.features(predictor.examples(TEXTS), with_labels=False), task_id=0)
    assert batch["input_mask"].sum(1).tolist() != [batch["input_mask"].shape[1]] * len(TEXTS)  # padding present
    logits = predictor.run(batch)["logits"]

    config, params, _ = load_model_dir(mean_pooled)
    encoder_params = {k: v for k, v in params.items() if not k.startswith("cls_out")}
    sequence, pooled = StaticEncoder(config, encoder_params).run(batch)
    mask = batch["input_mask"][:, :, None]
    mean = (sequence * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(logits, mean @ params["cls_out_w"] + params["cls_out_b"], atol=1e-4)
    cls_logits = pooled @ params["cls_out_w"] + params["cls_out_b"]
    assert np.abs(logits - cls_logits).max() > 1e-2  # the [CLS] head would have given other logits


def test_pooling_is_refused_where_it_cannot_apply(mean_pooled, tmp_path, capsys):
    with pytest.raises(SettingsError, match="pooling must be one of"):
        load_settings(overrides=["pooling=max"])
    conll = tmp_path / "ner"
    conll.mkdir()
    for split, words in (("train", "war\x02peace"), ("dev", "war\x02taxes"), ("test", "war\x02people")):
        (conll / f"{split}.tsv").write_text(f"text_a\tlabel\n{words}\tB-LOC\x02O\n")
    code = finetune_main(["--task", "MSRA-NER", "--data", str(conll), "--init-model", str(mean_pooled),
                          "--output", str(tmp_path / "o"), "--quiet", "--set", "pooling=mean",
                          "--set", "max_seq_len=16"])  # the test model's 64 positions
    assert code == 2 and "pooling applies to sentence-level tasks" in capsys.readouterr().err
    with pytest.raises(Exception, match="classifies the pooled \\[CLS\\] output"):
        export(mean_pooled, "hf", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
