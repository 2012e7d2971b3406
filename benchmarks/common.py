"""What the benchmarks share (the CPU line they print is ernie_common.machine's): model-shape options, timing, a synthetic
encoder batch, the equivalent Hugging Face config, and the machine's fp32 matrix-multiply rate."""
from __future__ import annotations

import argparse
import time

import numpy as np


def shape_arguments(description: str) -> argparse.ArgumentParser:
    """Options for the model and batch shape (defaults: the tiny model, batch 16 x 128)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=18000)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    return parser


def config_from(args):
    from ernie.model.config import ErnieConfig
    return ErnieConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                       num_attention_heads=args.heads, intermediate_size=4 * args.hidden, use_task_id=True,
                       max_position_embeddings=max(512, args.seq_len))


def timed(step, warmup: int, steps: int) -> float:
    """Seconds per call of `step`, after `warmup` calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def encoder_batch(config, batch: int, seq_len: int, task_id: int, seed: int = 0) -> dict:
    """Random token ids; two sentences per row; no padding."""
    rng = np.random.default_rng(seed)
    return {
        "src_ids": rng.integers(5, config.vocab_size, (batch, seq_len)).astype(np.int64),
        "sent_ids": (np.arange(seq_len) >= seq_len // 2).astype(np.int64)[None].repeat(batch, 0),
        "pos_ids": np.arange(seq_len, dtype=np.int64)[None].repeat(batch, 0),
        "input_mask": np.ones((batch, seq_len), np.float32),
        "task_ids": np.full((batch, seq_len), task_id, np.int64),
    }


def hf_ernie_config(config):
    import transformers
    return transformers.ErnieConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.sent_type_vocab_size,
        task_type_vocab_size=config.task_type_vocab_size, use_task_id=True, layer_norm_eps=config.layer_norm_eps,
        hidden_act=config.hidden_act)


def gemm_gflops(m: int = 2048, n: int = 1024) -> dict:
    """fp32 [m, n] x [n, n] matrix-multiply rate of Paddle's matmul, of this project's training
    matmul (oneDNN's GEMM, `ernie.kernels.cpu_kernels.matmul`) and of PyTorch: each one's ceiling."""
    import paddle
    import torch

    from ernie.kernels import cpu_kernels
    a, b = np.random.rand(m, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    pa, pb = paddle.to_tensor(a), paddle.to_tensor(b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2.0 * m * n * n
    return {"paddle": flops / timed(lambda: paddle.matmul(pa, pb).numpy(), 2, 10) / 1e9,
            "ernie": flops / timed(lambda: cpu_kernels.matmul(pa, pb, False, training=True).numpy(), 2, 10) / 1e9,
            "pytorch": flops / timed(lambda: (ta @ tb).numpy(), 2, 10) / 1e9}


def torch_step_time(model, loss_fn, warmup: int, steps: int, bf16: bool = False) -> float:
    """Seconds per PyTorch step: `loss_fn()` forward, backward, clip to global norm 1, AdamW with
    this project's hyper-parameters; `bf16`: the forward under `torch.autocast` in bfloat16 (what
    a PyTorch user runs on a CPU with AMX), weights and optimizer in float32."""
    import contextlib

    import torch
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)

    def step():
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with cast:
            loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        loss.item()

    return timed(step, warmup, steps)
