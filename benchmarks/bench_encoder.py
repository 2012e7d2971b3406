"""Encoder training-step speed: this project's static program vs its dygraph vs Hugging Face's
PyTorch ErnieModel, in one process, on the same shapes and thread count.

A step is forward + backward + AdamW update of the encoder alone, with dropout on, under the loss
mean(sequence_output^2). Prints tokens/s for each and the ratios; asserts nothing.

    python benchmarks/bench_encoder.py [--layers 4 --hidden 256 --heads 4 --seq-len 128 --batch 16]
"""
from __future__ import annotations

import argparse
import time

import ernie  # noqa: F401  (first: its CPU settings must precede Paddle's import)

import numpy as np
import paddle

from ernie.config import ErnieConfig
from ernie.cpu_runtime import usable_cores
from ernie.modeling import ErnieModel
from ernie.optimization import adamw
from ernie.static_graph import encoder_feeds, static_mode

THREADS = usable_cores()


def make_feeds(config, batch, seq_len, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "src_ids": rng.integers(5, config.vocab_size, (batch, seq_len)).astype(np.int64),
        "sent_ids": (np.arange(seq_len) >= seq_len // 2).astype(np.int64)[None].repeat(batch, 0),
        "pos_ids": np.arange(seq_len, dtype=np.int64)[None].repeat(batch, 0),
        "input_mask": np.ones((batch, seq_len), np.float32),
        "task_ids": np.ones((batch, seq_len), np.int64),
    }


def timed(step, warmup, steps):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def bench_static(config, feeds, warmup, steps):
    with static_mode():
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            inputs = encoder_feeds(config)
            seq, _ = ErnieModel(config)(**inputs)
            loss = paddle.mean(seq * seq)
            adamw(1e-4).minimize(loss)
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            return timed(lambda: exe.run(main, feed=feeds, fetch_list=[loss]), warmup, steps)


def bench_dygraph(config, feeds, warmup, steps):
    model = ErnieModel(config)
    model.train()
    opt = adamw(1e-4, parameters=model.parameters())
    tensors = {k: paddle.to_tensor(v) for k, v in feeds.items()}

    def step():
        seq, _ = model(**tensors)
        loss = paddle.mean(seq * seq)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)

    return timed(step, warmup, steps)


def bench_torch(config, feeds, warmup, steps):
    import torch
    import transformers

    torch.set_num_threads(THREADS)
    hf_config = transformers.ErnieConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.sent_type_vocab_size, task_type_vocab_size=config.task_type_vocab_size,
        use_task_id=True, layer_norm_eps=config.layer_norm_eps, hidden_act=config.hidden_act)
    model = transformers.ErnieModel(hf_config, add_pooling_layer=True).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    t = {k: torch.tensor(v) for k, v in feeds.items()}

    def step():
        out = model(input_ids=t["src_ids"], token_type_ids=t["sent_ids"], position_ids=t["pos_ids"],
                    attention_mask=t["input_mask"], task_type_ids=t["task_ids"])
        loss = (out.last_hidden_state ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        loss.item()

    return timed(step, warmup, steps)


def gemm_gflops(n=1024, m=2048):
    """fp32 [m, n] x [n, n] matrix-multiply rate of Paddle and of PyTorch: the ceiling of each."""
    import torch
    a, b = np.random.rand(m, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    pa, pb = paddle.to_tensor(a), paddle.to_tensor(b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2.0 * m * n * n
    return {"paddle": flops / timed(lambda: paddle.matmul(pa, pb).numpy(), 2, 10) / 1e9,
            "pytorch": flops / timed(lambda: (ta @ tb).numpy(), 2, 10) / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=18000)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()

    config = ErnieConfig(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                         use_task_id=True, max_position_embeddings=max(512, args.seq_len))
    feeds = make_feeds(config, args.batch, args.seq_len)
    tokens = args.batch * args.seq_len
    print(f"encoder {args.layers}x{args.hidden}/{args.heads} heads, batch {args.batch} x seq "
          f"{args.seq_len}, vocab {args.vocab}, {THREADS} threads, fwd+bwd+AdamW, "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    results = {"paddle static": bench_static(config, feeds, args.warmup, args.steps),
               "paddle dygraph": bench_dygraph(config, feeds, args.warmup, args.steps)}
    if not args.skip_torch:
        results["pytorch (HF ErnieModel)"] = bench_torch(config, feeds, args.warmup, args.steps)
    reference = results.get("pytorch (HF ErnieModel)")
    for name, seconds in results.items():
        ratio = f"  {reference / seconds:5.2f}x PyTorch" if reference else ""
        print(f"{name:26s} {seconds * 1000:8.1f} ms/step  {tokens / seconds:9.0f} tokens/s{ratio}")
    if not args.skip_torch:
        gemm = gemm_gflops()
        print(f"fp32 GEMM 2048x1024x1024: paddle {gemm['paddle']:.0f} GFLOP/s, "
              f"pytorch {gemm['pytorch']:.0f} GFLOP/s (the ceiling each framework's steps run under)")


if __name__ == "__main__":
    main()
