"""BERT checkpoints in every form transformers and sentence-transformers save them, converted with
`ernie.convert --from hf`, compute what transformers' BertModel computes."""
import contextlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
import transformers

from ernie.convert import main as convert_main
from ernie.formats.bert_format import POOLING_RECORD_FILE, TORCH_WEIGHTS_FILE, read_torch_state_dict
from ernie.formats.checkpoint import CheckpointError, load_model_dir
from ernie.model import param_names as names
from ernie.model.static_graph import StaticEncoder
from ernie_common.tokenization import SPECIAL_TOKENS, write_vocab
from tests.conftest import random_feeds

BERT_CONFIG = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=128, max_position_embeddings=32, type_vocab_size=2,
                   initializer_range=0.2)  # 10x the usual width, so that every parameter matters
TOL = 1e-5


def _bert(cls, seed):
    torch.manual_seed(seed)
    return cls(transformers.BertConfig(**BERT_CONFIG)).eval()


def _with_vocab(path):
    write_vocab(path / "vocab.txt", [*SPECIAL_TOKENS, *(f"tok{i}" for i in range(BERT_CONFIG["vocab_size"] - 5))])
    return path


def _save_torch_bin(model, path):
    """What `save_pretrained(safe_serialization=False)` wrote up to transformers 4 (version 5
    writes safetensors whatever it is asked): config.json and torch.save of the state dict."""
    path.mkdir(parents=True)
    model.config.to_json_file(path / "config.json")
    torch.save(model.state_dict(), path / TORCH_WEIGHTS_FILE)


