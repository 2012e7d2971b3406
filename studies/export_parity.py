"""How far each consumer of the exports is from this library: the largest logit difference between
the fine-tuned model's static program and Paddle Inference, onnxruntime, transformers and PaddleNLP
(the last in its own environment, studies/external_env.py), on the first passages of a dev file.

    python -m studies.export_parity --model out/seed-1/model --dev data/brown-genre/dev.tsv [--n 64]

The model is a sentence classifier from `python -m ernie.finetune`; the dev file's first column is
the text. Prints one line per consumer; docs/export.md's figures come from it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from ernie.export import export
from ernie.predict import Predictor
from ernie.serving.inference_model import inference_program
from studies.external_env import run_in

PADDLENLP_LOGITS = """
import json, sys, paddle
from paddlenlp.transformers import ErnieForSequenceClassification
feeds = json.loads(open(sys.argv[2]).read())
model = ErnieForSequenceClassification.from_pretrained(sys.argv[1])
model.eval()
logits = model(input_ids=paddle.to_tensor(feeds["src_ids"]), token_type_ids=paddle.to_tensor(feeds["sent_ids"]),
               attention_mask=paddle.to_tensor(feeds["input_mask"], dtype="float32"))
print(json.dumps(logits.numpy().tolist()))
"""


def consumer_logits(model: Path, batch: dict, tmp: Path) -> dict:
    import onnxruntime
    import torch
    import transformers
    out = {"Paddle Inference": Predictor(export(model, "paddle-inference", tmp / "pi")).run(batch)["logits"]}
    session = onnxruntime.InferenceSession(str(export(model, "onnx", tmp / "onnx") / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    out["onnxruntime"] = session.run(["logits"], {i.name: batch[i.name] for i in session.get_inputs()})[0]
    hf = transformers.ErnieForSequenceClassification.from_pretrained(str(export(model, "hf", tmp / "hf"))).eval()
    with torch.no_grad():
        out["transformers"] = hf(input_ids=torch.from_numpy(batch["src_ids"]),
                                 token_type_ids=torch.from_numpy(batch["sent_ids"]),
                                 attention_mask=torch.from_numpy(batch["input_mask"]).long(),
                                 task_type_ids=torch.from_numpy(batch["task_ids"])).logits.numpy()
    (tmp / "feeds.json").write_text(json.dumps({k: v.tolist() for k, v in batch.items()}))
    printed = run_in("paddle-consumers", PADDLENLP_LOGITS, str(export(model, "paddlenlp", tmp / "nlp")),
                     str(tmp / "feeds.json"))
    out["PaddleNLP"] = np.array(json.loads(printed.splitlines()[-1]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--n", type=int, default=64)
    args = parser.parse_args(argv)
    texts = [line.split("\t")[0] for line in Path(args.dev).read_text(encoding="utf-8").splitlines()[1:args.n + 1]]
    model = Path(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        predictor = Predictor(export(model, "paddle-inference", Path(tmp) / "features"))
        batch = predictor.kind.batch(predictor.kind.features(predictor.examples(texts), with_labels=False), task_id=0)
        reference = inference_program(model).run(batch)["logits"]
        rows = consumer_logits(model, batch, Path(tmp))
    print(f"{len(texts)} passages of {args.dev}, {reference.shape[1]} classes, logits up to "
          f"{np.abs(reference).max():.2f}")
    for name, logits in rows.items():
        print(f"{name:<18} max |logit - static program| {np.abs(logits - reference).max():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
