"""Released static-graph parameter directories, as Paddle itself serializes them."""
import json
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ernie.formats.checkpoint import CheckpointError, load_model_dir
from ernie.formats.paddle_static_format import read_lod_tensor
from ernie.model.modeling import ErnieModel
from ernie.model.params_io import scope_params
from ernie.model.static_graph import encoder_feeds
from propeller.static_runner import static_mode
from tests.conftest import small_config


def _released_model_dir(root, config, extra_var=False):
    """What a released ERNIE tarball holds: ernie_config.json, vocab.txt, params/ written by
    Paddle's save_vars from a static program (the original keys; no use_task_id)."""
    with static_mode():
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            feeds = encoder_feeds(config)
            model = ErnieModel(config)
            model(**feeds)
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            paddle.static.save_vars(exe, str(root / "params"), main, predicate=lambda v: v.persistable)
            expected = scope_params([p.name for p in model.parameters()], scope)
    if extra_var:  # an optimizer accumulator, as released directories often carry
        paddle.save(paddle.ones([4]), str(root / "params" / "word_embedding_moment1_0"),
                    use_binary_format=True)
    original = {k: v for k, v in config.to_dict().items() if k not in ("use_task_id", "pad_token_id")}
    (root / "ernie_config.json").write_text(json.dumps(original))
    tokens = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] + [f"t{i}" for i in range(5, config.vocab_size)]
    (root / "vocab.txt").write_text("".join(f"{t}\t{i}\n" for i, t in enumerate(tokens)))
    return expected


@pytest.mark.parametrize("use_task_id", [True, False])
def test_convert_released_params_directory(tmp_path, use_task_id):
    config = small_config(use_task_id=use_task_id)
    expected = _released_model_dir(tmp_path / "release", config, extra_var=True)
    result = subprocess.run([sys.executable, "-m", "ernie.convert", "--from", "paddle-static", "--to",
                             "ernie", str(tmp_path / "release"), str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "word_embedding_moment1_0" in result.stderr  # reported as left out
    got_config, params, _ = load_model_dir(tmp_path / "out")
    assert got_config.use_task_id == use_task_id  # inferred from the task_embedding file
    assert params.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(params[name], value, err_msg=name)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int64", "int32", "bfloat16"])
def test_reads_each_dtype_paddle_writes(tmp_path, dtype):
    values = np.arange(-6, 6, dtype=np.float32).reshape(3, 4) / 4
    tensor = paddle.to_tensor(values).astype(dtype)
    paddle.save(tensor, str(tmp_path / "t"), use_binary_format=True)
    got = read_lod_tensor(tmp_path / "t")
    assert got.shape == (3, 4)
    np.testing.assert_array_equal(got.astype(np.float32), tensor.astype("float32").numpy())


def test_truncated_variable_file(tmp_path):
    paddle.save(paddle.ones([8, 8]), str(tmp_path / "w"), use_binary_format=True)
    data = (tmp_path / "w").read_bytes()
    (tmp_path / "w").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"w: holds 246 data bytes, shape \[8, 8\] of float32 needs 256"):
        read_lod_tensor(tmp_path / "w")
    (tmp_path / "w").write_bytes(data[:10])
    with pytest.raises(CheckpointError, match="not a Paddle LoDTensor file"):
        read_lod_tensor(tmp_path / "w")
