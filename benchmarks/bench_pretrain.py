"""The full pre-training step in tokens/s: encoder + the heads of the English task set (masked LM
over gathered positions with tied output weights, capitalization, token-document relation,
sentence reordering, discourse relation), forward + backward + AdamW, with every token-level
task and sentence reordering active. Three implementations on the same shapes and masked
positions in one run: this project's static program (with its fused CPU kernels, and once more
with Paddle's own ops only), its dygraph, and Hugging Face's PyTorch ErnieModel with the same
heads written in PyTorch, in float32 and under bfloat16 autocast (the fast way to train on a CPU
with AMX for a PyTorch user). The CPU model and its flags come first. Also model FLOP/s as a
fraction of the fp32 matrix-multiply peak measured here (the fastest of Paddle's matmul, this
project's and PyTorch's). Where this process can train in bfloat16
(`--amp bf16`: a GPU with it, or a CPU with AMX or AVX512_BF16), the static program once more
with its matrix products in bfloat16, with its losses over the timed steps against float32's from
the same start; on a CPU with AMX, also once with oneDNN capped at AVX512_BF16 (in a child
process with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16): an Intel core's AVX512_BF16 path (it is slower
than float32 there, where a real Zen 4 core's is faster: docs/pretraining-guide.md). With
`--cap avx2` the whole run is made in a process capped at AVX2 (oneDNN, MKL, PyTorch's kernels,
the fused kernels' build): what a CPU without AVX-512 runs, measured on one with
it (the cores, caches and memory stay this machine's). Prints figures; asserts nothing.

    python benchmarks/bench_pretrain.py [--layers 4 --hidden 256 --heads 4 --seq-len 128 --batch 16] [--cap avx2]
"""
from __future__ import annotations

import ernie  # noqa: F401  (first: its CPU settings must precede Paddle's import)

# isort: split

import argparse
import contextlib
import os
import subprocess
import sys

import numpy as np

from ernie.kernels.cpu_kernels import training_program_pass
from ernie.kernels.cpu_runtime import child_environment, math_threads
from ernie.model.optimization import adamw
from ernie.pretrain.model import ErnieForPretraining, pretraining_feeds
from ernie_common.machine import ISA_CAPS, cpu_flags, cpu_line
from propeller.dygraph_runner import DygraphRunner
from propeller.mixed_precision import MixedPrecision, MixedPrecisionUnsupported, check_supported, cpu_bf16_isa
from propeller.static_runner import StaticRunner

from common import config_from, encoder_batch, gemm_gflops, hf_ernie_config, shape_arguments, timed, torch_step_time

CAPITALIZATION, TOKEN_DOCUMENT = "capitalization", "token_document"
SENTENCE_REORDERING, DISCOURSE_RELATION = "sentence_reordering", "discourse_relation"
# the English task set: the model's heads, with each sentence task's classes
N_CLASSES = {"knowledge_masking": None, CAPITALIZATION: None, TOKEN_DOCUMENT: None, SENTENCE_REORDERING: 33,
             DISCOURSE_RELATION: 57}
ACTIVE = ("knowledge_masking", CAPITALIZATION, TOKEN_DOCUMENT, SENTENCE_REORDERING)


def make_batch(config, batch, seq_len, order, seed=0):
    rng = np.random.default_rng(seed + 1)
    n_mask = int(0.15 * batch * seq_len)
    mask_pos = np.sort(rng.choice(batch * seq_len, n_mask, replace=False)).astype(np.int64)
    feeds = {
        **encoder_batch(config, batch, seq_len, task_id=3, seed=seed),
        "mask_pos": mask_pos, "mask_label": rng.integers(5, config.vocab_size, n_mask).astype(np.int64),
        f"{CAPITALIZATION}_label": rng.integers(0, 2, (batch, seq_len)).astype(np.int64),
        f"{TOKEN_DOCUMENT}_label": rng.integers(0, 2, (batch, seq_len)).astype(np.int64),
        f"{SENTENCE_REORDERING}_label": rng.integers(0, 33, batch).astype(np.int64),
        f"{DISCOURSE_RELATION}_label": np.full(batch, -1, np.int64),
    }
    feeds["task_weights"] = np.asarray([1.0 if t in ACTIVE else 0.0 for t in order], np.float32)
    return feeds


