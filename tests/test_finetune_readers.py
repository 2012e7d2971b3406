"""Each fine-tuning reader on small files in the exact public formats (written here)."""
import json
from collections import Counter
from dataclasses import replace

import pytest

from ernie.finetune.examples import DataError
from ernie.finetune.tasks import AX, get_task


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_cola_train_has_no_header_and_test_has_one(tmp_path):
    write(tmp_path / "train.tsv", ["gj04\t1\t\tThe sailors rode the breeze clear of the rocks.",
                                   "gj04\t0\t*\tThe more books I ask to whom he will give."])
    write(tmp_path / "test.tsv", ["index\tsentence", "0\tBill whistled past the house."])
    task = get_task("CoLA")
    train = task.read(tmp_path, "train")
    assert [(e.text_a[:11], e.label) for e in train] == [("The sailors", "1"), ("The more bo", "0")]
    test = task.read(tmp_path, "test")
    assert (test[0].guid, test[0].text_a, test[0].label) == ("0", "Bill whistled past the house.", None)


def test_glue_pair_layouts(tmp_path):
    write(tmp_path / "train.tsv", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                                   "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him as only \" the witness \" ."])
    write(tmp_path / "test.tsv", ["index\t#1 ID\t#2 ID\t#1 String\t#2 String", "7\t1\t2\tA .\tB ."])
    mrpc = get_task("MRPC")
    (example,) = mrpc.read(tmp_path, "train")
    assert (example.text_b, example.label) == ('Referring to him as only " the witness " .', "1")
    assert mrpc.read(tmp_path, "test")[0].guid == "7"

    sts = tmp_path / "sts"
    sts.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    write(sts / "train.tsv", [header + "\tscore", "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane.\tAn air plane.\t5.000"])
    (example,) = get_task("STS-B").read(sts, "train")
    assert example.label == 5.0
    write(sts / "dev.tsv", [header + "\tscore", "0\tg\tf\ty\t1\tn\tn\ta\tb\tfive"])
    with pytest.raises(DataError, match=r"dev.tsv:2: score 'five'"):
        get_task("STS-B").read(sts, "dev")
    for score in ("nan", "-inf"):  # a NaN score made its batch's loss NaN, the batch skipped every epoch
        write(sts / "dev.tsv", [header + "\tscore", f"0\tg\tf\ty\t1\tn\tn\ta\tb\t{score}"])
        with pytest.raises(DataError, match=rf"dev.tsv:2: score '{score}' is not a finite number"):
            get_task("STS-B").read(sts, "dev")


def test_mnli_and_ax_files(tmp_path):
    cols = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"
    write(tmp_path / "dev_mismatched.tsv", [cols + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label",
                                            "0\t1\t1n\tletters\t(x)\t(y)\t(X)\t(Y)\tP .\tH .\tneutral\tneutral\tneutral\tneutral\tneutral\tneutral"])
    write(tmp_path / "diagnostic.tsv", ["index\tsentence1\tsentence2", "0\tThe cat sat.\tThe cat did not sit."])
    (example,) = get_task("MNLI-mm").read(tmp_path, "dev")
    assert (example.text_a, example.text_b, example.label) == ("P .", "H .", "neutral")
    (diagnostic,) = AX.read(tmp_path, "test")
    assert diagnostic.text_b == "The cat did not sit." and AX.submission == "AX.tsv"


