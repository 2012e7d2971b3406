from collections import Counter

import pytest

from data_gen.documents import read_documents
from data_gen.fetch import CORPORA
from data_gen.labelled import bmes_to_bio, parse_char_per_line
from data_gen.registry import FetchError
from ernie_tasks.ir_relevance import read_click_log


def test_jsonl_both_shapes_and_bad_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(
        b'{"title": "T", "text": "First sentence here. Second one follows.\\nA new paragraph."}\n'
        b'{"sentences": ["One.", "Two.", ""]}\n'
        b'{"sentences": ["Kept.", ["tok", "enized"], {"text": "a dict"}, 42, "And this."]}\n'
        b'{"oops": 1}\n'
        b'not json at all\n'
        b'{"text": ""}\n'
        b'{"text": "Bad \xff byte."}\n')
    stats = Counter()
    docs = list(read_documents([path], "jsonl", "en", stats, on_decode_error="skip"))
    assert [[s.text for s in p] for p in docs[0].paragraphs] == [
        ["First sentence here.", "Second one follows."], ["A new paragraph."]]
    assert [s.text for s in docs[1].sentences] == ["One.", "Two."]
    assert [s.text for s in docs[2].sentences] == ["Kept.", "And this."]
    assert docs[0].doc_id == "c.jsonl:1"
    assert stats == Counter(json_without_text_or_sentences=1, malformed_json_line=1, empty_document=1,
                            undecodable_line=1, undecodable_line_bytes=24, json_sentence_not_text=3)


def test_peoples_daily_articles_sentences_and_tags(tmp_path):
    path = tmp_path / "pd.txt"
    path.write_text(
        "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n\n"
        "中共中央/nt  总书记/n  江/nr  泽民/nr  发表/v  讲话/n  。/w  同胞/n  们/k  ！/w\n"
        "大家/r  好/a  。/w\n"
        "第二/m  篇/q  文章/n\n"
        "它/r  很/d  短/a  。/w\n", encoding="utf-8")
    docs = list(read_documents([path], "peoples_daily", "zh", Counter()))
    assert len(docs) == 2  # a title line starts an article
    first = docs[0]
    assert [s.text for s in first.sentences] == ["迈向充满希望的新世纪", "中共中央总书记江泽民发表讲话。", "同胞们！", "大家好。"]
    words, tags = first.sentences[1].words_and_tags()
    assert (words[2:4], tags[2:4]) == (["江", "泽民"], ["nr", "nr"])


def test_peoples_daily_of_the_pku_release_ids_and_bracketed_compounds(tmp_path):
    """The PKU release opens each paragraph with its id (date-page-article-paragraph) and writes
    compounds as [w/t ...]T: the id is no word and marks the article; a compound is one word of
    its compound tag, as an entity knowledge masking takes whole."""
    path = tmp_path / "199801.txt"
    path.write_text(
        "19980101-01-001-001/m  迈向/v  充满/v  希望/n  的/u  新/a  世纪/n\n"
        "19980101-01-001-002/m  [中央/n  人民/n  广播/vn  电台/n]nt  记者/n  报道/v  。/w\n"
        "19980101-01-002-001/m  [香港/ns  特别/a  行政区/n]ns  成立/v  。/w\n"
        "19980101-01-002-002/m  大家/r  好/a  。/w\n", encoding="utf-8")
    stats = Counter()
    docs = list(read_documents([path], "peoples_daily", "zh", stats))
    assert [[s.text for s in d.sentences] for d in docs] == [
        ["迈向充满希望的新世纪", "中央人民广播电台记者报道。"], ["香港特别行政区成立。", "大家好。"]]
    assert docs[0].sentences[1].words_and_tags() == (["中央人民广播电台", "记者", "报道", "。"], ["nt", "n", "v", "w"])
    assert stats == Counter(compound_words_joined=2)


