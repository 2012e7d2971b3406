"""A task declares the arrays it stores (`ernie_common.tasks.Field`), and shards store and return
whatever is declared, of its dtype: shown with two tasks of this module's own (`FIELD_TASKS`,
loaded as a user's task module is), a span-masking task that keeps its masked positions and the
original tokens as variable-length fields of its own, and a token-level task of 1,000 classes
whose labels are int16 a token, with a per-example count beside them. A shard whose task table
or arrays differ from the code's declaration is refused in one line."""
import json
import struct
import zlib

import numpy as np
import pytest

from data_gen.config import DataConfig
from data_gen.data_task import DataTask
from data_gen.examples import shard_fields
from data_gen.make import make
from data_gen.shards import Shard, ShardError
from ernie.pretrain.data import PretrainingData
from ernie.pretrain.task_head import LinearHead
from ernie_common import tasks as registry
from ernie_common.tokenization import first_normal_id, load_vocab
from tests.test_data_gen_make import _documents

SPAN, WIDE = "span_masking_probe", "wide_labels_probe"
FIELD_TASKS = '''
import numpy as np

from data_gen.data_task import DataTask
from data_gen.examples import set_list
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import EXAMPLE, LIST, TOKEN, Field, register

SPAN_POS, SPAN_LABEL = Field("span_pos", "int16", LIST), Field("span_label", "int32", LIST)


@register(head=LinearHead)
class SpanMasking(DataTask):
    """Masks a span of three tokens of each example it rides on; keeps where, and what was there."""
    name, task_id, level = "span_masking_probe", 58, TOKEN
    fields = (Field("span_word"), SPAN_POS, SPAN_LABEL)

    def token_labels(self, chunk, context, stats):
        return {"span_word": np.where(chunk.word_start, 0, 1)}

    def finish_block(self, block, generator, rng, stats):
        positions, labels = [], []
        starts = np.cumsum(block["lengths"]) - block["lengths"]
        for start, n, carried in zip(starts.tolist(), block["lengths"].tolist(), block["token_tasks"].tolist()):
            pos = np.zeros(0, np.int64)
            if carried >> self.task_id & 1 and n > 5:
                first = int(rng.integers(1, n - 4))
                pos = np.arange(first, first + 3)
            labels.append(block["src_ids"][start + pos].copy())
            block["src_ids"][start + pos] = generator.tokenizer.mask_id
            positions.append(pos)
        set_list(block, SPAN_POS, positions)
        set_list(block, SPAN_LABEL, labels)

    @classmethod
    def feed_specs(cls):
        return {"span_pos": ([-1], "int64"), "span_label": ([-1], "int64")}

    def batch_labels(self, examples, length, batch):
        return {"span_pos": np.concatenate([row * length + ex.lists["span_pos"].astype(np.int64)
                                            for row, ex in enumerate(examples)]),
                "span_label": np.concatenate([ex.lists["span_label"].astype(np.int64) for ex in examples])}

    @classmethod
    def restore_tokens(cls, ids, lists):
        positions, starts = lists["span_pos"]
        ids[starts + positions] = lists["span_label"][0]


@register(head=LinearHead)
class WideLabels(DataTask):
    """1,000 classes a word: its first token's id mod 1000; and how many words an example has."""
    name, task_id, level = "wide_labels_probe", 59, TOKEN
    fields = (Field("wide_label", "int16"), Field("wide_count", "int32", EXAMPLE))

    def token_labels(self, chunk, context, stats):
        return {"wide_label": np.where(chunk.word_start, chunk.ids % 1000, -1)}

    def finish_block(self, block, generator, rng, stats):
        starts = np.cumsum(block["lengths"]) - block["lengths"]
        counts = np.add.reduceat((block["wide_label"] >= 0).astype(np.int64), starts) if len(starts) else starts
        carried = (block["token_tasks"] >> np.uint64(self.task_id)) & np.uint64(1) > 0
        block["wide_count"] = np.where(carried, counts, -1)
'''


@pytest.fixture(scope="module")
def field_shards(tmp_path_factory, en_vocab):
    root = tmp_path_factory.mktemp("fields")
    (root / "field_tasks.py").write_text(FIELD_TASKS, encoding="utf-8")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 30)), encoding="utf-8")
    make(DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_vocab), output=str(root / "shards"),
                    task_modules=[str(root / "field_tasks.py")], tasks=[SPAN, WIDE], max_seq_len=64, shards=2),
         progress=False)
    return root


def _examples(root):
    return [ex for path in sorted((root / "shards").glob("part-*.shard")) for ex in Shard(path)]


def _restored(ex) -> np.ndarray:
    """The example's tokens before the span task masked them."""
    ids = ex.src_ids.astype(np.int64)
    registry.get(SPAN).restore_tokens(ids, {name: (values, np.zeros(len(values), np.int64))
                                            for name, values in ex.lists.items()})
    return ids


