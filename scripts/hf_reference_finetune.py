"""Sentence classification fine-tuned in an independent PyTorch loop: Hugging Face's
`ErnieForSequenceClassification` and the tokenizer the HF export writes, over the same TSV files and settings that
`ernie.finetune` uses, to check that fine-tuning path (docs/pretraining.md).

The model comes from an ERNIE model directory (converted with `ernie.formats.hf_format`, as
`python -m ernie.convert --from ernie --to hf` does) or, with `--random`, is initialised by
Hugging Face from the same config. Each seed trains `epochs` epochs with AdamW (beta2 0.999,
epsilon 1e-6, weight decay on every weight but biases and layer norms), linear warm-up over
`warmup_proportion` of the steps then linear decay, dropout 0.1 on the pooled output (the
model's `hidden_dropout_prob`), and keeps its best dev epoch, as `ernie.finetune` does. Paddle is
never imported.

    python scripts/hf_reference_finetune.py --model MODEL_DIR --data data/brown-genre --output DIR \\
        --learning-rate 3e-4 --epochs 3 --batch-size 32 --max-seq-len 96 --max-train-examples 1500 --seeds 3 [--random]

Writes DIR/metrics.json: the dev accuracy of each seed's best epoch, and their mean and sd.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

from ernie.formats.checkpoint import load_model_dir
from ernie.formats.hf_format import write_hf_dir
from ernie.model.optimization import linear_warmup_decay


def read_tsv(path: Path):
    """(texts, labels) of a `text_a<TAB>label` file with a header, in either column order."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    text, label = header.index("text_a"), header.index("label")
    return [r[text] for r in rows[1:]], [r[label] for r in rows[1:]]


def check_tokenizer(tokenizer, vocab_file, texts) -> None:
    """Stop unless Hugging Face's tokenizer gives this library's ids on `texts`: a reference loop
    fed other ids (all [UNK], say) would compare nothing."""
    from ernie_common.tokenization import FullTokenizer
    ours = FullTokenizer(vocab_file, do_lower_case=True)
    for text in texts:
        theirs = tokenizer(text, add_special_tokens=False)["input_ids"]
        if theirs != ours.encode(text):
            sys.exit(f"error: Hugging Face's tokenizer disagrees with {vocab_file} on: {text[:60]!r}")


def encode(tokenizer, texts, max_len):
    return tokenizer(texts, truncation=True, max_length=max_len, padding=True, return_tensors="pt")


def evaluate(model, tokenizer, texts, labels, max_len, batch_size=64) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            batch = encode(tokenizer, texts[i:i + batch_size], max_len)
            logits = model(**batch).logits
            correct += int((logits.argmax(-1) == torch.tensor(labels[i:i + batch_size])).sum())
    return correct / len(texts)


def run_seed(args, seed, hf_dir, hf_config, tokenizer, train, dev) -> float:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if args.random:
        model = transformers.ErnieForSequenceClassification(hf_config)
    else:
        model = transformers.ErnieForSequenceClassification.from_pretrained(hf_dir, config=hf_config)
    no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "LayerNorm" in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=0.0, betas=(0.9, 0.999), eps=1e-6)
    texts, labels = train
    per_epoch = -(-len(texts) // args.batch_size)
    total, warmup = per_epoch * args.epochs, int(args.warmup_proportion * per_epoch * args.epochs)
    best, step = 0.0, 0
    for _ in range(args.epochs):
        model.train()
        order = rng.permutation(len(texts))
        for i in range(per_epoch):
            rows = order[i * args.batch_size:(i + 1) * args.batch_size]
            batch = encode(tokenizer, [texts[r] for r in rows], args.max_seq_len)
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = linear_warmup_decay(args.learning_rate, warmup, total, step)
            loss = model(**batch, labels=torch.tensor([labels[r] for r in rows])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        best = max(best, evaluate(model, tokenizer, *dev, args.max_seq_len))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an ERNIE model directory (its config and vocabulary "
                                                       "are used with --random too)")
    parser.add_argument("--data", required=True, help="directory with train.tsv and dev.tsv")
    parser.add_argument("--output", required=True)
    parser.add_argument("--random", action="store_true", help="random initialisation instead of the model's weights")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--max-train-examples", type=int)
    parser.add_argument("--warmup-proportion", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    train_texts, train_labels = read_tsv(data / "train.tsv")
    if args.max_train_examples and args.max_train_examples < len(train_texts):  # ernie.finetune's sample
        keep = sorted(np.random.default_rng(0).choice(len(train_texts), args.max_train_examples, replace=False))
        train_texts, train_labels = [train_texts[i] for i in keep], [train_labels[i] for i in keep]
    names = sorted(set(train_labels))
    index = {n: i for i, n in enumerate(names)}
    dev_texts, dev_labels = read_tsv(data / "dev.tsv")
    train = (train_texts, [index[x] for x in train_labels])
    dev = (dev_texts, [index[x] for x in dev_labels])
    config, params, vocab = load_model_dir(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = write_hf_dir(Path(tmp) / "hf", config, params, vocab_file=vocab)
        hf_config = transformers.ErnieConfig.from_pretrained(hf_dir, num_labels=len(names))
        # From the directory, as users load it: in transformers 5, `BertTokenizerFast(vocab_file=...)`
        # keeps only the special tokens and maps every word to [UNK].
        tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
        check_tokenizer(tokenizer, vocab, train_texts[:50])
        scores = [run_seed(args, seed, hf_dir, hf_config, tokenizer, train, dev) for seed in range(1, args.seeds + 1)]
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    report = {"dev_accuracy": scores, "mean": statistics.fmean(scores),
              "sd": statistics.stdev(scores) if len(scores) > 1 else 0.0,
              "init": "random" if args.random else "pretrained", "settings": vars(args)}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"dev accuracy {report['mean']:.4f} ± {report['sd']:.4f} over {len(scores)} seeds: {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
