"""The held-out evaluation of pre-training (`heldout:`): a fixed slice of every task's examples is
kept out of training on every rank, and every task of the schedule, trained yet or not, is scored
on it before the first step and at each stage end; a task not yet trained scores what its
untrained head scores, a trained one scores lower, and the logged values are what a separate
model holding the saved parameters computes on the same batches. Shards made with
`heldout_documents` hold whole documents out: no training example holds any of their text, and
the evaluation reads their examples."""
import dataclasses
import json
import math
from collections import Counter

import numpy as np
import paddle
import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.generate import is_heldout
from data_gen.make import make
from data_gen.shards import Shard
from ernie.formats.checkpoint import load_params
from ernie.model.params_io import assign_layer_params
from ernie.pretrain.config import PretrainError
from ernie.pretrain.data import PretrainingData
from ernie.pretrain.model import ErnieForPretraining
from ernie.pretrain.trainer import Trainer, load_config
from ernie_common import tasks as registry
from ernie_common.tokenization import first_normal_id, load_vocab, make_tokenizer
from tests.conftest import REPO
from tests.test_data_gen_make import _documents

MODEL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64, use_task_id=True, task_type_vocab_size=8)
TASKS = ["knowledge_masking", "capitalization", "sentence_reordering"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, en_vocab):
    root = tmp_path_factory.mktemp("heldout")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 40)), encoding="utf-8")
    make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                    tasks=TASKS, max_seq_len=64, shards=4, stopwords=str(REPO / "configs/stopwords/en.txt")),
         progress=False)
    (root / "model.yaml").write_text(yaml.safe_dump(MODEL))
    return root


def _data(root, vocab_file, **options):
    vocab = load_vocab(vocab_file)
    return PretrainingData(root / "shards", 1, 256, vocab["[PAD]"], vocab["[MASK]"], first_normal_id(vocab), **options)


def _members(data, stream):
    """(shard file, example index) of the stream's training rows."""
    rows = data.streams.get(stream, np.zeros((2, 0), int))
    return {(data.shards[s].path.name, int(i)) for s, i in rows.T}