def test_a_span_task_keeps_its_positions_and_tokens_in_fields_of_its_own(field_shards, en_vocab):
    examples = _examples(field_shards)
    mask_id = load_vocab(en_vocab)["[MASK]"]
    assert examples and set(examples[0].lists) == {"span_pos", "span_label"}
    masked = [ex for ex in examples if len(ex.lists["span_pos"])]
    assert len(masked) == sum(len(ex) > 5 for ex in examples)
    for ex in masked:
        pos, label = ex.lists["span_pos"], ex.lists["span_label"]
        assert pos.dtype == np.int16 and label.dtype == np.int32 and len(pos) == len(label) == 3
        assert np.array_equal(pos, np.arange(pos[0], pos[0] + 3)) and (ex.src_ids[pos] == mask_id).all()
        assert (label != mask_id).all() and np.array_equal(_restored(ex)[pos], label)
    # the original tokens are what the other task labelled before the span was masked
    for ex in masked:
        labelled = ex.labels["wide_label"] >= 0
        assert np.array_equal(_restored(ex)[labelled] % 1000, ex.labels["wide_label"][labelled])
    assert {ex.labels["span_word"].dtype for ex in examples} == {np.dtype(np.int8)}


def test_a_token_task_of_1000_classes_stores_int16_labels(field_shards):
    examples = _examples(field_shards)
    labels = np.concatenate([ex.labels["wide_label"] for ex in examples])
    assert labels.dtype == np.int16 and labels.max() > 900  # beyond int8's 127
    for ex in examples:
        labelled = ex.labels["wide_label"] >= 0
        assert np.array_equal(_restored(ex)[labelled] % 1000, ex.labels["wide_label"][labelled])
        assert ex.values["wide_count"].dtype == np.int32 and ex.values["wide_count"] == labelled.sum()


def test_the_reader_feeds_the_declared_fields(field_shards, en_vocab):
    vocab = load_vocab(en_vocab)
    data = PretrainingData(field_shards / "shards", 1, 256, vocab["[PAD]"], vocab["[MASK]"], first_normal_id(vocab))
    stored = {tuple(ex.src_ids.tolist()): ex for ex in _examples(field_shards)}
    order = [SPAN, WIDE]
    feeds = data.batch(0, WIDE, [WIDE, SPAN], order, registry.get(WIDE).task_id)
    rows = [stored[tuple(src[:int(n)].tolist())] for src, n in zip(feeds["src_ids"], feeds["input_mask"].sum(1))]
    length = feeds["src_ids"].shape[1]
    for row, ex in enumerate(rows):
        assert np.array_equal(feeds[f"{WIDE}_label"][row, :len(ex)], ex.labels["wide_label"])
    assert np.array_equal(feeds["span_label"], np.concatenate([ex.lists["span_label"] for ex in rows]))
    assert np.array_equal(feeds["span_pos"], np.concatenate([row * length + ex.lists["span_pos"]
                                                             for row, ex in enumerate(rows)]))
    assert (feeds["src_ids"].reshape(-1)[feeds["span_pos"]] == vocab["[MASK]"]).all()


def _rewritten(path, out, change):
    """The shard at `path` with its header changed by `change` (a dict -> None), its checksum made to fit."""
    shard = path.read_bytes()
    (length,) = struct.unpack("<I", shard[8:12])
    header = json.loads(shard[16:16 + length])
    change(header)
    raw = json.dumps(header).encode().ljust(length)  # the data stays where it was
    assert len(raw) == length
    out.write_bytes(shard[:8] + struct.pack("<II", length, zlib.crc32(raw)) + raw + shard[16 + length:])
    return out


def test_a_shard_written_with_other_fields_is_refused(field_shards, tmp_path):
    path = next((field_shards / "shards").glob("part-*.shard"))

    def as_int8(header):
        header["tasks"][WIDE]["fields"][0]["dtype"] = "int8"
        header["arrays"]["wide_label"]["dtype"] = "|i1"

    with pytest.raises(ShardError) as err:
        Shard(_rewritten(path, tmp_path / "part-00000.shard", as_int8))
    message = str(err.value)
    assert "\n" not in message and f"task '{WIDE}' was written with fields [wide_label:int8/token" in message
    assert message.endswith("but the registered task (" + str(field_shards / "field_tasks.py") + ") has "
                            "[wide_label:int16/token, wide_count:int32/example]: regenerate the shards with "
                            "`python -m data_gen make`")

    def without_span_label(header):
        del header["arrays"]["span_label"]

    with pytest.raises(ShardError, match=r"^[^\n]*part-00001.shard: its arrays \[.*\] are not those of its tasks' "
                                         r"fields \[.*span_label:int32\]: make the shards again[^\n]*$"):
        Shard(_rewritten(path, tmp_path / "part-00001.shard", without_span_label))


def test_a_declaration_shards_cannot_hold_is_refused():
    with pytest.raises(registry.TaskError, match="field 'x': dtype must name a numpy integer or float type"):
        registry.Field("x", "str")
    with pytest.raises(registry.TaskError, match="a sentence-level task's fields are per example or list"):
        registry.register(head=LinearHead)(type("PerTokenSentences", (DataTask,), dict(
            name="per_token_sentences", task_id=57, level=registry.SENTENCE, fields=(registry.Field("y"),))))
    registry.get("knowledge_masking")
    with pytest.raises(registry.TaskError, match=r"task thief: field\(s\) \['mask_label'\] belong to another task"):
        registry.register(head=LinearHead)(type("Thief", (DataTask,), dict(
            name="thief", task_id=57, level=registry.TOKEN, fields=(registry.Field("mask_label"),))))
    with pytest.raises(registry.TaskError, match="field 'label': the name is the examples' own"):
        shard_fields([type("Own", (DataTask,), dict(fields=(registry.Field("label", "int32", registry.EXAMPLE),)))])