def test_qqp_broken_rows_are_skipped_and_counted(tmp_path):
    write(tmp_path / "train.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                                   "1\t1\t2\tHow?\tWhy?\t0", "2\t3\t4\tbroken row", "3\t5\t6\tA?\tB?\t1"])
    skipped = Counter()
    examples = get_task("QQP").read(tmp_path, "train", skipped)
    assert [e.label for e in examples] == ["0", "1"]
    assert skipped == {"train.tsv: wrong column count": 1}
    with pytest.raises(DataError, match=r"train.tsv:3: expected 6 tab-separated columns, found 4"):
        get_task("QQP").read(tmp_path, "train")


def test_only_the_training_file_may_leave_out_rows(tmp_path):
    """A dev or test row that cannot be read is an error naming file and line: dev scores and a
    GLUE submission need every row. The training file's are skipped and counted."""
    write(tmp_path / "train.tsv", ["sentence\tlabel", "good\t1", "bad\t0\textra", "fine\t1"])
    write(tmp_path / "dev.tsv", ["sentence\tlabel", "good\t1", "bad\t0\textra"])
    write(tmp_path / "test.tsv", ["index\tsentence", "0\tgood", "1\textra\tbad"])
    sst, skipped = get_task("SST-2"), Counter()
    assert [e.label for e in sst.read(tmp_path, "train", skipped)] == ["1", "1"]
    assert skipped == {"train.tsv: wrong column count": 1}
    for split, line in (("dev", 3), ("test", 3)):
        with pytest.raises(DataError, match=rf"{split}.tsv:{line}: expected 2 tab-separated columns, found 3"):
            sst.read(tmp_path, split, skipped)


def test_an_empty_label_column_makes_a_test_file_unlabelled_and_an_empty_label_is_an_error(tmp_path):
    """A test file may leave its label column empty on every row (unlabelled: predicted, not
    scored); an empty label among given ones, or in a training or dev file, names file and line."""
    task = get_task("review-sentiment")
    write(tmp_path / "test.tsv", ["label\ttext_a", "\tgreat film", "\tdull plot"])
    assert [e.label for e in task.read(tmp_path, "test")] == [None, None]
    write(tmp_path / "test.tsv", ["label\ttext_a", "positive\tgreat film", "\tdull plot", " \tslow"])
    with pytest.raises(DataError, match=r"test.tsv:3: empty label \(2 of 3 rows\); a test file labels every row or none"):
        task.read(tmp_path, "test")
    write(tmp_path / "train.tsv", ["label\ttext_a", "\tgreat film", "\tdull plot"])
    with pytest.raises(DataError, match=r"train.tsv:2: empty label \(2 of 2 rows\)$"):
        get_task("brown-genre").read(tmp_path, "train")  # it would have been a class ''


def test_chinese_tsv_and_ranking_qids(tmp_path):
    write(tmp_path / "train.tsv", ["label\ttext_a", "1\t这家酒店很好", "0\t房间太小"])
    examples = get_task("ChnSentiCorp").read(tmp_path, "train")
    assert [(e.text_a, e.label) for e in examples] == [("这家酒店很好", "1"), ("房间太小", "0")]
    write(tmp_path / "dev.tsv", ["qid\ttext_a\ttext_b\tlabel", "0\t问题\t答案一\t0", "0\t问题\t答案二\t1"])
    ranking = get_task("NLPCC-DBQA").read(tmp_path, "dev")
    assert [(e.qid, e.text_b, e.label) for e in ranking] == [("0", "答案一", "0"), ("0", "答案二", "1")]
    write(tmp_path / "test.tsv", ["text_a\tlabel", "x\t1"])
    with pytest.raises(DataError, match="test.tsv:1: header has no column 'text_b'"):
        get_task("LCQMC").read(tmp_path, "test")


def test_invalid_utf8_names_file_and_line(tmp_path):
    (tmp_path / "train.tsv").write_bytes(b"label\ttext_a\n1\tgood\n0\t\xff\xfe\n")
    with pytest.raises(DataError, match=r"train.tsv:3: not UTF-8"):
        get_task("ChnSentiCorp").read(tmp_path, "train")


def test_msra_ner_both_formats(tmp_path):
    write(tmp_path / "train.tsv", ["text_a\tlabel", "\x02".join("我爱北京") + "\t" + "\x02".join(["O", "O", "B-LOC", "I-LOC"])])
    write(tmp_path / "char.txt", ["我 O", "爱 O", "北 B-LOC", "京 E-LOC", "", "张 B-PER", "三 E-PER", "来 O"])
    task = get_task("MSRA-NER")
    (ernie,) = task.read(tmp_path, "train")
    assert (ernie.words, ernie.tags) == (list("我爱北京"), ["O", "O", "B-LOC", "I-LOC"])
    char = replace(task, train_file="char.txt").read(tmp_path, "train")
    assert [e.tags for e in char] == [["O", "O", "B-LOC", "I-LOC"], ["B-PER", "I-PER", "O"]]
    write(tmp_path / "bad.tsv", ["text_a\tlabel", "\x02".join("北京") + "\tB-LOC"])
    with pytest.raises(DataError, match=r"bad.tsv:2: 2 characters but 1 tags"):
        replace(task, train_file="bad.tsv").read(tmp_path, "train")
    # BIOES in ERNIE's format: E- and S- end a chunk (read as I- and B-), as conlleval and seqeval take them
    write(tmp_path / "bioes.tsv", ["text_a\tlabel", "\x02".join("北京张") + "\t" + "\x02".join(["B-LOC", "E-LOC", "S-PER"])])
    (bioes,) = replace(task, train_file="bioes.tsv").read(tmp_path, "train")
    assert bioes.tags == ["B-LOC", "I-LOC", "B-PER"]
    from ernie.finetune.metrics import bio_chunks
    assert set(bio_chunks(bioes.tags)) == {("LOC", 0, 2), ("PER", 2, 3)}
    for tags, shown in ((["B-LOC", ""], "''"), (["B-LOC", "X-LOC"], "'X-LOC'")):
        write(tmp_path / "tag.tsv", ["text_a\tlabel", "\x02".join("北京") + "\t" + "\x02".join(tags)])
        with pytest.raises(DataError, match=rf"tag.tsv:2: tag {shown} is not O, nor B-, I-, M-, E- or S- and a type"):
            replace(task, train_file="tag.tsv").read(tmp_path, "train")


def test_squad_json_with_a_misplaced_answer(tmp_path):
    context = "ERNIE 2.0 was released by Baidu in 2019. Baidu is in Beijing."
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "Who released it?", "answers": [{"text": "Baidu", "answer_start": 26}]},
        {"id": "q2", "question": "Where?", "answers": [{"text": "Beijing", "answer_start": 3}]},
        {"id": "q3", "question": "When?", "answers": [{"text": "1999", "answer_start": 0}]}]}]}]}
    (tmp_path / "train.json").write_text(json.dumps(data), encoding="utf-8")
    skipped = Counter()
    examples = get_task("CMRC2018").read(tmp_path, "train", skipped)
    assert [e.answers for e in examples] == [[("Baidu", 26)], [("Beijing", 53)], [("1999", None)]]
    assert skipped == {"answer offset corrected": 1, "answer not in context": 1}
    (tmp_path / "dev.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="dev.json: not SQuAD-style JSON"):
        get_task("CMRC2018").read(tmp_path, "dev")


@pytest.mark.parametrize("data, says", [
    ([["x"]], r"data\[0\]: an object expected \(SQuAD's layout\), found list"),
    ({"title": "x"}, r"data: a list expected \(SQuAD's layout\), found dict"),
    ([{"paragraphs": [{"context": "Baidu.", "qas": [{"id": "q", "question": "Who?", "answers": ["Baidu"]}]}]}],
     r"data\[0\].paragraphs\[0\].qas\[0\].answers\[0\]: an object expected \(SQuAD's layout\), found str"),
    ([{"paragraphs": [{"context": "Baidu.", "qas": [{"id": "q", "question": None, "answers": []}]}]}],
     r"data\[0\].paragraphs\[0\].qas\[0\]: needs an 'id' and a 'question' string")])
def test_squad_json_of_another_layout_is_an_error_naming_where(tmp_path, data, says):
    """Each ended in a raw AttributeError naming neither file nor place, or (a null question) in
    the tokenizer later."""
    (tmp_path / "train.json").write_text(json.dumps({"data": data}), encoding="utf-8")
    with pytest.raises(DataError, match=rf"train.json: {says}"):
        get_task("CMRC2018").read(tmp_path, "train")


def test_training_questions_without_an_answer_are_counted(tmp_path):
    """SQuAD 2.0's unanswerable questions were read and dropped from training without a count."""
    from ernie.finetune.trainer import read_data
    qas = [{"id": "q1", "question": "Who?", "answers": [{"text": "Baidu", "answer_start": 0}]},
           {"id": "q2", "question": "Why?", "answers": []}]
    (tmp_path / "train.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": "Baidu.", "qas": qas}]}]}))
    (tmp_path / "dev.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": "Baidu.", "qas": qas[:1]}]}]}))
    data = read_data(get_task("CMRC2018"), tmp_path)
    assert data.skipped == {"training question without an answer, not trained on": 1}