def test_the_slice_is_kept_out_of_training_on_every_rank(shards, en_vocab):
    whole = _data(shards, en_vocab)
    ranks = [_data(shards, en_vocab, heldout=12, rank=r, world_size=2) for r in range(2)]
    assert ranks[1].heldout == {}  # rank 0 alone evaluates: the others read none of the slice
    assert ranks[0].heldout_source == "examples" and "may be trained on" in ranks[0].describe_heldout(TASKS)
    for stream in whole.streams:
        everything = _members(whole, stream)
        kept = [ex.src_ids.tobytes() for ex in ranks[0].heldout[stream]]
        assert len(kept) == min(12, len(everything) // 2)
        trained = [_members(rank, stream) for rank in ranks]
        assert not trained[0] & trained[1]  # each rank its own shards ...
        left_out = everything - trained[0] - trained[1]  # ... less the held-out examples, rank 0's slice
        by_name = {shard.path.name: shard for shard in whole.shards}
        assert sorted(by_name[f][i].src_ids.tobytes() for f, i in left_out) == sorted(kept)
    one_process = _data(shards, en_vocab, heldout=12)
    assert all([ex.src_ids.tobytes() for ex in one_process.heldout[s]] ==
               [ex.src_ids.tobytes() for ex in ranks[0].heldout[s]] for s in whole.streams)


def _run(root, name, **heldout):
    config = dict(model=str(root / "model.yaml"), data=str(root / "shards"), output=str(root / name), seed=3,
                  batch_tokens=256, log_every=5, checkpoint_every=1000, heldout={"examples": 24, **heldout},
                  optimization={"learning_rate": 2e-3, "warmup_steps": 4},
                  schedule={"strategy": "continual", "iterations_per_task": 25,
                            "stages": [["knowledge_masking"], ["sentence_reordering"]]})
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
    trainer = Trainer(load_config(root / f"{name}.yaml"))
    trainer.train(progress=False)
    records = [json.loads(line) for line in (root / name / "log.jsonl").read_text().splitlines()]
    return trainer, [r for r in records if "heldout_loss/knowledge_masking" in r]


def test_every_task_is_scored_before_training_and_at_each_stage_end(shards):
    trainer, evaluations = _run(shards, "stages")
    assert [(r["step"], r.get("stage")) for r in evaluations] == [(0, None), (25, 1), (50, 2)]
    classes = trainer.num_classes["sentence_reordering"]
    start, after_masking, end = ({t: r[f"heldout_loss/{t}"] for t in ("knowledge_masking", "sentence_reordering")}
                                 for r in evaluations)
    # untrained heads score about the uniform guess: ln(classes), ln(vocabulary) for the masked LM
    assert start["sentence_reordering"] == pytest.approx(math.log(classes), abs=0.05)
    assert after_masking["sentence_reordering"] == pytest.approx(math.log(classes), abs=0.05)  # not trained yet
    assert start["knowledge_masking"] == pytest.approx(math.log(trainer.data.vocab_size), abs=0.3)
    assert after_masking["knowledge_masking"] < start["knowledge_masking"] - 0.3
    assert end["sentence_reordering"] < after_masking["sentence_reordering"] - 0.1
    summary = json.loads((shards / "stages" / "summary.json").read_text())
    assert summary["heldout_loss"] == pytest.approx(end)
    assert set(summary["heldout_accuracy"]) == {"knowledge_masking", "sentence_reordering"}


def test_logged_values_equal_a_direct_evaluation_of_the_saved_model(shards):
    trainer, evaluations = _run(shards, "direct", every=10)
    assert [r["step"] for r in evaluations] == [0, 10, 20, 25, 30, 40, 50]
    params = load_params(shards / "direct" / "model" / "params.safetensors")
    model = ErnieForPretraining(trainer.train_config, trainer.num_classes)
    model.eval()
    assign_layer_params(model, {p.name: params[p.name] for p in model.parameters()})
    for task in ("knowledge_masking", "sentence_reordering"):
        total = count = 0.0
        for feed in trainer.data.heldout_batches(task, trainer.task_order, registry.get(task).task_id):
            out = model({k: paddle.to_tensor(v) for k, v in feed.items() if k != "tokens"})
            n = float(out[f"{task}/count"].numpy().reshape(-1)[0])
            total += float(out[f"{task}/loss"].numpy().reshape(-1)[0]) * n
            count += n
        assert count > 0
        assert evaluations[-1][f"heldout_loss/{task}"] == pytest.approx(total / count, rel=1e-5)
    _, again = _run(shards, "direct_again", every=10)  # a rerun scores the same batches with the same masks
    assert again == evaluations


def test_heldout_options_are_checked(shards):
    path = shards / "bad.yaml"
    path.write_text(yaml.safe_dump(dict(model=str(shards / "model.yaml"), data=str(shards / "shards"), output="x",
                                        schedule={"strategy": "continual", "stages": [["knowledge_masking"]],
                                                  "iterations_per_task": 2},
                                        heldout={"every": 10})))
    with pytest.raises(PretrainError, match="heldout: every is set, but examples is 0"):
        load_config(path)


# ---- held-out documents ----------------------------------------------------------------------

DOCUMENT_TASKS = ["knowledge_masking", "capitalization", "sentence_reordering", "sentence_distance"]


@pytest.fixture(scope="module")
def document_shards(tmp_path_factory, en_vocab):
    """Shards of 12 addresses, about a third held out; sentence distance pairs a segment with
    text from another document, which must be one of its own part."""
    root = tmp_path_factory.mktemp("heldout_documents")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(12, 20)), encoding="utf-8")
    config = DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                        tasks=DOCUMENT_TASKS, max_seq_len=64, shards=2, heldout_documents=0.3,
                        stopwords=str(REPO / "configs/stopwords/en.txt"))
    manifest = make(config, progress=False)
    return root, config, manifest


def _ngrams(examples, n=8):
    return {tuple(ex.src_ids[i:i + n]) for ex in examples for i in range(len(ex.src_ids) - n + 1)}


