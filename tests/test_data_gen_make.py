"""The shard pipeline end to end on a small real corpus with bad records mixed in."""
import gc
import json
import random
import subprocess
import sys

import pytest
import yaml

from data_gen.config import DataConfig, DataConfigError
from data_gen.generate import ExampleGenerator
from data_gen.make import _corpus_states, make
from data_gen.shards import Shard, ShardError
from tests.conftest import DEMO_CORPUS, REPO


def _documents(n_docs=4, sentences=40):
    docs, current = [], []
    for line in DEMO_CORPUS.open(encoding="utf-8"):
        if line.strip():
            current.append(line)
        elif current:
            docs.append(current[:sentences])
            current = []
            if len(docs) == n_docs:
                break
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    docs = _documents()
    with open(root / "corpus.txt", "wb") as f:
        for k, doc in enumerate(docs):
            f.write("".join(doc).encode("utf-8"))
            if k == 1:
                f.write(b"A line with \xff\xfe invalid bytes.\n")
                f.write("A line with a control\x07 character.\n".encode())
                f.write(("A very long line of many sentences. " * 80).encode() + b"\n")
            f.write(b"\n")
        f.write(b"\n")  # a second separator in a row: an empty document
        f.write(b"Only one sentence here.\n\n")
    (root / "clicks.tsv").write_text(
        "state of the union\tThe State of the Union address\t25\t40\n"
        "state of the union\tUnion station train times\t0\t12\n"
        "tax cuts\tTax cuts and jobs act explained\t7\t9\n"
        "tax cuts\tbroken line without counts\n", encoding="utf-8")
    return root


def _config(corpus, vocab, tmp_path, masking=None, **overrides):
    """The test corpus's data config (its undecodable line skipped); `masking`: knowledge masking's options."""
    values = dict(input=str(corpus / "corpus.txt"), on_decode_error="skip", vocab=str(vocab), output=str(tmp_path / "shards"),
                  format="text", lang="en", max_seq_len=64, shards=3, seed=7, workers=1,
                  stopwords=str(REPO / "configs/stopwords/en.txt"), chunk_bytes=4096,
                  task_options={"discourse_relation": {"discourse_markers": str(REPO / "configs/discourse/en.yaml")},
                                "ir_relevance": {"click_log": str(corpus / "clicks.tsv")},
                                "knowledge_masking": masking or {}})
    values.update(overrides)
    return DataConfig(**values)


def test_make_counts_everything_and_is_independent_of_workers(corpus, en_vocab, tmp_path):
    one = make(_config(corpus, en_vocab, tmp_path / "a", workers=1), progress=False)
    two = make(_config(corpus, en_vocab, tmp_path / "b", workers=2), progress=False)
    assert [s["sha256"] for s in one["shards"]] == [s["sha256"] for s in two["shards"]]
    skipped = one["skipped_or_repaired"]
    assert skipped["undecodable_line"] == 1 and skipped["control_characters_removed"] == 1
    assert skipped["empty_document"] == 1 and skipped["one_sentence_document"] == 1
    assert skipped["long_line_split"] == 1 and skipped["malformed_click_log_line"] == 1
    per_task = one["examples_per_task"]
    assert set(per_task) == {"token_tasks_only", "sentence_reordering", "sentence_distance", "discourse_relation",
                             "ir_relevance"}
    # every segment gives one plain example (natural order) and at most one reordering or distance example
    segment_examples = per_task["sentence_reordering"] + per_task["sentence_distance"]
    assert per_task["token_tasks_only"] >= segment_examples > 0
    assert per_task["ir_relevance"] == 5  # 3 observed pairs + one random title per query
    assert one["labels_per_task"]["ir_relevance"] == {"0": 2, "1": 1, "2": 2}
    assert sum(one["discourse_marker_counts"].values()) == per_task["discourse_relation"]
    assert one["examples"] == sum(s["examples"] for s in one["shards"]) == sum(per_task.values())
    assert one["token_labels"]["capitalization"]["1"] > 0 and one["token_labels"]["token_document"]["1"] > 0
    assert one["classes"] == {"sentence_reordering": 33, "sentence_distance": 3,
                              "discourse_relation": len(one["discourse_markers"]), "ir_relevance": 3}
    for shard in one["shards"]:
        examples = list(Shard(tmp_path / "a" / "shards" / shard["file"]))
        assert len(examples) == shard["examples"]
        assert all(len(ex) <= 64 and ex.src_ids[0] == 1 for ex in examples)  # [CLS] first, within max_seq_len


