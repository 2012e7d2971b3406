"""Fine-tuning's `amp`: the training program's matrix products in bfloat16 where the CPU has
them, float32 everywhere else (evaluation included) and the losses of float32; `auto` decided
for the machine and said, a precision the machine cannot run refused before anything is read."""
import json

import numpy as np
import pytest

from ernie.finetune.__main__ import main as finetune_main
from ernie.finetune.settings import SettingsError, load_settings
from ernie.finetune.tasks import get_task
from ernie.finetune.trainer import FinetuneJob, load_encoder, read_data, resolve_amp, resolve_casing
from propeller.mixed_precision import has_gpu
from tests.test_finetune import write_sst2
from tests.test_mixed_precision import NEEDS_CPU_BF16

PRODUCTS = ("custom_op.ernie_linear", "custom_op.ernie_matmul")


def _products(program):
    """The bf16 attribute of every matrix product of the program."""
    return [op.attrs()["bf16"] for op in program.global_block().ops if op.name() in PRODUCTS]


@NEEDS_CPU_BF16
def test_bf16_fine_tuning_trains_in_bfloat16_products_and_evaluates_in_float32(tmp_path, init_model):
    task = get_task("SST-2")
    config, params, vocab = load_encoder(str(init_model))
    data = read_data(task, write_sst2(tmp_path / "SST-2"))
    for amp in ("off", "bf16"):
        settings = resolve_casing(load_settings(overrides=[f"amp={amp}", "max_seq_len=16"]), vocab)
        job = FinetuneJob(task, settings, config, vocab, params, data)
        runner, evaluator, _ = job.build(seed=1)
        assert set(_products(runner.main)) == {amp == "bf16"} and len(_products(runner.main)) >= 8
        assert set(_products(evaluator.main)) <= {False}  # evaluation: the float32 operators


@NEEDS_CPU_BF16
def test_bf16_fine_tuning_follows_the_float32_losses(tmp_path, init_model):
    losses = {}
    for amp in ("off", "bf16"):
        out = tmp_path / amp
        assert finetune_main(["--task", "SST-2", "--data", str(write_sst2(tmp_path / "SST-2")), "--init-model",
                              str(init_model), "--output", str(out), "--quiet", "--set", f"amp={amp}",
                              "--set", "epochs=2", "--set", "batch_size=8", "--set", "learning_rate=1e-3",
                              "--set", "max_seq_len=16", "--set", "log_every=1"]) == 0
        records = [json.loads(line) for line in (out / "seed-1" / "log.jsonl").read_text().splitlines()]
        losses[amp] = [r["loss"] for r in records if "loss" in r]
    assert len(losses["bf16"]) == len(losses["off"]) == 12
    np.testing.assert_allclose(losses["bf16"], losses["off"], rtol=2e-3)


def test_auto_trains_in_the_precision_it_chose_and_records_it(tmp_path, init_model, capsys):
    assert finetune_main(["--task", "SST-2", "--data", str(write_sst2(tmp_path / "SST-2")), "--init-model",
                          str(init_model), "--output", str(tmp_path / "out"), "--quiet", "--set", "amp=auto",
                          "--set", "epochs=1", "--set", "max_seq_len=16"]) == 0
    chosen = capsys.readouterr().out.split("amp auto: ")[1].split()[0]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["settings"]["amp"] == chosen
    assert chosen in ("off", "bf16")


@pytest.mark.skipif(has_gpu(), reason="auto is float32 on a GPU")
@pytest.mark.parametrize("vendor,flags,amp,line", [
    ("GenuineIntel", {"avx512_bf16", "amx_tile", "amx_bf16"}, "bf16", "amp auto: bf16 (this CPU has AMX"),
    ("GenuineIntel", {"avx512f", "avx512_bf16"}, "off", "amp auto: off (this CPU has AVX512_BF16 and no AMX"),
    ("AuthenticAMD", {"avx512f", "avx512_bf16"}, "bf16", "amp auto: bf16 (this AMD CPU has AVX512_BF16"),
    ("AuthenticAMD", {"avx2", "fma"}, "off", "amp auto: off (this CPU has no bfloat16 instructions")])
def test_auto_is_decided_for_the_machine_and_said(monkeypatch, capsys, vendor, flags, amp, line):
    from ernie.finetune import trainer
    from ernie.kernels import cpu_kernels
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(cpu_kernels, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(cpu_kernels, "available", lambda: True)
    monkeypatch.setattr(trainer, "cpu_flags", lambda: frozenset(flags))
    assert resolve_amp(load_settings(overrides=["amp=auto"])).amp == amp
    assert capsys.readouterr().out.startswith(line)


@pytest.mark.skipif(has_gpu(), reason="a GPU runs float16")
def test_a_precision_the_machine_cannot_run_is_refused_before_the_data_is_read(tmp_path, init_model, capsys,
                                                                              monkeypatch):
    from ernie.finetune import trainer
    monkeypatch.setattr(trainer, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    for amp, says in (("fp16", "float16 is for pre-training, with its loss scaling"),
                      ("bf16", "needs bfloat16 matrix instructions")):
        assert finetune_main(["--task", "SST-2", "--data", str(tmp_path / "missing"), "--init-model", str(init_model),
                              "--output", str(tmp_path / "out"), "--set", f"amp={amp}"]) == 2
        assert says in capsys.readouterr().err
    with pytest.raises(SettingsError, match="amp must be one of"):
        load_settings(overrides=["amp=fp8"])