@contextlib.contextmanager
def cpu_kernels_switch(on: bool):
    """ERNIE_CPU_KERNELS as given while a program is built (it is read then), as before after."""
    before = os.environ.get("ERNIE_CPU_KERNELS")
    os.environ["ERNIE_CPU_KERNELS"] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["ERNIE_CPU_KERNELS"]
        else:
            os.environ["ERNIE_CPU_KERNELS"] = before


def bench_static(config, batch, warmup, steps, fused=True, amp=None, losses=None):
    """Seconds per step; with `losses` (a list), also appends each step's loss to it."""
    holder = {}

    def model_fn():
        model = ErnieForPretraining(config, N_CLASSES)
        feeds = pretraining_feeds(model)
        out = model(feeds)
        holder["order"] = model.active_task_order
        return feeds, {"loss": out["loss"]}, out["loss"]

    with cpu_kernels_switch(fused):
        runner = StaticRunner(model_fn, lambda lr: adamw(lr), seed=1,
                              mixed_precision=MixedPrecision(amp) if amp else None,
                              program_pass=training_program_pass())
    feeds = make_batch(config, *batch, holder["order"])
    counter = iter(range(10 ** 9))

    def step():
        loss = runner.step(next(counter), feeds, 1e-4)["loss"]
        if losses is not None:
            losses.append(float(np.asarray(loss).reshape(-1)[0]))

    return timed(step, warmup, steps)


def bf16_supported() -> bool:
    try:
        check_supported("bf16", cpu_flags())
        return True
    except MixedPrecisionUnsupported as err:
        print(f"bfloat16: not measured ({err})")
        return False


def bench_bf16_without_amx(argv) -> float:
    """Seconds per bf16 step with oneDNN capped at AVX512_BF16, measured in a child process (oneDNN
    reads the cap once, at its first use)."""
    done = subprocess.run([sys.executable, __file__, *argv, "--bf16-only"], capture_output=True, text=True,
                          env=child_environment(**ISA_CAPS["avx512_bf16"]))
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def bench_dygraph(config, batch, warmup, steps):
    runner = DygraphRunner(lambda: ErnieForPretraining(config, N_CLASSES),
                           lambda lr, params: adamw(lr, parameters=params), seed=1)
    feeds = make_batch(config, *batch, runner.model.active_task_order)
    counter = iter(range(10 ** 9))
    return timed(lambda: runner.step(next(counter), feeds, 1e-4), warmup, steps)