def test_peoples_daily_odd_items(tmp_path):
    """The tag follows the last slash; an item without a tag, or with nothing before its slash,
    is a word tagged "" (counted)."""
    path = tmp_path / "pd.txt"
    path.write_text("１/２/m  杯/q  无标/  孤立  /w  。/w  后/f  。/w\n", encoding="utf-8")
    stats = Counter()
    (doc,) = read_documents([path], "peoples_daily", "zh", stats)
    first, second = doc.sentences
    assert first.text == "１/２杯无标孤立/w。" and second.text == "后。"
    assert first.words_and_tags() == (["１/２", "杯", "无标", "孤立", "/w", "。"], ["m", "q", "", "", "", "w"])
    assert stats["untagged_word"] == 2


def test_click_log(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("q1\tt1\t3\t10\nq1\tt2\t0\t4\nq2\tt3\tx\t1\nq3\tt4\t5\t2\nq4\tt5\n", encoding="utf-8")
    stats = Counter()
    log = read_click_log(path, stats)
    assert [(c.query, c.title, c.clicks, c.impressions) for c in log] == [("q1", "t1", 3, 10), ("q1", "t2", 0, 4)]
    assert stats["malformed_click_log_line"] == 3  # not a number, more clicks than impressions, 2 fields


def test_msra_tags_become_bio():
    text = "江 B-PER\r\n泽 M-PER\r\n民 E-PER\r\n在 O\r\n京 S-LOC\r\n\r\n好 O\r\n"
    sentences = parse_char_per_line(text, "x")
    assert sentences == [(["江", "泽", "民", "在", "京"], ["B-PER", "M-PER", "E-PER", "O", "S-LOC"]), (["好"], ["O"])]
    assert [bmes_to_bio(t) for t in sentences[0][1]] == ["B-PER", "I-PER", "I-PER", "O", "B-LOC"]
    with pytest.raises(ValueError, match="x:1: expected 'char tag'"):
        parse_char_per_line("江B-PER\n", "x")


@pytest.mark.parametrize("name,files", [("msra-ner", {"train.tsv": 45290, "dev.tsv": 5001, "test.tsv": 5001}),
                                        ("sentiment", {"train.tsv": 13889, "dev.tsv": 1737, "test.tsv": 1738}),
                                        ("brown-genre", {"train.tsv": 14933, "dev.tsv": 2027, "test.tsv": 1993})])
def test_fetch_labelled_data(name, files, tmp_path):
    try:
        out = CORPORA[name].write(tmp_path / name)
    except FetchError as err:
        pytest.skip(f"{name} could not be fetched: {err}")
    for file, n_lines in files.items():
        lines = (out / file).read_text(encoding="utf-8").splitlines()
        assert len(lines) == n_lines and "\t" in lines[1]
    if name == "sentiment":
        rows = [l.split("\t", 1) for f in files for l in (out / f).read_text(encoding="utf-8").splitlines()[1:]]
        assert len({t for _, t in rows}) == len(rows)  # deduplicated, no text in two splits
        assert {label for label, _ in rows} == {"0", "1"}
    if name == "brown-genre":  # every genre in every split (texts, not passages, are split)
        for file in files:
            rows = [l.rsplit("\t", 1) for l in (out / file).read_text(encoding="utf-8").splitlines()[1:]]
            assert len({label for _, label in rows}) == 15


def test_a_record_keeps_its_text_where_its_sentences_are_not_text(tmp_path):
    """A record with both: its sentences where they are all text (a text that says something else
    counted), else its text, also where the sentences are an empty list (not dropped)."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "Full text. Here.", "sentences": [["Full", "text"], ["Here"]]}\n'
                    '{"text": "Ignored text.", "sentences": ["Own one.", "Own two."]}\n'
                    '{"sentences": [["only", "tokens"], "A string."]}\n'
                    '{"text": "Alpha beta. Gamma delta.", "sentences": []}\n'
                    '{"text": "Same one. Two.", "sentences": ["Same one.", "Two."]}\n', encoding="utf-8")
    stats = Counter()
    docs = list(read_documents([path], "jsonl", "en", stats))
    assert [[s.text for s in d.sentences] for d in docs] == [["Full text.", "Here."], ["Own one.", "Own two."],
                                                            ["A string."], ["Alpha beta.", "Gamma delta."],
                                                            ["Same one.", "Two."]]
    assert stats == Counter(json_sentence_not_text=1, json_text_unlike_its_sentences_ignored=1)


def test_lone_surrogates_of_a_json_string_are_removed_and_counted(tmp_path):
    """JSON can spell a lone surrogate (\\ud800), which no UTF-8 holds: removed like a control
    character, not a crash of the sentence splitter."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "Broken \\ud800 pair here. And more."}\n{"sentences": ["Also \\udc00 one."]}\n',
                    encoding="utf-8")
    stats = Counter()
    docs = list(read_documents([path], "jsonl", "en", stats))
    assert [[s.text for s in d.sentences] for d in docs] == [["Broken  pair here.", "And more."], ["Also  one."]]
    assert stats == Counter(control_characters_removed=2)


