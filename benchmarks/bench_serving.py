"""Serving speed of one fine-tuned sentence classifier in four consumers, on the same sentences:
this project's predictor (`ernie.predict.Predictor`, tokenization included), Paddle Inference
driven directly, onnxruntime on the ONNX export and Hugging Face's PyTorch
`ErnieForSequenceClassification` on the HF export (the last three fed by the same tokenizer
output, with HF's own tokenizer for PyTorch), each in a process of its own (two OpenMP runtimes in
one process slow each other), with 1 and 2 threads. Prints sentences/s and each figure's ratio to
the fastest at that thread count; asserts nothing.

The model is the tiny shape (or --layers/--hidden) with random weights and a 2-class head; the
sentences are the embedded demo corpus's, cut to --max-seq-len tokens.

    python benchmarks/bench_serving.py [--sentences 512 --batch 32 --max-seq-len 128 --threads 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSUMERS = ("ernie.predict", "paddle-inference", "onnxruntime", "hf-pytorch")


def _sentences(n: int):
    lines = [line.strip() for line in (ROOT / "data_gen" / "demo" / "sotu_demo.txt").open(encoding="utf-8")]
    return [line for line in lines if line][:n]


def _make_model(out: Path, args) -> Path:
    """A fine-tuned-shaped model directory (random weights, SST-2 head) and its three exports."""
    import numpy as np

    from data_gen.vocab import train_vocab
    from ernie.export import export
    from ernie.finetune import FINETUNE_FILE
    from ernie.formats.checkpoint import save_model_dir
    from ernie.model.config import ErnieConfig
    from ernie.model.modeling import ErnieModel
    from ernie.model.params_io import layer_params
    from ernie_common.tokenization import write_vocab
    write_vocab(out / "vocab.txt", train_vocab(_sentences(100_000), 8000, "en"))
    n_vocab = sum(1 for _ in (out / "vocab.txt").open(encoding="utf-8"))
    config = ErnieConfig(vocab_size=n_vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=args.hidden // 64, intermediate_size=4 * args.hidden, use_task_id=True)
    rng = np.random.default_rng(0)
    params = {**layer_params(ErnieModel(config)),
              "cls_out_w": rng.normal(0, 0.02, (args.hidden, 2)).astype(np.float32),
              "cls_out_b": np.zeros(2, np.float32)}
    description = {"task": "SST-2", "kind": "classification", "head": "sentence", "labels": ["0", "1"],
                   "max_seq_len": args.max_seq_len, "do_lower_case": True, "task_id": 0}
    model = save_model_dir(out / "model", config, params, out / "vocab.txt",
                           extra_files={FINETUNE_FILE: json.dumps(description)})
    for fmt in ("paddle-inference", "onnx", "hf"):
        export(model, fmt, out / fmt)
    return out


def _worker(consumer: str, directory: Path, threads: int, batch: int, sentences: int, repeats: int) -> float:
    """Sentences per second of one consumer (run in its own process)."""
    texts = _sentences(sentences)
    if consumer == "hf-pytorch":
        import torch
        import transformers
        torch.set_num_threads(threads)
        model = transformers.ErnieForSequenceClassification.from_pretrained(str(directory / "hf")).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory / "hf"))
        max_len = json.loads((directory / "paddle-inference" / "finetune.json").read_text())["max_seq_len"]

        def predict():
            with torch.no_grad():
                for i in range(0, len(texts), batch):
                    encoded = tokenizer(texts[i:i + batch], truncation=True, max_length=max_len, padding=True,
                                        return_tensors="pt")
                    model(**encoded).logits.argmax(-1)
    else:
        from ernie.predict import Predictor
        predictor = Predictor(directory / "paddle-inference", batch_size=batch, threads=threads)
        if consumer == "ernie.predict":
            def predict():
                predictor.predict(texts)
        else:
            run = _raw_runner(consumer, directory, threads, predictor)
            kind = predictor.kind

            def predict():
                features = kind.features(predictor.examples(texts), with_labels=False)
                for i in range(0, len(features), batch):
                    run(kind.batch(features[i:i + batch], task_id=0)).argmax(-1)
    predict()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        predict()
    return repeats * len(texts) / (time.perf_counter() - start)


def _raw_runner(consumer: str, directory: Path, threads: int, predictor):
    """A function from a feed dict to logits, straight through Paddle Inference or onnxruntime."""
    if consumer == "paddle-inference":
        raw = predictor.predictor

        def run(feed):
            for name in raw.get_input_names():
                raw.get_input_handle(name).copy_from_cpu(feed[name])
            raw.run()
            return raw.get_output_handle("logits").copy_to_cpu()
        return run
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(directory / "onnx" / "model.onnx"), options,
                                           providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda feed: session.run(["logits"], {n: feed[n] for n in names})[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worker", choices=CONSUMERS, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        rate = _worker(args.worker, Path(args.dir), args.threads[0], args.batch, args.sentences, args.repeats)
        print(json.dumps({"sentences_per_s": rate}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        directory = _make_model(Path(tmp), args)
        print(f"model: {args.layers} layers, hidden {args.hidden}; {args.sentences} demo sentences, batches of "
              f"{args.batch}, at most {args.max_seq_len} tokens; each consumer in its own process")
        print(f"{'threads':>7}  {'consumer':<18}{'sentences/s':>12}{'x fastest':>11}")
        for threads in args.threads:
            rates = {}
            for consumer in CONSUMERS:
                out = subprocess.run([sys.executable, __file__, "--worker", consumer, "--dir", str(directory),
                                      "--threads", str(threads), "--batch", str(args.batch),
                                      "--sentences", str(args.sentences), "--repeats", str(args.repeats)],
                                     capture_output=True, text=True, check=True,
                                     env={**os.environ, "OMP_NUM_THREADS": str(threads)})
                rates[consumer] = json.loads(out.stdout.strip().splitlines()[-1])["sentences_per_s"]
            fastest = max(rates.values())
            for consumer, rate in rates.items():
                print(f"{threads:>7}  {consumer:<18}{rate:>12.1f}{rate / fastest:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
