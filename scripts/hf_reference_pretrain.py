"""Knowledge masking alone, trained in Hugging Face's PyTorch ERNIE (`transformers.ErnieModel` with
BERT's masked-LM head, output weights tied to the word embeddings): the independent reference for
`ernie.pretrain` in docs/pretraining.md.

It reads a pre-training config as `ernie.pretrain` does and trains on exactly the batches that
run's knowledge-masking steps read: the same shards, reader, seed, masked positions and labels,
the same optimizer (AdamW, beta1/beta2/epsilon, decoupled weight decay skipping layer-norm and
bias parameters, global-norm clipping) and learning-rate schedule. The loss is computed on the
gathered masked positions only, as in `ernie.pretrain.model`. Paddle is never imported: the two
frameworks' OpenMP runtimes slow each other down in one process.

    python scripts/hf_reference_pretrain.py --config configs/pretrain/X.yaml --output DIR [--steps N]

Writes DIR/log.jsonl in `ernie.pretrain`'s format (`knowledge_masking/loss`, `.../accuracy`, `lr`,
`tokens_per_s` every `log_every` steps) and DIR/model, an ERNIE model directory (encoder and
masked-LM head under the original names) that `ernie.finetune` reads.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from data_gen.shards import read_manifest, recorded_path
from ernie.formats.checkpoint import save_model_dir
from ernie.formats.hf_format import config_to_hf, params_from_hf
from ernie.model.config import ErnieConfig
from ernie.model.optimization import task_learning_rate
from ernie.pretrain.config import load_config
from ernie.pretrain.data import PretrainingData
from ernie_common.tokenization import first_normal_id, load_vocab

KNOWLEDGE_MASKING = "knowledge_masking"  # the one task this reference trains


class MaskedLM(torch.nn.Module):
    """ErnieForPreTraining's modules (the encoder with its pooler, the masked-LM head), with the
    vocabulary projection on the masked rows only."""

    def __init__(self, config: ErnieConfig):
        super().__init__()
        hf = transformers.ErnieConfig(**config_to_hf(config, "ErnieForPreTraining"))
        self.model = transformers.ErnieForPreTraining(hf)

    def forward(self, feed):
        out = self.model.ernie(input_ids=feed["src_ids"], token_type_ids=feed["sent_ids"],
                               position_ids=feed["pos_ids"], attention_mask=feed["input_mask"],
                               task_type_ids=feed.get("task_ids"))
        hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])[feed["mask_pos"]]
        logits = self.model.cls.predictions(hidden)
        labels = feed["mask_label"]
        loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-1)
        correct = ((logits.argmax(-1) == labels) & (labels != -1)).sum()
        return loss, correct, (labels != -1).sum()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, help="default: the config's knowledge-masking iterations")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: all usable cores)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(config.seed)
    manifest = read_manifest(Path(config.data) / "manifest.json")
    vocab_file = recorded_path(manifest, manifest["vocab"]["path"])
    vocab = load_vocab(vocab_file)
    model_config = ErnieConfig.from_file(config.model, vocab_size=len(vocab))
    data = PretrainingData(config.data, config.seed, config.batch_tokens, vocab["[PAD]"], vocab["[MASK]"],
                           first_normal_id(vocab), length_pool=config.length_pool)
    opt = config.optimization
    steps = args.steps or _km_iterations(config)
    dropout = config.dropout  # as in ernie.pretrain: for training only, the saved config keeps the preset's
    model = MaskedLM(model_config if dropout is None else
                     model_config.replace(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout))
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not _no_decay(n)], "weight_decay": opt.weight_decay},
              {"params": [p for n, p in named if _no_decay(n)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=0.0, betas=(opt.beta1, opt.beta2), eps=opt.epsilon)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "log.jsonl").open("w", encoding="utf-8")
    window = {"loss": [], "correct": 0, "count": 0, "tokens": 0, "start": time.perf_counter()}
    model.train()
    for step in range(steps):
        feed = data.batch(step, KNOWLEDGE_MASKING, [KNOWLEDGE_MASKING], [KNOWLEDGE_MASKING], 0)
        lr = task_learning_rate(opt, steps, step + 1)
        for group in optimizer.param_groups:
            group["lr"] = lr
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items()
                   if k in ("src_ids", "sent_ids", "pos_ids", "task_ids", "input_mask", "mask_pos", "mask_label")}
        loss, correct, count = model(tensors)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt.clip_norm)
        optimizer.step()
        optimizer.zero_grad()
        window["loss"].append(loss.item())
        window["correct"] += int(correct)
        window["count"] += int(count)
        window["tokens"] += int(feed["tokens"])
        if (step + 1) % config.log_every == 0 or step + 1 == steps:
            seconds = time.perf_counter() - window["start"]
            log.write(json.dumps({"step": step + 1, "lr": lr, "loss": float(np.mean(window["loss"])),
                                  f"{KNOWLEDGE_MASKING}/loss": float(np.mean(window["loss"])),
                                  f"{KNOWLEDGE_MASKING}/accuracy": window["correct"] / max(window["count"], 1),
                                  "tokens_per_s": round(window["tokens"] / seconds, 1)}) + "\n")
            log.flush()
            window = {"loss": [], "correct": 0, "count": 0, "tokens": 0, "start": time.perf_counter()}
    log.close()
    state = {k: v.detach().numpy() for k, v in model.model.state_dict().items()}
    params, _ = params_from_hf(model_config, state)
    save_model_dir(out / "model", model_config, params, vocab_file=vocab_file)
    print(f"model: {out / 'model'}\nlog: {out / 'log.jsonl'}")
    return 0


def _no_decay(torch_name: str) -> bool:
    """The decay rule of `ernie.model.optimization.decays`, for Hugging Face's parameter names."""
    return torch_name.endswith(".bias") or "LayerNorm" in torch_name


def _km_iterations(config: dict) -> int:
    from ernie.pretrain.schedule import schedule_from_config
    return schedule_from_config(config.schedule, "schedule").iterations(KNOWLEDGE_MASKING)


if __name__ == "__main__":
    sys.exit(main())