def test_squad_json_with_a_byte_order_mark_is_read(tmp_path):
    data = {"data": [{"paragraphs": [{"context": "Baidu.", "qas": [
        {"id": "q", "question": "Who?", "answers": [{"text": "Baidu", "answer_start": 0}]}]}]}]}
    (tmp_path / "train.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode())
    assert [e.answers for e in get_task("CMRC2018").read(tmp_path, "train")] == [[("Baidu", 0)]]


def test_squad_dev_and_test_files_may_not_repeat_a_question_id(tmp_path):
    """Predictions and scores are keyed by id: repeated ids merged 8 dev questions into 3."""
    paragraph = {"context": "Baidu is in Beijing.", "qas": [
        {"id": "q1", "question": "Where?", "answers": [{"text": "Beijing", "answer_start": 12}]},
        {"id": "q1", "question": "Who?", "answers": [{"text": "Baidu", "answer_start": 0}]}]}
    for name in ("train.json", "dev.json", "test.json"):
        (tmp_path / name).write_text(json.dumps({"data": [{"paragraphs": [paragraph]}]}), encoding="utf-8")
    task = get_task("DRCD")
    assert len(task.read(tmp_path, "train")) == 2  # training learns from each question, keyed by nothing
    for split in ("dev", "test"):
        with pytest.raises(DataError, match=rf"{split}.json: data\[0\].paragraphs\[0\].qas\[1\]: question id 'q1' "
                                            rf"repeats \(first at data\[0\].paragraphs\[0\].qas\[0\]\)"):
            task.read(tmp_path, split)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(KeyError, match="SST-2"):
        get_task("nonsense")


def test_every_finetune_config_loads_and_names_a_known_task():
    import yaml

    from ernie.finetune.settings import CONFIG_DIR, load_settings
    paths = sorted(CONFIG_DIR.glob("*.yaml"))
    # the 19 of the paper's tables and the registries' sentiment, brown-genre, brown-pos, peoples-daily-pos,
    # review-sentiment, tweet-sentiment, spam-email
    assert len(paths) == 26
    for path in paths:
        assert get_task(yaml.safe_load(path.read_text())["task"]).name == path.stem
        load_settings(path)
    # Table 3 and Table 4, spot-checked: CoLA large, MSRA-NER base.
    cola = load_settings(CONFIG_DIR / "CoLA.yaml", preset="large")
    assert (cola.epochs, cola.learning_rate, cola.batch_size) == (5, 3e-5, 32)
    ner = load_settings(CONFIG_DIR / "MSRA-NER.yaml")
    assert (ner.epochs, ner.learning_rate, ner.batch_size, ner.max_seq_len) == (6, 5e-5, 16, 256)


def test_a_split_is_scored_only_where_every_example_gives_its_answer():
    from ernie.finetune.examples import MrcExample, TaggedExample, TextExample, labelled
    assert labelled([TextExample("1", "a", label="x"), TextExample("2", "b", label=0.5)])
    assert not labelled([TextExample("1", "a", label="x"), TextExample("2", "b")])
    assert labelled([TaggedExample("1", ["a"], ["O"])]) and not labelled([TaggedExample("1", ["a"])])
    assert labelled([MrcExample("q", "who?", "ctx", [("ctx", 0)])]) and not labelled([MrcExample("q", "who?", "ctx", [])])
    assert not labelled([])  # a test file of a header alone: nothing to score


def test_glues_diagnostic_set_is_found_where_glues_download_script_puts_it(tmp_path, capsys):
    """glue_data/diagnostic/diagnostic.tsv, beside glue_data/MNLI: AX.tsv was not written, and
    nothing said so (the leaderboard wants it)."""
    from ernie.finetune.trainer import read_data
    mnli = tmp_path / "glue_data" / "MNLI"
    mnli.mkdir(parents=True)
    train_cols = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse" \
                 "\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
    row = "0\t1\t1n\tletters\t(x)\t(y)\t(X)\t(Y)\tP .\tH .\tneutral\tneutral"
    write(mnli / "train.tsv", [train_cols, row])
    dev_cols = train_cols.replace("label1\t", "label1\tlabel2\tlabel3\tlabel4\tlabel5\t")
    write(mnli / "dev_matched.tsv", [dev_cols, row.replace("neutral\t", "neutral\t" * 5, 1)])
    task = get_task("MNLI-m")
    assert read_data(task, mnli).extra_test == {}
    assert "note: no diagnostic.tsv in" in capsys.readouterr().out
    (tmp_path / "glue_data" / "diagnostic").mkdir()
    write(tmp_path / "glue_data" / "diagnostic" / "diagnostic.tsv", ["index\tsentence1\tsentence2", "0\tA.\tB."])
    (diagnostic,) = read_data(task, mnli).extra_test["AX.tsv"]
    assert (diagnostic.text_a, diagnostic.text_b) == ("A.", "B.")