def bench_torch(config, batch, warmup, steps, bf16: bool = False):
    import torch
    import transformers
    from torch import nn

    torch.set_num_threads(math_threads())
    h = config.hidden_size

    class Heads(nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder
            self.trans = nn.Linear(h, h)
            self.norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
            self.out_bias = nn.Parameter(torch.zeros(config.vocab_size))
            self.cap, self.doc = nn.Linear(h, 2), nn.Linear(h, 2)
            self.reorder, self.discourse = nn.Linear(h, 33), nn.Linear(h, 57)

        def forward(self, t):
            out = self.encoder(input_ids=t["src_ids"], token_type_ids=t["sent_ids"], position_ids=t["pos_ids"],
                               attention_mask=t["input_mask"], task_type_ids=t["task_ids"])
            seq, pooled = out.last_hidden_state, out.pooler_output
            masked = seq.reshape(-1, h)[t["mask_pos"]]
            logits = self.norm(nn.functional.gelu(self.trans(masked))) @ \
                self.encoder.embeddings.word_embeddings.weight.T + self.out_bias
            ce = nn.functional.cross_entropy
            losses = [ce(logits, t["mask_label"]),
                      ce(self.cap(seq).reshape(-1, 2), t[f"{CAPITALIZATION}_label"].reshape(-1), ignore_index=-1),
                      ce(self.doc(seq).reshape(-1, 2), t[f"{TOKEN_DOCUMENT}_label"].reshape(-1), ignore_index=-1),
                      ce(self.reorder(pooled), t[f"{SENTENCE_REORDERING}_label"])]
            self.discourse(pooled)  # computed, inactive, as in the static program
            return torch.stack(losses).mean()

    model = Heads(transformers.ErnieModel(hf_ernie_config(config)))
    order = ["knowledge_masking", CAPITALIZATION, TOKEN_DOCUMENT, SENTENCE_REORDERING, DISCOURSE_RELATION]
    t = {k: torch.tensor(v) for k, v in make_batch(config, *batch, order).items()}
    return torch_step_time(model, lambda: model(t), warmup, steps, bf16=bf16)


def model_flops(config, batch, seq_len) -> float:
    """Matrix-multiply FLOPs of one training step (forward x 3)."""
    h, f, layers, tokens = config.hidden_size, config.intermediate_size, config.num_hidden_layers, batch * seq_len
    per_layer = 2 * tokens * (4 * h * h + 2 * h * f) + 2 * 2 * batch * seq_len * seq_len * h
    masked = int(0.15 * tokens)
    heads = 2 * masked * (h * h + h * config.vocab_size) + 2 * tokens * h * 4 + 2 * batch * h * (h + 90)
    return 3.0 * (layers * per_layer + heads)


def main():
    parser = shape_arguments(__doc__)
    parser.add_argument("--bf16-only", action="store_true", help=argparse.SUPPRESS)  # the child's seconds a step
    parser.add_argument("--cap", choices=sorted(ISA_CAPS),
                        help="run as a CPU of that kind: oneDNN, MKL, PyTorch's kernels and the fused kernels capped "
                             "at its instruction set (avx2: a CPU without AVX-512), in a child process")
    args, argv = parser.parse_args(), sys.argv[1:]
    if args.cap and os.environ.get("ONEDNN_MAX_CPU_ISA") != ISA_CAPS[args.cap]["ONEDNN_MAX_CPU_ISA"]:
        # the libraries read their caps once, at first use: a fresh process
        sys.exit(subprocess.run([sys.executable, __file__, *argv], env=child_environment(**ISA_CAPS[args.cap])).returncode)
    config = config_from(args)
    batch = (args.batch, args.seq_len)
    tokens = args.batch * args.seq_len
    if args.bf16_only:
        print(bench_static(config, batch, args.warmup, args.steps, amp="bf16"))
        return
    print(cpu_line())
    print(f"pre-training step: encoder {args.layers}x{args.hidden}/{args.heads} heads + MLM (vocab {args.vocab}, "
          f"15% masked) + capitalization + token-document + reordering, batch {args.batch} x {args.seq_len}, "
          f"{math_threads()} threads")
    fp32_losses, bf16_losses = [], []
    results = {"paddle static": bench_static(config, batch, args.warmup, args.steps, losses=fp32_losses),
               "paddle static, Paddle's ops only": bench_static(config, batch, args.warmup, args.steps, fused=False),
               "paddle dygraph": bench_dygraph(config, batch, args.warmup, args.steps)}
    if bf16_supported():
        isa = cpu_bf16_isa(cpu_flags())
        results[f"paddle static, bf16 ({isa})"] = bench_static(config, batch, args.warmup, args.steps, amp="bf16",
                                                               losses=bf16_losses)
        if isa == "amx_bf16":
            results["paddle static, bf16 (avx512_bf16)"] = bench_bf16_without_amx(argv)
    results["pytorch (HF ErnieModel + heads)"] = bench_torch(config, batch, args.warmup, args.steps)
    if cpu_bf16_isa(cpu_flags()):  # without bfloat16 instructions autocast emulates them: minutes a step
        results["pytorch, bf16 autocast"] = bench_torch(config, batch, args.warmup, args.steps, bf16=True)
    rates = gemm_gflops()
    peak = max(rates.values()) * 1e9
    flops = model_flops(config, *batch)
    reference = results["pytorch (HF ErnieModel + heads)"]
    for name, seconds in results.items():
        print(f"{name:32s} {seconds * 1000:8.1f} ms/step {tokens / seconds:9.0f} tokens/s "
              f"{reference / seconds:5.2f}x PyTorch  {flops / seconds / 1e9:6.1f} GFLOP/s "
              f"= {flops / seconds / peak:5.1%} of peak")
    if bf16_losses:
        gap = max(abs(a - b) / abs(a) for a, b in zip(fp32_losses, bf16_losses))
        print(f"bf16 against fp32, same start and batch, {len(bf16_losses)} steps: losses "
              f"{bf16_losses[0]:.4f} -> {bf16_losses[-1]:.4f} against {fp32_losses[0]:.4f} -> {fp32_losses[-1]:.4f}, "
              f"largest relative difference {gap:.2e}")
    print(f"fp32 GEMM peak measured here (2048x1024x1024, the fastest of "
          f"{', '.join(f'{k} {v:.0f}' for k, v in rates.items())}): {peak / 1e9:.0f} GFLOP/s; "
          f"model FLOPs per step: {flops / 1e9:.1f} G")


if __name__ == "__main__":
    main()
