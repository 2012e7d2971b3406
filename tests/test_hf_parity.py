"""A random Hugging Face ErnieModel, converted with `ernie.convert`, gives the same outputs here."""
import subprocess
import sys

import numpy as np
import paddle
import pytest
import torch
import transformers

from ernie.formats.checkpoint import load_model_dir
from ernie.model.modeling import ErnieModel
from ernie.model.params_io import assign_layer_params
from ernie.model.static_graph import StaticEncoder
from tests.conftest import random_feeds

HF_CONFIG = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, hidden_act="gelu", max_position_embeddings=32,
                 type_vocab_size=4, task_type_vocab_size=3, use_task_id=True, layer_norm_eps=1e-5,
                 initializer_range=0.2)  # 10x the usual width, so that every parameter matters
TOL = 1e-5


def _convert(*args):
    result = subprocess.run([sys.executable, "-m", "ernie.convert", *map(str, args)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def _write_vocab(path, n):
    path.write_text("".join(f"{t}\n" for t in ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
                            + [f"tok{i}" for i in range(n - 5)]))


@pytest.fixture(scope="module")
def hf_model_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hf")
    model = transformers.ErnieModel(transformers.ErnieConfig(**HF_CONFIG)).eval()
    model.save_pretrained(path)
    _write_vocab(path / "vocab.txt", HF_CONFIG["vocab_size"])
    return path, model


def _hf_outputs(model, feeds):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(feeds["src_ids"]), token_type_ids=torch.tensor(feeds["sent_ids"]),
                    task_type_ids=torch.tensor(feeds["task_ids"]), position_ids=torch.tensor(feeds["pos_ids"]),
                    attention_mask=torch.tensor(feeds["input_mask"]))
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


def test_static_and_dygraph_match_hugging_face(hf_model_dir, tmp_path):
    hf_dir, hf_model = hf_model_dir
    _convert("--from", "hf", "--to", "ernie", hf_dir, tmp_path / "ernie")
    config, params, _ = load_model_dir(tmp_path / "ernie")
    assert config.use_task_id and config.task_type_vocab_size == 3 and config.layer_norm_eps == 1e-5
    feeds = random_feeds(config, batch=4, seq_len=11, pad_from=6)
    assert feeds["sent_ids"].any() and feeds["task_ids"].any()
    ref_seq, ref_pooled = _hf_outputs(hf_model, feeds)
    real = feeds["input_mask"].astype(bool)  # outputs at padded positions are not meaningful

    seq, pooled = StaticEncoder(config, params).run(feeds)
    np.testing.assert_allclose(seq[real], ref_seq[real], atol=TOL, rtol=0)
    np.testing.assert_allclose(pooled, ref_pooled, atol=TOL, rtol=0)

    model = ErnieModel(config)
    model.eval()
    assign_layer_params(model, params)
    seq, pooled = model(**{k: paddle.to_tensor(v) for k, v in feeds.items()})
    np.testing.assert_allclose(seq.numpy()[real], ref_seq[real], atol=TOL, rtol=0)
    np.testing.assert_allclose(pooled.numpy(), ref_pooled, atol=TOL, rtol=0)


def test_round_trip_ernie_hf_ernie_is_exact(hf_model_dir, tmp_path):
    hf_dir, hf_model = hf_model_dir
    _convert("--from", "hf", "--to", "ernie", hf_dir, tmp_path / "a")
    _convert("--from", "ernie", "--to", "hf", tmp_path / "a", tmp_path / "hf")
    _convert("--from", "hf", "--to", "ernie", tmp_path / "hf", tmp_path / "b")
    config_a, params_a, _ = load_model_dir(tmp_path / "a")
    config_b, params_b, _ = load_model_dir(tmp_path / "b")
    assert config_a == config_b and params_a.keys() == params_b.keys()
    for name in params_a:
        np.testing.assert_array_equal(params_a[name], params_b[name], err_msg=name)
    # and transformers itself loads what we wrote, tensor for tensor
    reloaded = transformers.ErnieModel.from_pretrained(tmp_path / "hf").eval()
    original = hf_model.state_dict()
    for name, tensor in reloaded.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), original[name].numpy(), err_msg=name)


def test_pretraining_heads_survive_conversion(tmp_path):
    torch.manual_seed(1)
    model = transformers.ErnieForPreTraining(transformers.ErnieConfig(**HF_CONFIG)).eval()
    model.save_pretrained(tmp_path / "hf")
    _convert("--from", "hf", "--to", "ernie", tmp_path / "hf", tmp_path / "ernie")
    _, params, _ = load_model_dir(tmp_path / "ernie")
    np.testing.assert_array_equal(params["mask_lm_trans_fc.w_0"],
                                  model.cls.predictions.transform.dense.weight.detach().numpy().T)
    np.testing.assert_array_equal(params["mask_lm_out_fc.b_0"], model.cls.predictions.bias.detach().numpy())
    np.testing.assert_array_equal(params["next_sent_fc.w_0"], model.cls.seq_relationship.weight.detach().numpy().T)
    _convert("--from", "ernie", "--to", "hf", tmp_path / "ernie", tmp_path / "hf2")
    back = transformers.ErnieForPreTraining.from_pretrained(tmp_path / "hf2").eval()
    original = model.state_dict()
    for name, tensor in back.state_dict().items():
        np.testing.assert_array_equal(tensor.numpy(), original[name].numpy(), err_msg=name)


def test_mismatched_vocab_is_refused(hf_model_dir, tmp_path):
    hf_dir, _ = hf_model_dir
    bad = tmp_path / "hf"
    bad.mkdir()
    for f in hf_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    _write_vocab(bad / "vocab.txt", 50)
    result = subprocess.run([sys.executable, "-m", "ernie.convert", "--from", "hf", "--to", "ernie",
                             str(bad), str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "has 50 tokens but the model config says vocab_size 99" in result.stderr
    assert not (tmp_path / "out").exists()


def test_convert_never_deletes_what_it_did_not_write(hf_model_dir, tmp_path, capsys):
    """A target that is or holds the source, or holds files a conversion does not write, is
    refused in one line and left as it is; an earlier conversion of the same kind is replaced."""
    from ernie.convert import main as convert_main
    hf_dir, _ = hf_model_dir
    a, other = tmp_path / "mine" / "a", tmp_path / "other"
    for _ in range(2):  # the second run replaces the first's output
        assert convert_main(["--from", "hf", "--to", "ernie", str(hf_dir), str(a)]) == 0
    other.mkdir()
    for path in (a / "notes.txt", a.parent / "keep.txt", other / "README.md"):
        path.write_text("mine")
    before = sorted(p.name for p in a.iterdir())
    for args, says in ((["ernie", "ernie", a, a], "is the input"),
                       (["ernie", "hf", a, a.parent], "holds the input"),
                       (["hf", "ernie", hf_dir, a], "holds notes.txt, which this output does not write"),
                       (["ernie", "hf", a, other], "holds README.md"),
                       (["ernie", "paddlenlp", a, other], "holds README.md")):
        src_kind, dst_kind, src, dst = args
        assert convert_main(["--from", src_kind, "--to", dst_kind, str(src), str(dst)]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and err.count("\n") == 1
    assert sorted(p.name for p in a.iterdir()) == before
    assert [p.name for p in other.iterdir()] == ["README.md"] and (a.parent / "keep.txt").read_text() == "mine"