def _sentence_transformers_folder(path, transformer_path):
    """The layout sentence-transformers saves: modules.json, the BERT in `transformer_path`, a
    mean-pooling 1_Pooling/config.json and a Normalize module."""
    modules = [{"idx": 0, "name": "0", "path": transformer_path, "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 64, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    (path / transformer_path / "sentence_bert_config.json").write_text('{"max_seq_length": 24, "do_lower_case": false}')
    return path


# form -> (writes the checkpoint into an empty directory and returns the reference encoder)
def _safetensors(path):
    model = _bert(transformers.BertModel, 0)
    model.save_pretrained(path)
    return model


def _torch_bin(path):
    model = _bert(transformers.BertModel, 1)
    _save_torch_bin(model, path)
    return model


def _masked_lm(path):
    model = _bert(transformers.BertForMaskedLM, 2)
    model.save_pretrained(path)
    return model.bert


def _pretraining(path):
    model = _bert(transformers.BertForPreTraining, 3)
    model.save_pretrained(path)
    return model.bert


def _sentence_transformers_top(path):
    model = _safetensors(path)
    _sentence_transformers_folder(path, "")
    return model


def _sentence_transformers_sub(path):
    model = _torch_bin(path / "0_Transformer")
    _sentence_transformers_folder(path, "0_Transformer")
    return model


FORMS = {"safetensors": _safetensors, "pytorch_model.bin": _torch_bin, "BertForMaskedLM": _masked_lm,
         "BertForPreTraining": _pretraining, "sentence-transformers": _sentence_transformers_top,
         "sentence-transformers 0_Transformer": _sentence_transformers_sub}


def _convert(form, directory):
    """(reference BertModel, converted model directory, what the conversion printed)."""
    src, dst, printed = directory / "hf", directory / "ernie", io.StringIO()
    reference = FORMS[form](src)
    _with_vocab(src if (src / "config.json").is_file() else src / "0_Transformer")
    with contextlib.redirect_stderr(printed):
        assert convert_main(["--from", "hf", "--to", "ernie", str(src), str(dst)]) == 0
    return reference, dst, printed.getvalue()


def _reference_outputs(model, feeds):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(feeds["src_ids"]), token_type_ids=torch.tensor(feeds["sent_ids"]),
                    position_ids=torch.tensor(feeds["pos_ids"]), attention_mask=torch.tensor(feeds["input_mask"]))
    pooled = None if out.pooler_output is None else out.pooler_output.numpy()
    return out.last_hidden_state.numpy(), pooled


@pytest.mark.parametrize("form", FORMS)
def test_the_encoder_computes_what_transformers_bert_computes(form, tmp_path):
    reference, dst, _ = _convert(form, tmp_path)
    config, params, vocab = load_model_dir(dst)
    assert not config.use_task_id and config.layer_norm_eps == 1e-12 and vocab is not None
    feeds = random_feeds(config, batch=4, seq_len=11, pad_from=6)
    assert feeds["sent_ids"].any()
    ref_seq, ref_pooled = _reference_outputs(reference, feeds)
    real = feeds["input_mask"].astype(bool)  # outputs at padded positions are not meaningful
    seq, pooled = StaticEncoder(config, params).run(feeds)
    np.testing.assert_allclose(seq[real], ref_seq[real], atol=TOL, rtol=0)
    if ref_pooled is not None:
        np.testing.assert_allclose(pooled, ref_pooled, atol=TOL, rtol=0)


@pytest.mark.parametrize("act", ["gelu", "relu"])  # relu: ERNIE 1.0's, whose head transform was relu too
def test_a_masked_lm_model_gets_a_fresh_pooler_said_so_and_its_head(act, tmp_path, capsys):
    import types

    import paddle

    from ernie.model.params_io import assign_layer_params
    from ernie_tasks.knowledge_masking import MaskedLMHead
    torch.manual_seed(4)
    model = transformers.BertForMaskedLM(transformers.BertConfig(**{**BERT_CONFIG, "hidden_act": act})).eval()
    model.save_pretrained(_with_vocab(tmp_path / "hf"))
    assert convert_main(["--from", "hf", "--to", "ernie", str(tmp_path / "hf"), str(tmp_path / "ernie")]) == 0
    assert "has no pooler (a masked-LM model): pooled_fc starts fresh" in capsys.readouterr().err
    config, params, _ = load_model_dir(tmp_path / "ernie")
    weight = params[names.fc_weight(names.POOLED_FC)]
    assert weight.shape == (64, 64) and 0.15 < weight.std() < 0.2 and np.abs(weight).max() <= 0.4  # cut at 2 std
    assert not params[names.fc_bias(names.POOLED_FC)].any()

    # the project's pre-training head on the converted encoder's output gives transformers' logits
    feeds = random_feeds(config, batch=2, seq_len=7)
    seq, _ = StaticEncoder(config, params).run(feeds)
    head = MaskedLMHead(None).build(config, None)
    assign_layer_params(head, params)
    head.eval()
    encoder = types.SimpleNamespace(embeddings=types.SimpleNamespace(
        word_embedding=types.SimpleNamespace(weight=paddle.to_tensor(params[names.WORD_EMBEDDING]))))
    logits = MaskedLMHead.logits(head, paddle.to_tensor(seq), paddle.arange(seq.shape[0] * seq.shape[1]), encoder)
    with torch.no_grad():
        expected = model(input_ids=torch.tensor(feeds["src_ids"]), token_type_ids=torch.tensor(feeds["sent_ids"])).logits
    np.testing.assert_allclose(logits.numpy(), expected.numpy().reshape(logits.shape), atol=1e-4, rtol=0)


def test_the_next_sentence_head_of_bert_for_pretraining_is_kept(tmp_path):
    _, dst, _ = _convert("BertForPreTraining", tmp_path)
    _, params, _ = load_model_dir(dst)
    model = transformers.BertForPreTraining.from_pretrained(tmp_path / "hf")
    np.testing.assert_array_equal(params["next_sent_fc.w_0"], model.cls.seq_relationship.weight.detach().numpy().T)
    np.testing.assert_array_equal(params["next_sent_fc.b_0"], model.cls.seq_relationship.bias.detach().numpy())


@pytest.mark.parametrize("form", ["sentence-transformers", "sentence-transformers 0_Transformer"])
def test_a_sentence_transformers_pooling_is_recorded_and_said(form, tmp_path):
    _, dst, err = _convert(form, tmp_path)
    record = json.loads((dst / POOLING_RECORD_FILE).read_text())
    assert record == {"pooling_modes": ["mean_tokens"], "normalize": True, "finetune_pooling": "mean",
                      "from": "1_Pooling/config.json", "max_seq_length": 24}
    assert "pooling mean_tokens, L2-normalised" in err and "--set pooling=mean" in err


def test_a_sentence_transformers_module_after_the_pooling_is_named_as_left_out(tmp_path):
    """LaBSE's layout: a Dense projection after the pooling gives the vector it was trained to
    give; mean pooling alone is not it, so no fine-tuning pooling is advised."""
    src = tmp_path / "hf"
    _sentence_transformers_top(src)
    modules = json.loads((src / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (src / "modules.json").write_text(json.dumps(modules))
    _with_vocab(src)
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        assert convert_main(["--from", "hf", "--to", "ernie", str(src), str(tmp_path / "ernie")]) == 0
    record = json.loads((tmp_path / "ernie" / POOLING_RECORD_FILE).read_text())
    assert record["finetune_pooling"] is None and record["modules_left_out"] == ["Dense"]
    assert "then Dense (not read)" in printed.getvalue() and "no fine-tuning pooling setting" in printed.getvalue()


def test_the_torch_pickle_reader_gives_the_state_dict_exactly(tmp_path):
    model = _bert(transformers.BertForMaskedLM, 5)  # its decoder weight shares the word embedding's storage
    torch.save(model.state_dict(), tmp_path / "w.bin")
    state = read_torch_state_dict(tmp_path / "w.bin")
    assert state.keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert state[name].dtype == tensor.numpy().dtype
        np.testing.assert_array_equal(state[name], tensor.numpy(), err_msg=name)


class _RunsCode:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def _bin_with_pickle(path, data_pkl: bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
    return path


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _bin_with_pickle(tmp_path / TORCH_WEIGHTS_FILE, pickle.dumps({"w": _RunsCode()}))
    with pytest.raises(CheckpointError, match="refused to load posix.system"):
        read_torch_state_dict(path)
    assert not (tmp_path / "pwned").exists()


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path):
    torch.save({"w": torch.arange(12.0).reshape(3, 4)}, tmp_path / "good.bin")
    with zipfile.ZipFile(tmp_path / "good.bin") as good, zipfile.ZipFile(tmp_path / "cut.bin", "w") as cut:
        for name in good.namelist():
            data = good.read(name)
            cut.writestr(name, data[:16] if name.endswith("/data/0") else data)  # 4 of the 12 floats
    with pytest.raises(CheckpointError, match=r"lies outside its storage of 4 elements"):
        read_torch_state_dict(tmp_path / "cut.bin")


def test_another_architecture_is_refused_in_one_line(tmp_path, capsys):
    src = tmp_path / "hf"
    _safetensors(src)
    values = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**values, "model_type": "roberta"}))
    capsys.readouterr()  # transformers' progress bar
    assert convert_main(["--from", "hf", "--to", "ernie", str(src), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model_type 'roberta', expected one of 'ernie', 'bert'" in err
    assert not (tmp_path / "out").exists()


def test_an_old_torch_pickle_is_refused_with_what_to_do(tmp_path):
    src = tmp_path / "hf"
    _torch_bin(src)
    torch.save(torch.load(src / TORCH_WEIGHTS_FILE), src / TORCH_WEIGHTS_FILE, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="not torch's zip format"):
        read_torch_state_dict(src / TORCH_WEIGHTS_FILE)


def test_keys_a_config_leaves_out_take_transformers_defaults():
    """A hand-written config.json without layer_norm_eps or type_vocab_size: transformers builds the
    model with 1e-12 and 2 sentence types (ERNIE's own defaults, 1e-5 and 4, refused its weights)."""
    from ernie.formats.hf_format import config_from_hf
    given = {"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    config, reference = config_from_hf(given), transformers.BertConfig(**given)
    assert (config.layer_norm_eps, config.sent_type_vocab_size, config.vocab_size, config.intermediate_size) == (
        reference.layer_norm_eps, reference.type_vocab_size, reference.vocab_size, reference.intermediate_size)


def test_sharded_weights_are_refused_saying_so(tmp_path, capsys):
    model = _bert(transformers.BertModel, 6)
    model.save_pretrained(_with_vocab(tmp_path / "hf"), max_shard_size="100KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    capsys.readouterr()
    assert convert_main(["--from", "hf", "--to", "ernie", str(tmp_path / "hf"), str(tmp_path / "out")]) == 2
    assert "weights sharded over several files (model.safetensors.index.json) are not read" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("weights", ["safetensors", "pytorch_model.bin"])
def test_half_precision_checkpoints_are_read_widened_to_float32(dtype, weights, tmp_path, capsys):
    """Released checkpoints are often saved in half precision: float16 stayed float16 in the model
    directory (dygraph refused it), bfloat16 safetensors gave numpy's TypeError, a bfloat16
    pytorch_model.bin was refused as not part of a state dict."""
    model = _bert(transformers.BertModel, 7).to(getattr(torch, dtype))
    if weights == "safetensors":
        model.save_pretrained(_with_vocab(tmp_path / "hf"))
    else:
        _save_torch_bin(model, tmp_path / "hf")
        _with_vocab(tmp_path / "hf")
    assert convert_main(["--from", "hf", "--to", "ernie", str(tmp_path / "hf"), str(tmp_path / "out")]) == 0, \
        capsys.readouterr().err
    _, params, _ = load_model_dir(tmp_path / "out")
    assert {str(v.dtype) for v in params.values()} == {"float32"}
    expected = model.embeddings.word_embeddings.weight.detach().float().numpy()
    np.testing.assert_array_equal(params[names.WORD_EMBEDDING], expected)  # exactly: widening loses nothing


def test_an_untied_masked_lm_decoder_left_out_is_said(tmp_path, capsys):
    torch.manual_seed(8)
    model = transformers.BertForMaskedLM(transformers.BertConfig(**BERT_CONFIG, tie_word_embeddings=False)).eval()
    assert not torch.equal(model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight)
    model.save_pretrained(_with_vocab(tmp_path / "hf"))
    capsys.readouterr()
    assert convert_main(["--from", "hf", "--to", "ernie", str(tmp_path / "hf"), str(tmp_path / "out")]) == 0
    assert "its masked-LM decoder is not tied to the word embeddings" in capsys.readouterr().err
    tied = tmp_path / "tied"
    _bert(transformers.BertForMaskedLM, 8).save_pretrained(_with_vocab(tied))
    assert convert_main(["--from", "hf", "--to", "ernie", str(tied), str(tmp_path / "out2")]) == 0
    assert "not tied" not in capsys.readouterr().err
