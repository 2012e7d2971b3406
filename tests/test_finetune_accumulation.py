"""Fine-tuning with `max_sequences_per_device`: a batch of 8 sequences trained as two micro-batches
of 4 ends with the parameters of the batch in one piece (dropout off, equal halves)."""
import numpy as np

from ernie.finetune.__main__ import main as finetune_main
from ernie.finetune.settings import load_settings
from ernie.formats.checkpoint import load_params
from tests.test_finetune import write_sst2


def _finetune(tmp_path, init_model, name, *extra):
    out = tmp_path / name
    code = finetune_main(["--task", "SST-2", "--data", str(write_sst2(tmp_path / "SST-2")), "--init-model",
                          str(init_model), "--output", str(out), "--seeds", "1", "--quiet", "--set", "epochs=2",
                          "--set", "batch_size=8", "--set", "learning_rate=1e-3", "--set", "max_seq_len=16", *extra])
    assert code == 0
    (params,) = out.glob("**/model/params.safetensors")
    return load_params(params)


def test_micro_batches_fine_tune_as_the_whole_batch(tmp_path, init_model):
    whole = _finetune(tmp_path, init_model, "whole")
    halves = _finetune(tmp_path, init_model, "halves", "--set", "max_sequences_per_device=4")
    assert whole.keys() == halves.keys()
    for name in whole:
        np.testing.assert_allclose(halves[name], whole[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_micro_batch_count_is_the_fewest_that_fit():
    assert [load_settings(overrides=["batch_size=512", f"max_sequences_per_device={m}"]).accumulate
            for m in (512, 100, 64, 1000)] == [1, 6, 8, 1]
