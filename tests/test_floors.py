"""The floors beside the downstream figures (ernie/finetune/floors.py) on small files in the
fine-tuning formats, checked against scikit-learn run independently and hand-computed cases, and
the floor rows of studies/downstream.py's report."""
import json

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from ernie.finetune import floors
from ernie.finetune.examples import TaggedExample
from ernie.finetune.tasks import get_task
from ernie.finetune.trainer import read_data
from studies import downstream

FILLER = ["war", "peace", "economy", "congress", "nation", "people"]
POLARITY_FLIP = {"positive": "negative", "negative": "positive"}


def write_texts(directory, splits):
    """`{split: [(text, label)]}` as review-sentiment's label<TAB>text_a files."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (directory / f"{split}.tsv").write_text(
            "label\ttext_a\n" + "".join(f"{label}\t{text}\n" for text, label in rows), encoding="utf-8")
    return directory


def rows(rng, n, cue, label):
    return [(f"{cue} {' '.join(rng.choice(FILLER, 3))}", label) for _ in range(n)]


def sklearn_accuracy(train, examples, ngram_range, C):
    """The floor's model, built here from scikit-learn alone."""
    vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b", ngram_range=ngram_range).fit([t for t, _ in train])
    model = LogisticRegression(C=C, max_iter=1000).fit(vectorizer.transform([t for t, _ in train]),
                                                       [label for _, label in train])
    predicted = model.predict(vectorizer.transform([t for t, _ in examples]))
    return accuracy_score([label for _, label in examples], predicted)


def test_a_separable_set_scores_1(tmp_path):
    rng = np.random.default_rng(0)
    splits = {split: rows(rng, n, "good", "positive") + rows(rng, n, "bad", "negative")
              for split, n in (("train", 20), ("dev", 5), ("test", 5))}
    task = get_task("review-sentiment")
    floor = floors.compute_floor(task, read_data(task, write_texts(tmp_path / "d", splits)))
    assert floor["dev"] == {"acc": 1.0} and floor["test"] == {"acc": 1.0}
    assert (floor["task"], floor["metric"], floor["train_examples"]) == ("review-sentiment", "acc", 40)


def test_c_and_ngrams_are_chosen_on_dev_not_test(tmp_path):
    """"odd" marks 4 positive training texts among 34 with "bad": dev labels "bad odd" negative
    (a C that ignores "odd" wins), test positive (a C that learns it wins)."""
    rng = np.random.default_rng(0)
    train = rows(rng, 30, "good", "positive") + rows(rng, 30, "bad", "negative") + rows(rng, 4, "bad odd", "positive")
    dev = rows(rng, 5, "good", "positive") + rows(rng, 5, "bad", "negative") + rows(rng, 6, "bad odd", "negative")
    test = rows(rng, 5, "good", "positive") + rows(rng, 5, "bad", "negative") + rows(rng, 6, "bad odd", "positive")
    grid = [(ngrams, C) for ngrams in floors.NGRAM_RANGES for C in floors.C_GRID]
    on_dev = {g: sklearn_accuracy(train, dev, *g) for g in grid}
    on_test = {g: sklearn_accuracy(train, test, *g) for g in grid}
    dev_best = max(grid, key=on_dev.get)  # the first of the highest, as the floor breaks ties
    test_best = max(grid, key=on_test.get)
    assert dev_best != test_best and on_test[test_best] > on_test[dev_best]  # the case is what it claims

    task = get_task("tweet-sentiment")
    floor = floors.compute_floor(task, read_data(task, write_texts(tmp_path / "d", {"train": train, "dev": dev,
                                                                                     "test": test})))
    assert (tuple(floor["chosen"]["ngram_range"]), floor["chosen"]["C"]) == dev_best
    assert floor["dev"]["acc"] == pytest.approx(on_dev[dev_best])
    assert floor["test"]["acc"] == pytest.approx(on_test[dev_best])
    assert [g["dev"] for g in floor["grid"]] == pytest.approx([on_dev[g] for g in grid])


def test_accuracy_is_scikit_learn_s(tmp_path):
    rng = np.random.default_rng(3)

    def noisy(n):
        out = []
        for _ in range(n):
            words = list(rng.choice(FILLER + ["good", "bad"], 5))
            label = "positive" if words.count("good") > words.count("bad") else "negative"
            out.append((" ".join(words), label if rng.random() > 0.2 else POLARITY_FLIP[label]))
        return out
    splits = {"train": noisy(80), "dev": noisy(30), "test": noisy(30)}
    task = get_task("review-sentiment")
    data = read_data(task, write_texts(tmp_path / "d", splits))
    floor = floors.compute_floor(task, data)
    ngrams, C = tuple(floor["chosen"]["ngram_range"]), floor["chosen"]["C"]
    model = floors.BagOfWords("en", ngrams, C).fit(data.train)
    for split, examples in (("dev", data.dev), ("test", data.test)):
        predicted = model.predict(examples)
        assert floor[split]["acc"] == pytest.approx(accuracy_score([e.label for e in examples], predicted))
        assert floor[split]["acc"] == pytest.approx(sklearn_accuracy(splits["train"], splits[split], ngrams, C))