def test_no_text_of_a_heldout_document_is_in_a_training_example(document_shards, en_vocab):
    root, config, manifest = document_shards
    docs = list(config.documents(config.files, Counter()))
    held = [is_heldout(d, 0.3, config.seed) for d in docs]
    assert 0 < sum(held) < len(docs)
    assert manifest["heldout"]["documents"] == sum(held) and manifest["corpus"]["documents"] == len(docs)
    training = [ex for s in manifest["shards"] for ex in Shard(root / "shards" / s["file"])]
    heldout = [ex for s in manifest["heldout"]["shards"] for ex in Shard(root / "shards" / s["file"])]
    assert len(heldout) == manifest["heldout"]["examples"] > 0
    assert {int(ex.task) for ex in heldout} == {int(ex.task) for ex in training}  # every stream has examples
    trained, evaluated = _ngrams(training), _ngrams(heldout)
    tokenizer = make_tokenizer(en_vocab, True)

    def text(documents):  # each sentence's 8-grams, and 8 tokens from the middle of each of 12 or more
        grams, middles = set(), set()
        for doc in documents:
            for sentence in doc.sentences:
                ids = tokenizer.encode(sentence.text)
                grams.update(tuple(ids[i:i + 8]) for i in range(len(ids) - 7))
                if len(ids) >= 12:
                    middles.add(tuple(ids[len(ids) // 2 - 4:len(ids) // 2 + 4]))
        return grams, middles

    held_grams, held_text = text(d for d, h in zip(docs, held) if h)
    trained_grams, trained_text = text(d for d, h in zip(docs, held) if not h)
    held_text -= trained_grams  # a phrase both kinds of document say ("Members of Congress, my fellow ...") is no leak
    trained_text -= held_grams
    assert held_text and trained_text and not held_text & trained and not trained_text & evaluated
    assert len(held_text & evaluated) > 0.9 * len(held_text)  # the held-out text is there


def test_what_make_counts_and_learns_of_the_corpus_with_documents_held_out(document_shards, monkeypatch):
    """The report counts every document's repairs (as a make without a held-out part does), and
    the tasks' corpus statistics (`prepare`) read the training documents alone."""
    import data_gen.make as make_module
    root, config, manifest = document_shards
    whole = make(dataclasses.replace(config, heldout_documents=0.0, output=str(root / "whole")), progress=False)
    assert manifest["skipped_or_repaired"]["long_sentence_split"] == whole["skipped_or_repaired"]["long_sentence_split"]
    read = []

    class Reader:
        name = "reader"

        def prepare(self, config, read_corpus):
            read.extend(d.doc_id for d in read_corpus())

    monkeypatch.setattr(make_module, "build_tasks", lambda config: [Reader()])
    make_module._corpus_states(config)
    docs = list(config.documents(config.files, Counter()))
    assert read == [d.doc_id for d in docs if not is_heldout(d, 0.3, config.seed)] and len(read) < len(docs)


def test_the_evaluation_reads_the_heldout_documents_and_training_every_example(document_shards, en_vocab):
    root, _, manifest = document_shards
    whole = _data(root, en_vocab)
    ranks = [_data(root, en_vocab, heldout=12, rank=r, world_size=2) for r in range(2)]
    assert whole.heldout_source is None and ranks[0].heldout_source == "documents"
    assert ranks[1].heldout == {}  # rank 0 alone evaluates
    heldout = {ex.src_ids.tobytes() for s in manifest["heldout"]["shards"] for ex in Shard(root / "shards" / s["file"])}
    for stream in whole.streams:
        assert _members(ranks[0], stream) | _members(ranks[1], stream) == _members(whole, stream)  # nothing kept out
        kept = [ex.src_ids.tobytes() for ex in ranks[0].heldout[stream]]
        assert len(kept) == 12 and set(kept) <= heldout
    one_process = _data(root, en_vocab, heldout=12)
    assert all([ex.src_ids.tobytes() for ex in one_process.heldout[s]] ==
               [ex.src_ids.tobytes() for ex in ranks[0].heldout[s]] for s in whole.streams)
    assert "held-out documents" in one_process.describe_heldout(["knowledge_masking", "sentence_distance"])


def test_a_run_on_shards_with_heldout_documents_scores_them(document_shards, capsys):
    root, _, _ = document_shards
    (root / "model.yaml").write_text(yaml.safe_dump(MODEL))
    trainer, evaluations = _run(root, "documents")
    assert "held-out examples: knowledge_masking 24, sentence_reordering 24, from the shards' held-out documents" \
        in capsys.readouterr().out
    assert [r["step"] for r in evaluations] == [0, 25, 50]
    assert evaluations[1]["heldout_loss/knowledge_masking"] < evaluations[0]["heldout_loss/knowledge_masking"] - 0.3


def test_a_remade_heldout_shard_is_checked_like_the_others(document_shards):
    root, config, manifest = document_shards
    again = make(config, progress=False)
    assert again["heldout"] == manifest["heldout"]  # up to date: verified, not remade
    held = root / "shards" / manifest["heldout"]["shards"][0]["file"]
    held.unlink()
    remade = make(config, progress=False)
    assert held.is_file() and remade["heldout"]["shards"] == manifest["heldout"]["shards"]


def test_a_share_too_small_to_hold_out_a_document_keeps_examples_out_instead(tmp_path, en_vocab):
    """A paper config's one document in a thousand, on a corpus of a few documents, holds none out:
    its held-out shards are empty, and the run keeps examples out of the training shards instead,
    as without the key, rather than evaluating nothing."""
    (tmp_path / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 20)), encoding="utf-8")
    manifest = make(DataConfig(input=[str(tmp_path / "corpus.txt")], vocab=str(en_vocab), output=str(tmp_path / "shards"),
                               tasks=DOCUMENT_TASKS, max_seq_len=64, shards=2, heldout_documents=0.001,
                               stopwords=str(REPO / "configs/stopwords/en.txt")), progress=False)
    assert manifest["heldout"]["documents"] == 0
    data = _data(tmp_path, en_vocab, heldout=6)
    assert data.heldout_source == "examples" and all(len(examples) == 6 for examples in data.heldout.values())
    assert "kept out of training" in data.describe_heldout(["knowledge_masking"])
