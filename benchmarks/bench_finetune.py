"""Fine-tuning step speed on a real task's batches: `ernie.finetune`'s training program in float32
and with bfloat16 matrix products (`--set amp=bf16`, where the CPU has AMX or AVX512_BF16)
against Hugging Face's PyTorch ErnieForSequenceClassification of the same shape on the same
batches, in float32 and under bfloat16 autocast, in one process, same thread count.

The batches are the job's own: the task's training examples featurised by the job (its tokenizer
and `max_seq_len`), the first epoch's random batches of `--batch-size`, each padded to its
longest row, so the lengths are the task's (a review is short, a mail long). A step is forward,
backward, global-norm clipping and AdamW. Prints ms a step, real tokens/s and the ratios, and the
losses of bf16 against float32 over the same steps; asserts nothing.

    python benchmarks/bench_finetune.py --task review-sentiment --data data/review-sentiment \
        (--init-model MODEL_DIR | --vocab VOCAB [--model-config configs/model/tiny.yaml]) \
        [--batch-size 32] [--max-seq-len 128] [--warmup 3] [--steps 20]
"""
from __future__ import annotations

import ernie  # noqa: F401  (first: its CPU settings must precede Paddle's import)

# isort: split

import argparse
import itertools

import numpy as np

from ernie.finetune.batching import epoch_batches
from ernie.finetune.settings import load_settings
from ernie.finetune.tasks import get_task
from ernie.finetune.trainer import DEFAULT_MODEL_CONFIG, FinetuneJob, load_encoder, read_data, resolve_casing
from ernie.kernels.cpu_runtime import math_threads
from ernie_common.machine import cpu_flags, cpu_line
from propeller.mixed_precision import MixedPrecisionUnsupported, check_supported, cpu_bf16_isa

from common import hf_ernie_config, timed, torch_step_time

THREADS = math_threads()


def job_batches(job: FinetuneJob, n: int) -> list:
    """The feeds of the job's first `n` training batches (seed 1, epoch 1), as `run_seed` makes them."""
    train = job.features["train"]
    rows = epoch_batches([len(f["src"]) for f in train], job.settings.batch_size, 1, 0,
                         job.settings.group_by_length)[:n]
    return [job.kind.batch([train[i] for i in r], job.settings.task_id) for r in rows]


def bench_paddle(job: FinetuneJob, feeds, warmup, steps, losses: list) -> float:
    runner, _, _ = job.build(seed=1)
    counter, cycle = itertools.count(), itertools.cycle(feeds)

    def step():
        out = runner.step(next(counter), next(cycle), 2e-5)
        losses.append(float(np.asarray(out["loss"]).reshape(-1)[0]))

    return timed(step, warmup, steps)


def bench_torch(config, n_labels: int, feeds, warmup, steps, bf16: bool) -> float:
    import torch
    import transformers

    torch.set_num_threads(THREADS)
    torch.manual_seed(1)
    hf_config = hf_ernie_config(config)
    hf_config.num_labels = n_labels
    model = transformers.ErnieForSequenceClassification(hf_config)
    batches = [{k: torch.from_numpy(v) for k, v in f.items()} for f in feeds]
    cycle = itertools.cycle(batches)

    def loss():
        t = next(cycle)
        out = model(input_ids=t["src_ids"], token_type_ids=t["sent_ids"], position_ids=t["pos_ids"],
                    attention_mask=t["input_mask"].long(), task_type_ids=t["task_ids"], labels=t["label"][:, 0])
        return out.loss

    return torch_step_time(model, loss, warmup, steps, bf16=bf16)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="a sentence classification task (ernie/finetune/tasks.py)")
    parser.add_argument("--data", required=True, help="the task's directory (python -m data_gen fetch NAME)")
    parser.add_argument("--init-model", help="model directory; omit for random initialisation with --vocab")
    parser.add_argument("--vocab", help="vocab.txt for random initialisation")
    parser.add_argument("--model-config", default=str(DEFAULT_MODEL_CONFIG))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    task = get_task(args.task)
    config, params, vocab = load_encoder(args.init_model, args.vocab, args.model_config)
    data = read_data(task, args.data)

    def job(amp: str) -> FinetuneJob:
        settings = resolve_casing(load_settings(overrides=[f"amp={amp}", f"batch_size={args.batch_size}",
                                                           f"max_seq_len={args.max_seq_len}"]), vocab)
        return FinetuneJob(task, settings, config, vocab, params, data)

    fp32 = job("off")
    if fp32.kind.head != "sentence" or fp32.kind.regression or task.kind != "classification":
        parser.error(f"{task.name} is not a sentence classification task")
    feeds = job_batches(fp32, args.warmup + args.steps)
    real = np.mean([f["input_mask"].sum() for f in feeds])
    padded = np.mean([f["input_mask"].size for f in feeds])
    print(cpu_line())
    print(f"fine-tuning step on {task.name}: encoder {config.num_hidden_layers}x{config.hidden_size}/"
          f"{config.num_attention_heads} heads (vocab {config.vocab_size}) + a {fp32.kind.n_outputs}-way head, "
          f"batches of {args.batch_size}: {real:.0f} real tokens in {padded:.0f} padded positions on average; "
          f"{THREADS} threads; {args.steps} timed steps after {args.warmup}")
    losses = {"off": [], "bf16": []}
    results = {"paddle static": bench_paddle(fp32, feeds, args.warmup, args.steps, losses["off"])}
    try:
        check_supported("bf16", cpu_flags())
        results[f"paddle static, bf16 ({cpu_bf16_isa(cpu_flags())})"] = bench_paddle(
            job("bf16"), feeds, args.warmup, args.steps, losses["bf16"])
    except MixedPrecisionUnsupported as err:
        print(f"bfloat16: not measured ({err})")
    n_labels = fp32.kind.n_outputs
    results["pytorch (HF ErnieForSequenceClassification)"] = bench_torch(config, n_labels, feeds, args.warmup,
                                                                         args.steps, bf16=False)
    results["pytorch, bf16 autocast"] = bench_torch(config, n_labels, feeds, args.warmup, args.steps, bf16=True)
    reference, fp32_time = results["pytorch (HF ErnieForSequenceClassification)"], results["paddle static"]
    for name, seconds in results.items():
        print(f"{name:44s} {seconds * 1000:8.1f} ms/step {real / seconds:9.0f} real tokens/s "
              f"{reference / seconds:5.2f}x PyTorch  {fp32_time / seconds:5.2f}x paddle float32")
    if losses["bf16"]:
        gap = max(abs(a - b) / abs(a) for a, b in zip(losses["off"], losses["bf16"]))
        print(f"bf16 against float32, same start and batches, {len(losses['bf16'])} steps: largest relative "
              f"difference of the losses {gap:.2e}")


if __name__ == "__main__":
    main()