def test_rerun_skips_verified_shards_and_repairs_corrupt_ones(corpus, en_vocab, tmp_path, capsys):
    config = _config(corpus, en_vocab, tmp_path)
    first = make(config, progress=False)
    make(config, progress=False)
    assert "up to date: 3 shards verified" in capsys.readouterr().out
    broken = tmp_path / "shards" / first["shards"][1]["file"]
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(ShardError, match=rf"{broken.name}: truncated"):
        Shard(broken)
    again = make(config, progress=False)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in first["shards"]]
    assert len(Shard(broken)) == first["shards"][1]["examples"]


def test_a_corpus_made_in_parts_and_merged_is_the_whole_corpus(corpus, en_vocab, tmp_path):
    """prepare once, two parts over three files (as two machines would), merge: one manifest
    that counts what a single make counts, over every part's shards (each part's held-out
    documents in a held-out shard of its own), readable by inspect."""
    files = []
    for k, doc in enumerate(_documents(n_docs=6, sentences=25)):
        if k % 2 == 0:
            files.append(tmp_path / f"in-{len(files)}.txt")
        with open(files[-1], "a", encoding="utf-8") as f:
            f.write("".join(doc) + "\n")
    values = dict(input=[str(f) for f in files], vocab=str(en_vocab), output=str(tmp_path / "parts"),
                  max_seq_len=64, shards=2, chunk_bytes=4096, heldout_documents=0.3,
                  tasks=["knowledge_masking", "capitalization", "sentence_reordering", "sentence_distance"])
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(values))

    def data_gen(*args):
        return subprocess.run([sys.executable, "-m", "data_gen", *args, "--config", str(tmp_path / "data.yaml")],
                              capture_output=True, text=True)

    early = data_gen("make", "--part", "0", "--parts", "2", "--quiet")
    assert early.returncode == 2 and "corpus_states.json not found" in early.stderr
    assert data_gen("make", "--prepare").returncode == 0
    assert data_gen("make", "--part", "1", "--parts", "2", "--quiet", "--workers", "2").returncode == 0
    missing = data_gen("merge")
    assert missing.returncode == 2 and "part(s) 0 of 2 not made yet" in missing.stderr
    assert data_gen("make", "--part", "0", "--parts", "2", "--quiet").returncode == 0
    merged = data_gen("merge")
    assert merged.returncode == 0, merged.stderr
    manifest = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == [f"part-0000{k}.shard" for k in range(4)]
    whole = make(DataConfig(**{**values, "output": str(tmp_path / "whole")}), progress=False)
    assert manifest["corpus"] == whole["corpus"] and manifest["knowledge_units"] == whole["knowledge_units"]
    assert [s["file"] for s in manifest["heldout"]["shards"]] == ["heldout-00000.shard", "heldout-00001.shard"]
    assert {k: manifest["heldout"][k] for k in ("documents", "tokens")} == \
        {k: whole["heldout"][k] for k in ("documents", "tokens")} and manifest["heldout"]["documents"] > 0
    assert manifest["examples"] == sum(s["examples"] for s in manifest["shards"]) > 0
    assert abs(manifest["unigram_entropy"]["nats"] - whole["unigram_entropy"]["nats"]) < 0.05
    shown = subprocess.run([sys.executable, "-m", "data_gen", "inspect", str(tmp_path / "parts"), "--limit", "3"],
                           capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.count("[CLS]") == 3
    # a make into the same folder since replaced a part's shard: merged, documents came twice
    (tmp_path / "parts" / "part-00001.shard").write_bytes((tmp_path / "parts" / "part-00000.shard").read_bytes())
    replaced = data_gen("merge")
    assert replaced.returncode == 2 and "part-00001.shard is not the shard part 0 wrote (its sha256 differs" \
        in replaced.stderr


def test_not_a_shard(tmp_path):
    (tmp_path / "x.shard").write_bytes(b"PK\x03\x04 not a shard at all")
    with pytest.raises(ShardError, match="x.shard: not an ERNIE shard"):
        Shard(tmp_path / "x.shard")


def test_offline_masking_and_inspect(corpus, en_vocab, tmp_path):
    config = _config(corpus, en_vocab, tmp_path, masking={"masking": "offline", "knowledge_unit_prob": 1.0})
    manifest = make(config, progress=False)
    assert manifest["config"]["task_options"]["knowledge_masking"]["masking"] == "offline"
    result = subprocess.run([sys.executable, "-m", "data_gen", "inspect", str(tmp_path / "shards"),
                             "--limit", "400", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == min(400, manifest["examples"])
    # a stale shard an earlier make with more shards left behind is not the data: not shown
    (tmp_path / "shards" / "part-00099.shard").write_bytes((tmp_path / "shards" / "part-00000.shard").read_bytes())
    again = subprocess.run([sys.executable, "-m", "data_gen", "inspect", str(tmp_path / "shards"), "--limit",
                            str(10 * manifest["examples"]), "--json"], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("\n") == manifest["examples"]
    (tmp_path / "shards" / "part-00099.shard").unlink()
    # made again with fewer shards, the folder holds those its manifest lists, no more
    fewer = make(DataConfig(**{**config.to_dict(), "shards": 1}), progress=False)
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.shard")) == [s["file"] for s in fewer["shards"]]
    (tmp_path / "shards" / "part-00007.shard").write_bytes(b"left by a make of before")  # and when up to date
    make(DataConfig(**{**config.to_dict(), "shards": 1}), progress=False)
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.shard")) == [s["file"] for s in fewer["shards"]]
    make(config, progress=False)
    text_records = [r for r in records if r["task"] in ("sentence_reordering", "sentence_distance")]
    assert text_records and all("masked" in r and "capitalization" in r for r in text_records)
    labels = {r["task"]: r["label"] for r in records if "label" in r}
    assert "permutation=[" in labels["sentence_reordering"]
    assert labels["sentence_distance"].split()[1] in ("adjacent", "same_document_not_adjacent", "other_document")
    assert "marker=" in labels["discourse_relation"]
    assert labels["ir_relevance"].split()[1] in ("clicked", "shown_not_clicked", "random_title")
    plain = subprocess.run([sys.executable, "-m", "data_gen", "inspect", str(tmp_path / "shards"),
                            "--limit", "2"], capture_output=True, text=True)
    assert plain.stdout.count("\n") == 2 and "[CLS]" in plain.stdout

    # the unigram counts, read a few tokens at a time, equal the examples' own tokens, masks undone
    from collections import Counter

    from data_gen.make import unigram_counts
    from ernie_common.tokenization import load_vocab
    vocab = load_vocab(en_vocab)
    special = {vocab[t] for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]") if t in vocab}
    paths = sorted((tmp_path / "shards").glob("*.shard"))
    expected = Counter()
    for path in paths:
        for ex in Shard(path):
            ids = ex.src_ids.copy()
            ids[ex.lists["mask_pos"]] = ex.lists["mask_label"]
            expected.update(int(i) for i in ids if int(i) not in special)
    assert sum(len(Shard(p)) for p in paths) > 0 and any(len(ex.lists["mask_pos"]) for ex in Shard(paths[0]))
    for window in (7, 1 << 20):
        counts = unigram_counts(paths, len(vocab), special, window=window)
        assert {i: int(c) for i, c in enumerate(counts) if c} == dict(expected)


def test_cli_make_and_bad_configs(corpus, en_vocab, tmp_path):
    values = dict(input=str(corpus / "corpus.txt"), on_decode_error="skip", vocab=str(en_vocab),
                  output=str(tmp_path / "out"), tasks=["knowledge_masking", "capitalization", "ir_relevance"], shards=2,
                  max_seq_len=64)
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(values))
    result = subprocess.run([sys.executable, "-m", "data_gen", "make", "--config", str(tmp_path / "ok.yaml"),
                             "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "no click_log configured, task skipped" in result.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["examples_per_task"] == {"token_tasks_only": manifest["examples"]}

    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**values, "shard": 3}))
    result = subprocess.run([sys.executable, "-m", "data_gen", "make", "--config", str(tmp_path / "bad.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown key(s) ['shard']" in result.stderr
    with pytest.raises(DataConfigError, match="file not found: nope.txt"):
        DataConfig(**{**values, "input": "nope.txt"})


def test_vocab_without_special_tokens_is_refused(corpus, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[CLS]\n[SEP]\nthe\n")
    with pytest.raises(Exception, match=r"missing special token\(s\) \['\[MASK\]', '\[UNK\]'\]"):
        make(_config(corpus, vocab, tmp_path), progress=False)


def test_chinese_vocab_on_english_text_warns(corpus, zh_vocab, tmp_path, capsys):
    make(_config(corpus, zh_vocab, tmp_path, tasks=["knowledge_masking"]), progress=False)
    assert "of tokens are [UNK]" in capsys.readouterr().err


def _phrase_corpus(path, n_phrases):
    """`n_phrases` invented two-word phrases, each in six sentences of its own (so each passes
    knowledge masking's count and PMI thresholds), shuffled, 20 sentences a document."""
    def word(k):
        return "".join(chr(97 + k // 26 ** i % 26) for i in range(3)) + "x"
    lines = [f"the {word(2 * i)} {word(2 * i + 1)} of it." for i in range(n_phrases) for _ in range(6)]
    random.Random(0).shuffle(lines)
    path.write_text("".join(line + "\n" + "\n" * (k % 20 == 19) for k, line in enumerate(lines)))
    return path


def _phrase_config(path, vocab, tmp_path):
    return DataConfig(input=str(path), vocab=str(vocab), output=str(tmp_path / "out"), format="text", lang="en",
                      tasks=["knowledge_masking"], stopwords=str(REPO / "configs/stopwords/en.txt"))


def test_corpus_states_keep_no_object_a_phrase(en_vocab, tmp_path):
    """What the main process keeps of the corpus pass, for the whole run and in every worker it
    forks, does not grow with the phrase count: knowledge masking's state is two strings, not a
    pair a phrase, and the pass ends with the free lists emptied (`make._corpus_states`).
    Counted in allocated blocks: with either undone, 1,200 phrases leave 2,600 blocks or more."""
    small, big = _phrase_corpus(tmp_path / "small.txt", 300), _phrase_corpus(tmp_path / "big.txt", 1200)
    _corpus_states(_phrase_config(small, en_vocab, tmp_path))  # imports and caches filled once
    for path, n_phrases in ((small, 300), (big, 1200)):
        gc.collect()
        before = sys.getallocatedblocks()
        states = _corpus_states(_phrase_config(path, en_vocab, tmp_path))
        kept = sys.getallocatedblocks() - before
        assert kept < 200, f"{kept} blocks kept after the corpus pass over {n_phrases} phrases"
        assert len(states["knowledge_masking"]["pairs"].split()) == 2 * n_phrases


def test_phrase_state_of_either_form_gives_the_same_phrases(en_vocab, tmp_path):
    """A generator reads the compact state `prepare` writes and the list of word pairs an older
    corpus_states.json holds alike: the same pinned words, in the same order, and phrase ids."""
    config = _phrase_config(_phrase_corpus(tmp_path / "c.txt", 50), en_vocab, tmp_path)
    state = _corpus_states(config)["knowledge_masking"]
    words, pairs = state["words"].split(), [int(i) for i in state["pairs"].split()]
    listed = [[words[a], words[b]] for a, b in zip(pairs[::2], pairs[1::2])]
    assert listed == sorted(listed) and len(listed) == 50
    new, old = (ExampleGenerator(config, {"knowledge_masking": s}) for s in (state, listed))
    assert new.lexicon.words == old.lexicon.words
    assert new.tasks[0].phrase_pairs.tolist() == old.tasks[0].phrase_pairs.tolist() == [[a, b] for a, b in
                                                                                         zip(pairs[::2], pairs[1::2])]


def test_pairs_cut_to_fit_are_counted_per_task_as_fit_lengths_cuts_them(corpus, en_vocab, tmp_path):
    """Sentence distance's pairs at 64 tokens: their cuts are in the manifest, per task, and the
    count is what `fit_lengths` takes off (checked on the plans of one chunk)."""
    from collections import Counter

    from data_gen.examples import fit_lengths
    config = _config(corpus, en_vocab, tmp_path, tasks=["knowledge_masking", "sentence_distance"])
    manifest = make(config, progress=False)
    cut = manifest["skipped_or_repaired"]
    assert cut["sentence_distance_examples_cut_to_fit"] > 0 and cut["sentence_distance_tokens_cut"] > 0

    generator = ExampleGenerator(config, _corpus_states(config))
    plans = [generator.plan([(s, s + a), (s + a + 7, s + a + 7 + b)], generator.tasks[1], 0, Counter())
             for s, a, b in ((3, 30, 40), (50, 10, 12), (9, 61, 1), (120, 100, 3))]
    stats = Counter()
    generator._count_cuts(plans, stats)
    lengths = [[b - a for a, b in p.parts] for p in plans]
    taken = [sum(n) - sum(fit_lengths(n, 64)) for n in lengths]
    assert taken == [9, 0, 1, 42]
    assert stats == Counter({"skipped/sentence_distance_examples_cut_to_fit": 3,
                             "skipped/sentence_distance_tokens_cut": sum(taken)})


def test_parts_made_while_a_folder_of_inputs_changed_are_refused_at_merge(en_vocab, tmp_path):
    """A file added to the input folder between part 0 and part 1: part 1 deals the new list, so
    some files would be read twice and others never; merge refuses, naming the parts."""
    folder = tmp_path / "books"
    folder.mkdir()
    docs = _documents(n_docs=5, sentences=10)
    for k in range(1, 5):
        (folder / f"book{k}.txt").write_text("".join(docs[k]) + "\n", encoding="utf-8")
    values = dict(input=[str(folder)], vocab=str(en_vocab), output=str(tmp_path / "parts"), max_seq_len=64,
                  shards=1, tasks=["knowledge_masking"])
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(values))

    def data_gen(*args):
        return subprocess.run([sys.executable, "-m", "data_gen", *args, "--config", str(tmp_path / "data.yaml")],
                              capture_output=True, text=True)
    assert data_gen("make", "--prepare").returncode == 0
    assert data_gen("make", "--part", "0", "--parts", "2", "--quiet").returncode == 0
    (folder / "book0.txt").write_text("".join(docs[0]) + "\n", encoding="utf-8")
    assert data_gen("make", "--part", "1", "--parts", "2", "--quiet").returncode == 0
    merged = data_gen("merge")
    assert merged.returncode == 2 and "read other input files than the config lists now" in merged.stderr


def test_a_part_made_again_first_removes_the_manifests_describing_its_old_shards(en_vocab, tmp_path, monkeypatch):
    from data_gen.make import make_part
    (tmp_path / "a.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(2, 10)), encoding="utf-8")
    values = dict(input=[str(tmp_path / "a.txt")], vocab=str(en_vocab), output=str(tmp_path / "parts"),
                  max_seq_len=64, shards=1, tasks=["knowledge_masking"])
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(values))
    for args in (["make", "--prepare"], ["make", "--part", "0", "--parts", "1", "--quiet"], ["merge"]):
        done = subprocess.run([sys.executable, "-m", "data_gen", *args, "--config", str(tmp_path / "data.yaml")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "parts"
    assert (out / "manifest.json").is_file() and (out / "manifest.part-0000-of-0001.json").is_file()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("data_gen.make._generate", stopped)
    with pytest.raises(KeyboardInterrupt):  # the part again, with another seed: its shards would change
        make_part(DataConfig(**{**values, "seed": 99}), 0, 1, progress=False)
    assert not (out / "manifest.json").exists() and not (out / "manifest.part-0000-of-0001.json").exists()


def test_a_task_of_part_zero_only_is_refused_on_every_rank_where_some_ranks_lack_it(corpus, en_vocab, tmp_path):
    """Made in two parts of one shard each, the click log's examples are in part 0's shard alone:
    two ranks would leave rank 1 without IR relevance. Both ranks refuse, with the same message,
    before either waits for the other; a single process reads both shards and trains it."""
    from data_gen.make import make_part, merge, prepare
    from ernie.pretrain.data import PretrainingData
    files = []
    for k, doc in enumerate(_documents(n_docs=4, sentences=25)):
        files.append(tmp_path / f"in-{k}.txt")
        files[-1].write_text("".join(doc) + "\n", encoding="utf-8")
    config = _config(corpus, en_vocab, tmp_path, input=[str(f) for f in files], shards=1,
                     tasks=["knowledge_masking", "ir_relevance"])
    prepare(config)
    for part in (0, 1):
        make_part(config, part, 2, progress=False)
    merge(config)

    def data(**ranks):
        return PretrainingData(config.output, 1, 256, 0, 3, 5, **ranks)
    tasks = ["knowledge_masking", "ir_relevance"]
    messages = set()
    for rank in (0, 1):
        with pytest.raises(ValueError, match=r"ir_relevance's examples are in the shards of 1 of the 2 ranks only "
                                             r"\(rank r reads shards r, r \+ 2, \.\.\. of the 2\); ranks 1 would never") as err:
            data(rank=rank, world_size=2).check_tasks(tasks)
        messages.add(str(err.value))
    assert len(messages) == 1
    data().check_tasks(tasks)
    data(rank=1, world_size=2).check_tasks(["knowledge_masking"])

    # each shard's streams are counted in the manifest, which a rank reads instead of the other
    # ranks' shards (at the paper's size, 34 bytes an example of every shard on every rank)
    from pathlib import Path

    import numpy as np

    from data_gen.shards import Shard
    from ernie.pretrain import data as data_module
    manifest = json.loads((Path(config.output) / "manifest.json").read_text())
    for entry in manifest["shards"]:
        shard = Shard(Path(config.output) / entry["file"])
        codes, plain = shard.array("task"), (shard.array("task") == -1) & (shard.array("token_tasks") > 0)
        expected = {str(c): int(n) for c, n in zip(*np.unique(codes[codes != -1], return_counts=True))}
        assert entry["streams"] == {**expected, **({"plain": int(plain.sum())} if plain.any() else {})}
    opened = []

    class Recording(Shard):
        def __init__(self, path, *args, **kwargs):
            opened.append(Path(path).name)
            super().__init__(path, *args, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_module, "Shard", Recording)
        with pytest.raises(ValueError, match="ranks 1 would never"):
            data(rank=1, world_size=2).check_tasks(tasks)
        assert opened == [manifest["shards"][1]["file"]]
        for entry in manifest["shards"]:  # shards made before the counts: read from the shards, as before
            del entry["streams"]
        (Path(config.output) / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ValueError, match="ranks 1 would never"):
            data(rank=1, world_size=2).check_tasks(tasks)


def test_text_that_reaches_no_example_is_counted(corpus, en_vocab, tmp_path):
    """A sentence task alone takes B from elsewhere for two classes of three and left the segment's
    second half in no example: about a fifth of the corpus, unsaid. With a token-level task every
    segment has its plain example and nothing is left out."""
    alone = make(_config(corpus, en_vocab, tmp_path / "a", tasks=["sentence_distance"]), progress=False)
    unread = alone["skipped_or_repaired"]["tokens_in_no_example"]
    assert 0 < unread < alone["corpus"]["tokens"] / 2
    both = make(_config(corpus, en_vocab, tmp_path / "b", tasks=["knowledge_masking", "sentence_distance"]),
                progress=False)
    assert "tokens_in_no_example" not in both["skipped_or_repaired"]


def _fit_one_token_at_a_time(lengths, max_seq_len):
    """The reference: the longest part (the first of parts as long) loses a token until [CLS],
    the parts and a [SEP] after each fit."""
    lengths = list(lengths)
    while sum(lengths) + len(lengths) + 1 > max_seq_len:
        lengths[lengths.index(max(lengths))] -= 1
    return lengths


@pytest.mark.parametrize("seed", range(5))
def test_fit_lengths_against_a_loop(seed):
    import numpy as np

    from data_gen.examples import fit_lengths
    rng = np.random.default_rng(seed)
    for _ in range(300):
        lengths = [int(n) for n in rng.integers(0, 200, rng.integers(1, 4))]
        max_seq_len = int(rng.choice([16, 64, 128, 512]))
        assert fit_lengths(lengths, max_seq_len) == _fit_one_token_at_a_time(lengths, max_seq_len), (lengths,
                                                                                                      max_seq_len)


@pytest.mark.parametrize("seed", range(5))
def test_tokens_in_no_example_against_a_loop(seed):
    """Rows no example holds: those of no plan's part, and a part's tail cut to fit (sentence
    distance cuts the longer of A and B, which may be A, the segment's own first half)."""
    import numpy as np

    from data_gen.examples import Plan, tokens_in_no_example
    rng = np.random.default_rng(seed)
    n, max_seq_len = 50, 24
    plans = [Plan([tuple(sorted(rng.integers(0, n + 10, 2))) for _ in range(rng.integers(1, 3))], 0, 0, 0)
             for _ in range(rng.integers(0, 6))]
    held = [(a, a + kept) for plan in plans
            for (a, _), kept in zip(plan.parts, _fit_one_token_at_a_time([b - a for a, b in plan.parts], max_seq_len))]
    covered = [any(a <= i < b for a, b in held) for i in range(n)]
    assert tokens_in_no_example(n, plans, max_seq_len) == covered.count(False)
