"""What pre-training asks of a task through its interface (`DataTask`, `TaskHead`), shown with a
user's task written for it (`options_probe`, a module of this test): the run's options reach the
head as the very object the reader's task holds, the memory estimate asks the tasks for the
logits they compute over the vocabulary, the summary sets a task's loss against the unigram
entropy when the task says so, and a sentence task's stream is read in the order its
`stream_seed` gives, by default the order the built-in tasks have always been read in."""
import json

import numpy as np
import pytest
import yaml

from data_gen.config import DataConfig
from data_gen.make import make
from ernie.pretrain.data import PretrainingData
from ernie.pretrain.log import summary, summary_line
from ernie.pretrain.memory import vocab_logits_share
from ernie.pretrain.trainer import Trainer, load_config
from ernie_common import tasks as registry
from ernie_common.tokenization import first_normal_id, load_vocab
from tests.conftest import REPO
from tests.test_data_gen_make import _documents

PROBE = "options_probe"
PROBE_MODULE = '''
from dataclasses import dataclass

import numpy as np

from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import TOKEN, TaskOptions, register


@dataclass
class ProbeOptions(TaskOptions):
    classes: int = 2            # the head's classes: a head that reads its task's options
    logits_share: float = 0.0   # what it says it adds to the memory estimate


class ProbeHead(LinearHead):
    @property
    def token_classes(self):
        return self.options.classes


@register(options=ProbeOptions, head=ProbeHead)
class OptionsProbe(DataTask):
    name, task_id, level = "options_probe", 60, TOKEN
    label_fields = ("probe_label",)
    compared_with_unigram_entropy = True

    def token_labels(self, chunk, context, stats):
        return {"probe_label": chunk.word_start.astype(np.int8)}  # 1 starts a word, 0 continues one

    def vocab_logits_share(self):
        return self.options.logits_share
'''
TASKS = ["knowledge_masking", "sentence_distance", PROBE]
MODEL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64, use_task_id=True, task_type_vocab_size=64)


@pytest.fixture(scope="module")
def probe_shards(tmp_path_factory, en_vocab):
    root = tmp_path_factory.mktemp("probe")
    (root / "probe.py").write_text(PROBE_MODULE, encoding="utf-8")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 30)), encoding="utf-8")
    make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                    task_modules=[str(root / "probe.py")], tasks=TASKS, max_seq_len=64, shards=2,
                    stopwords=str(REPO / "configs/stopwords/en.txt"),
                    task_options={"knowledge_masking": {"mask_ratio": 0.4},
                                  PROBE: {"classes": 5, "logits_share": 0.1}}),
         progress=False)
    (root / "model.yaml").write_text(yaml.safe_dump(MODEL))
    return root


def _pretrain_config(root, stages):
    values = dict(model=str(root / "model.yaml"), data=str(root / "shards"), output=str(root / "run"),
                  task_modules=[str(root / "probe.py")], seed=1, batch_tokens=256,
                  schedule={"strategy": "continual_multitask", "stages": stages, "iterations_per_task": 2})
    (root / "pretrain.yaml").write_text(yaml.safe_dump(values))
    return load_config(root / "pretrain.yaml")


def test_a_head_gets_the_options_the_reader_holds(probe_shards):
    trainer = Trainer(_pretrain_config(probe_shards, [["knowledge_masking", PROBE]]))
    head, data_side = trainer.model.task_heads[PROBE], trainer.data.tasks[PROBE]
    assert head.options is data_side.options and head.options.classes == 5  # one options object per run
    assert trainer.model.heads[PROBE].weight.shape == [MODEL["hidden_size"], 5]  # the head read it
    masking = trainer.model.task_heads["knowledge_masking"]
    assert masking.options is trainer.data.tasks["knowledge_masking"].options and masking.options.mask_ratio == 0.4


def test_the_memory_estimate_asks_the_tasks_for_their_vocabulary_logits(probe_shards):
    config = _pretrain_config(probe_shards, [["knowledge_masking"], [PROBE]])
    manifest = json.loads((probe_shards / "shards" / "manifest.json").read_text())
    assert vocab_logits_share(config, manifest, "manifest.json") == pytest.approx(0.4 + 0.1)  # the shards' options
    assert vocab_logits_share(config, None, "manifest.json") == pytest.approx(0.15 + 0.0)  # the tasks' defaults


def test_the_summary_sets_against_the_unigram_entropy_the_tasks_that_say_so(probe_shards):
    registry.load_module(str(probe_shards / "probe.py"))
    records = [{"step": 5, "knowledge_masking/loss": 3.0, "sentence_distance/loss": 1.0, f"{PROBE}/loss": 1.5,
                "someone_elses_task/loss": 2.0}]  # a task whose module is not loaded: not compared
    values = summary(records, 6.0)
    assert {k for k in values if k.endswith("_over_entropy")} == {"knowledge_masking_over_entropy",
                                                                   f"{PROBE}_over_entropy"}
    assert values[f"{PROBE}_over_entropy"] == pytest.approx(0.25)
    assert summary_line(values).splitlines()[1].startswith("options probe: final loss 1.500 nats = 0.250 x")
    assert not any(k.endswith("_over_entropy") for k in summary(records, None))


def test_a_stream_is_read_in_the_order_its_task_seeds(probe_shards, en_vocab):
    vocab = load_vocab(en_vocab)
    seed, stream = 7, "sentence_distance"

    def order(data):
        return data._order(stream, 2)

    data = PretrainingData(probe_shards / "shards", seed, 256, vocab["[PAD]"], vocab["[MASK]"], first_normal_id(vocab))
    n = data.streams[stream].shape[1]
    # the built-in tasks' seeds are their ids - 2, the reading order of every run so far
    builtin = [task(task.options_type()) for task in registry.resolve(registry.builtin_names())]
    assert {t.name: t.stream_seed() for t in builtin if t.level == registry.SENTENCE} == {
        "sentence_reordering": 1, "sentence_distance": 2, "discourse_relation": 3, "ir_relevance": 4}
    assert np.array_equal(order(data), np.random.default_rng([seed, 2, 2]).permutation(n))
    reseeded = PretrainingData(probe_shards / "shards", seed, 256, vocab["[PAD]"], vocab["[MASK]"],
                               first_normal_id(vocab))
    reseeded.tasks[stream].stream_seed = lambda: 11
    assert np.array_equal(order(reseeded), np.random.default_rng([seed, 11, 2]).permutation(n))