@pytest.mark.parametrize("compression", ["", ".gz"])
def test_a_file_of_lone_cr_line_ends_is_read_line_by_line(tmp_path, compression):
    """Classic Mac OS line ends (CR alone): its lines and documents, not one line of all of them."""
    import gzip
    text = b"First one.\rSecond one.\r\rOther document.\rIts end.\r"
    path = tmp_path / f"c.txt{compression}"
    path.write_bytes(gzip.compress(text) if compression else text)
    stats = Counter()
    docs = list(read_documents([path], "text", "en", stats))
    assert [[s.text for s in d.sentences] for d in docs] == [["First one.", "Second one."], ["Other document.", "Its end."]]
    assert stats == Counter(file_of_cr_line_ends=1)


def test_a_lone_cr_file_whose_first_line_is_long_is_read_line_by_line(tmp_path):
    """Classic Mac OS line ends after a first line of 20,000 bytes: still its lines and documents."""
    long = "Word " * 4000
    path = tmp_path / "c.txt"
    path.write_bytes(f"{long.strip()}.\rSecond one.\r\rOther document.\r".encode())
    stats = Counter()
    docs = list(read_documents([path], "text", "en", stats))
    assert [[s.text for s in d.sentences][-1] for d in docs] == ["Second one.", "Other document."]
    assert stats["file_of_cr_line_ends"] == 1


def test_characters_bert_deletes_unseen_are_removed_and_counted(tmp_path):
    """A soft hyphen, a private-use character, U+FFFD: what BERT's normaliser would delete without a
    trace is removed here and counted, by kind; a line of nothing but such characters (a
    zero-width space) is left out without ending the document, as a blank line would."""
    path = tmp_path / "c.txt"
    path.write_text("Soft\u00adhyphen here.\nPrivate ab\ue000cd use.\n\u200b\nDamaged x\ufffdy text.\n\n"
                    "Other one.\u3000Wide space kept.\n", encoding="utf-8")
    stats = Counter()
    docs = list(read_documents([path], "text", "en", stats))
    assert [[s.text for s in d.sentences] for d in docs] == [
        ["Softhyphen here.", "Private abcd use.", "Damaged xy text."], ["Other one.\u3000Wide space kept."]]
    assert stats == Counter(format_private_or_unassigned_characters_removed=2, replacement_characters_removed=1,
                            control_characters_removed=1, line_of_removed_characters_only=1)


def test_lines_taken_as_document_separators_are_counted(tmp_path):
    """A separator line is not text: how many were taken shows in the report, so a pattern that also
    matches text does not lose it unseen."""
    path = tmp_path / "c.txt"
    path.write_text("<doc id=1>\nOne here.\nTwo here.\n</doc>\n<doc id=2>\nThree here.\n</doc>\n", encoding="utf-8")
    stats = Counter()
    docs = list(read_documents([path], "text", "en", stats, document_separator="^</?doc"))
    assert [[s.text for s in d.sentences] for d in docs] == [["One here.", "Two here."], ["Three here."]]
    assert stats == Counter(document_separator_lines=4)