def test_most_frequent_tag_floor_by_hand(tmp_path):
    """run is B-VERB twice and B-NOUN once; B-NOUN and B-VERB tie overall (3 each) and B-NOUN
    sorts first, so the unknown "cat" is B-NOUN. Dev: "the run" (B-DET B-NOUN) is predicted
    B-DET B-VERB, "cat runs" right: 3 of 4 one-word chunks, precision = recall = F1 = 3/4."""
    def line(pairs):
        return "\x02".join(w for w, _ in pairs) + "\t" + "\x02".join(t for _, t in pairs) + "\n"
    train = [[("the", "B-DET"), ("dog", "B-NOUN"), ("runs", "B-VERB")], [("the", "B-DET"), ("run", "B-NOUN")],
             [("dogs", "B-NOUN"), ("run", "B-VERB")], [("run", "B-VERB")]]
    dev = [[("the", "B-DET"), ("run", "B-NOUN")], [("cat", "B-NOUN"), ("runs", "B-VERB")]]
    data_dir = tmp_path / "pos"
    data_dir.mkdir()
    for split, sentences in (("train", train), ("dev", dev)):
        (data_dir / f"{split}.tsv").write_text("text_a\tlabel\n" + "".join(map(line, sentences)), encoding="utf-8")
    examples = [TaggedExample(str(i), [w for w, _ in s], [t for _, t in s]) for i, s in enumerate(train)]
    assert floors.most_frequent_tags(examples) == (
        {"the": "B-DET", "dog": "B-NOUN", "runs": "B-VERB", "run": "B-VERB", "dogs": "B-NOUN"}, "B-NOUN")
    task = get_task("brown-pos")
    floor = floors.compute_floor(task, read_data(task, data_dir))
    assert floor["dev"] == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75})
    assert "test" not in floor  # no test file


def test_cli_writes_floor_json_and_floor_for_reads_it_back(tmp_path, capsys):
    rng = np.random.default_rng(1)
    splits = {split: rows(rng, n, "good", "positive") + rows(rng, n, "bad", "negative")
              for split, n in (("train", 10), ("dev", 4), ("test", 4))}
    data = write_texts(tmp_path / "d", splits)
    config = tmp_path / "cfg.yaml"
    config.write_text("task: review-sentiment\nmax_train_examples: 12\n")
    assert floors.main(["--task", str(config), "--data", str(data)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((data / "floor.json").read_text())
    assert printed == written and written["train_examples"] == written["max_train_examples"] == 12
    assert set(written["data"]) == {"train.tsv", "dev.tsv", "test.tsv"}

    task, path = get_task("review-sentiment"), tmp_path / "floor.json"
    first = floors.floor_for(task, data, None, path)
    path.write_text(json.dumps({**first, "description": "as recorded"}))
    assert floors.floor_for(task, data, None, path)["description"] == "as recorded"  # same files: read back
    assert floors.floor_for(task, data, 12, path)["description"] != "as recorded"  # another sample: computed
    path.write_text(json.dumps({**first, "description": "as recorded"}))
    with open(data / "dev.tsv", "a", encoding="utf-8") as f:
        f.write("positive\tgood news\n")
    assert floors.floor_for(task, data, None, path)["description"] != "as recorded"  # a file changed


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    for args, message in ((["--task", "nope"], "unknown task 'nope'"),
                          (["--task", "STS-B", "--data", str(tmp_path)], "STS-B is a regression task"),
                          (["--task", "review-sentiment", "--data", str(tmp_path / "none")], "data file not found"),
                          (["--task", str(tmp_path / "none.yaml")], "cannot read")):
        assert floors.main(args) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_downstream_report_has_a_floor_row_and_says_when_it_is_not_beaten(tmp_path):
    rng = np.random.default_rng(2)
    splits = {split: rows(rng, n, "good", "positive") + rows(rng, n, "bad", "negative")
              for split, n in (("train", 10), ("dev", 4), ("test", 4))}
    data = write_texts(tmp_path / "data", splits)
    setting = downstream.Setting("toy", "review-sentiment", str(data), None, 1)
    out = tmp_path / "out"
    for init, test in (("pretrained", [0.5, 0.7]), ("random", [0.5, 0.5])):
        run = out / "toy" / init / "lr-0.001"
        run.mkdir(parents=True)
        seeds = [{"dev": {"acc": 0.6}, "test": {"acc": t}} for t in test]
        (run / "metrics.json").write_text(json.dumps({"seeds": seeds}))
    table = downstream.comparison_table(out, [setting], downstream.INITS, downstream.TITLES, "random")
    assert len(table) == 5 and "floor: TF-IDF of words" in table[4]
    assert table[4].rstrip(" |").split(" | ")[4:] == ["100.0", "100.0"]
    assert table[2].split(" | ")[3:] == ["2", "60.0 ± 0.0", "60.0 ± 14.1", "+10.0 |"]
    assert (out / "toy" / "floor.json").is_file()
    findings = downstream.floor_findings(out, [setting], downstream.INITS, downstream.TITLES)
    assert [f.split("**, ")[1].split(":")[0] for f in findings] == ["pre-trained", "random initialisation"]
    assert all("against its floor's 100.0" in f and f.endswith("does not beat it, not yet useful on this task.")
               for f in findings)
    assert downstream.report(out, [setting]).splitlines() == [*table, "", *findings]
    (out / "toy" / "floor.json").unlink()
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        (data / name).unlink()
    assert "floor not computed: data file not found" in downstream.report(out, [setting])
