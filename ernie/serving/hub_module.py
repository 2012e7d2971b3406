"""The `module.py` of a PaddleHub module (`python -m ernie.export --format hub`).

The module runs without this project installed: `paddlehub` loads it with
`hub.Module(directory=...)`, its `@moduleinfo` class runs the exported inference graph with
Paddle Inference, and tokenizes with PaddleNLP's `ErnieTokenizer` (PaddleHub depends on PaddleNLP;
on a WordPiece vocabulary it gives this library's ids, as tests/test_paddle_consumers.py checks). It
serves sentence-level heads (classification, ranking, regression) over one text or a text pair;
the task's description travels in the folder's `finetune.json`.
"""

MODULE_SOURCE = '''"""PaddleHub module exported by the ERNIE 2.0 framework (`python -m ernie.export --format hub`).

    import paddlehub as hub
    module = hub.Module(directory="THIS FOLDER")
    module.predict(["a first text", "a second text"])          # or predict(texts, text_pairs)

Needs paddlepaddle, paddlehub and paddlenlp (a PaddleHub dependency), not the framework itself.
"""
import json
import os

import numpy as np
import paddle
import paddle.inference as paddle_infer
from paddlehub.module.module import moduleinfo, serving
from paddlenlp.transformers import ErnieTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
INPUTS = ("src_ids", "sent_ids", "pos_ids", "input_mask", "task_ids")
__THIS_MODEL__


@moduleinfo(name=NAME, version="1.0.0", summary=SUMMARY, author="ERNIE 2.0 framework", author_email="",
            type="nlp/text_classification")
class ErnieFinetunedModule:
    def __init__(self, threads=None, use_gpu=None):
        """`use_gpu`: None, a GPU where this Paddle build sees one (the first of FLAGS_selected_gpus,
        which paddle.distributed.launch sets, else GPU 0), else the CPU; True, a GPU or an error;
        False, the CPU. `threads`: the CPU's math threads (default: the cores this process may use)."""
        with open(os.path.join(HERE, "finetune.json"), encoding="utf-8") as f:
            self.description = json.load(f)
        self.tokenizer = ErnieTokenizer(os.path.join(HERE, "vocab.txt"),
                                        do_lower_case=self.description["do_lower_case"])
        config = paddle_infer.Config(os.path.join(HERE, "inference.json"), os.path.join(HERE, "inference.pdiparams"))
        gpus = paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0
        if use_gpu and not gpus:
            raise RuntimeError("use_gpu=True, but this Paddle build sees no GPU")
        if gpus and use_gpu is not False:
            config.enable_use_gpu(256, int(os.environ.get("FLAGS_selected_gpus", "0").split(",")[0]))
        else:
            config.disable_gpu()
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            config.set_cpu_math_library_num_threads(threads or cores)
        config.disable_glog_info()
        self.predictor = paddle_infer.create_predictor(config)
        self.labels = self.description["labels"]

    def _feeds(self, texts, text_pairs):
        encoded = [self.tokenizer(a, text_pair=b, max_seq_len=self.description["max_seq_len"])
                   for a, b in zip(texts, text_pairs)]
        length = max(len(e["input_ids"]) for e in encoded)
        feeds = {name: np.zeros((len(encoded), length), np.int64) for name in INPUTS}
        feeds["input_mask"] = np.zeros((len(encoded), length), np.float32)
        feeds["task_ids"][:] = self.description["task_id"]
        feeds["pos_ids"][:] = np.arange(length)
        feeds["src_ids"][:] = self.tokenizer.pad_token_id
        for row, e in enumerate(encoded):
            n = len(e["input_ids"])
            feeds["src_ids"][row, :n] = e["input_ids"]
            feeds["sent_ids"][row, :n] = e["token_type_ids"]
            feeds["input_mask"][row, :n] = 1.0
        return feeds

    def _run(self, feeds):
        for name in self.predictor.get_input_names():
            self.predictor.get_input_handle(name).copy_from_cpu(feeds[name])
        self.predictor.run()
        return {name: self.predictor.get_output_handle(name).copy_to_cpu()
                for name in self.predictor.get_output_names()}

    @serving
    def predict(self, texts, text_pairs=None, batch_size=32):
        """One prediction per text (or text pair): the label (classification), [label, score of
        class 1] (ranking) or the score (regression)."""
        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts")
        if (text_pairs is not None) != PAIRED:
            raise ValueError("this model takes " + ("pairs of texts (texts, text_pairs)" if PAIRED else "one text")
                             + " an example")
        text_pairs = text_pairs if text_pairs is not None else [None] * len(texts)
        if len(text_pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts and {len(text_pairs)} text_pairs")
        results = []
        for start in range(0, len(texts), batch_size):
            outputs = self._run(self._feeds(texts[start:start + batch_size], text_pairs[start:start + batch_size]))
            if "score" in outputs:
                results += [float(s) for s in outputs["score"]]
                continue
            for probs in outputs["probs"]:
                label = self.labels[int(np.argmax(probs))]
                results.append([label, float(probs[1])] if KIND == "ranking" else label)
        return results
'''


def module_source(name: str, summary: str, kind: str, paired: bool) -> str:
    """`module.py` for one exported model: its PaddleHub name and summary, its task's kind
    (classification, ranking, regression) and whether it takes text pairs."""
    constants = f"NAME = {name!r}\nSUMMARY = {summary!r}\nKIND = {kind!r}\nPAIRED = {paired!r}"
    return MODULE_SOURCE.replace("__THIS_MODEL__", constants, 1)