def test_only_lone_cr_ends_make_cr_a_line_end(tmp_path, monkeypatch):
    """CRLF lines whose first CR ends the bytes looked at, a stray CR inside an LF file, and CRLF
    among lone CRs: each line once, no blank line made, no line split at a stray CR."""
    from data_gen import documents
    monkeypatch.setattr(documents, "LINE_END_SNIFF_BYTES", 12)
    cases = {b"First one.\r\nSecond one.\r\n": [["First one.", "Second one."]],  # the head ends on the CR
             b"One \r line.\nTwo here.\n": [["One line.", "Two here."]],  # a stray CR, no line end
             b"A1.\rA2.\rA3.\r\rB1.\r\nB2.\r": [["A1.", "A2.", "A3."], ["B1.", "B2."]]}  # a CRLF among lone CRs
    for content, expected in cases.items():
        path = tmp_path / "c.txt"
        path.write_bytes(content)
        docs = list(read_documents([path], "text", "en", Counter()))
        assert [[" ".join(s.text.split()) for s in d.sentences] for d in docs] == expected, content
    monkeypatch.setattr(documents, "LINE_END_SNIFF_BYTES", 1 << 20)
    # a Mac file with an LF at its end, or a short Unix tail: it was one line, its documents one;
    # a Unix file with stray CRs in its lines is not split at them
    cases = {b"D1 a.\rD1 b.\r\rD2 a.\r\rD3 a.\r\n": [["D1 a.", "D1 b."], ["D2 a."], ["D3 a."]],
             b"M1.\rM2.\r\rM3.\rM4.\rM5.\r" + b"U1.\n": [["M1.", "M2."], ["M3.", "M4.", "M5.", "U1."]],
             b"One \r a \r b \r line.\nTwo \r c \r line.\n": [["One a b line.", "Two c line."]]}
    for content, expected in cases.items():
        path = tmp_path / "c.txt"
        path.write_bytes(content)
        docs = list(read_documents([path], "text", "en", Counter()))
        assert [[" ".join(s.text.split()) for s in d.sentences] for d in docs] == expected, content


def test_raw_crs_inside_jsonl_strings_do_not_make_cr_line_ends(tmp_path):
    """Records whose text holds raw CRs (read as text since strict=False) were taken for a
    classic-Mac file, cut at the CRs, and refused as not JSON."""
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"".join(b'{"text": "%s"}\n' % b"\r".join(b"A%d %s." % (k, w.encode()) for w in "abcdef")
                              for k in range(3)))  # six CRs a record: they outnumber its LF
    stats = Counter()
    docs = list(read_documents([path], "jsonl", "en", stats))
    assert [" ".join(" ".join(s.text for s in d.sentences).split()) for d in docs] == [
        " ".join(f"A{k} {w}." for w in "abcdef") for k in range(3)]
    assert "file_of_cr_line_ends" not in stats
    path = tmp_path / "mac.tsv"  # Excel's "CSV (Macintosh)": CR line ends, no LF
    path.write_bytes(b"text_a\tlabel\rFirst one.\t1\rSecond one.\t0\r")
    assert [[t.text for t in d.sentences] for d in read_documents([path], "tsv", "en", Counter(), text_field="text_a")] == [
        ["First one."], ["Second one."]]


@pytest.mark.parametrize("buffer_size", [2, 3, 4, 5, 8192])
def test_cr_line_ends_read_through_any_buffer(buffer_size):
    """A CR at the end of one read and its LF at the start of the next are one line end."""
    import io

    from data_gen.documents import _CrAsNewline
    data = b"ab\r\ncd\ref\r\r\ngh\r"
    reader = io.BufferedReader(_CrAsNewline(io.BytesIO(data)), buffer_size=buffer_size)
    assert reader.read() == b"ab\ncd\nef\n\ngh\n"
