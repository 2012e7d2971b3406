"""No input silently lost: each input a user's corpus folder really holds (another encoding, a
byte-order mark, a mistyped text_field, a JSON array, symlinks and their loops, archives and
READMEs, one huge line, nothing readable at all) is read right or refused in one line."""
import io
import json
import re
import signal
import tarfile
import zipfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from data_gen import documents
from data_gen.__main__ import main
from data_gen.config import DataConfig, DataConfigError
from data_gen.documents import CorpusError, expand_inputs, read_documents
from ernie_common.tokenization import SPECIAL_TOKENS

TEXT = "The first sentence is here.\nA café serves coffee.\n\nAnother document starts.\nIt ends now.\n"


def _texts(docs):
    return [[s.text for s in d.sentences] for d in docs]


class _TooLong(Exception):
    """Not an OSError, which glob would swallow."""


@contextmanager
def _within(seconds):
    """Fails a block that runs longer than `seconds` (a symlink loop followed without end)."""
    def fail(*_):
        raise _TooLong(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def vocab(tmp_path):
    words = sorted({w.strip(".").lower() for w in TEXT.split()} | {"."})
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join([*SPECIAL_TOKENS, *words]) + "\n", encoding="utf-8")
    return path


def _make(tmp_path, vocab, capsys, **values):
    """`python -m data_gen make` on a config of `values`: (exit status, stdout, stderr)."""
    config = {**dict(vocab=str(vocab), output=str(tmp_path / "out"), tasks=["knowledge_masking"], max_seq_len=64,
                     shards=1), **values}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(config))
    status = main(["make", "--config", str(tmp_path / "data.yaml"), "--quiet"])
    out, err = capsys.readouterr()
    return status, out, err


# ---- encodings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "gb18030"])
def test_a_file_in_another_encoding_is_read_with_its_encoding(tmp_path, encoding):
    text = TEXT.replace("café", {"latin-1": "café", "cp1252": "“café” €5", "gb18030": "咖啡馆"}[encoding])
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode(encoding))
    stats = Counter()
    docs = list(read_documents([path], "text", "en", stats, encoding=encoding))
    assert _texts(docs) == [[line for line in block.split("\n") if line] for block in text.split("\n\n")]
    assert stats == Counter()


def test_an_undecodable_line_is_an_error_naming_file_line_and_byte(tmp_path, vocab, capsys):
    path = tmp_path / "c.txt"
    path.write_bytes(TEXT.encode("latin-1"))
    offset = TEXT.encode("latin-1").index("é".encode("latin-1"))
    with pytest.raises(CorpusError, match=rf"c.txt: line 2, byte {offset} \(0xe9\): not utf-8 text: set encoding:"):
        list(read_documents([path], "text", "en", Counter()))
    status, out, err = _make(tmp_path, vocab, capsys, input=[str(path)])
    assert status == 2 and err.count("\n") == 1 and err.startswith(f"error: {path}: line 2, byte {offset} ")


def test_undecodable_lines_skipped_when_asked_are_counted_and_reported(tmp_path, vocab, capsys):
    path = tmp_path / "c.txt"
    path.write_bytes(TEXT.encode("latin-1"))
    stats = Counter()
    docs = list(read_documents([path], "text", "en", stats, on_decode_error="skip"))
    assert _texts(docs) == [["The first sentence is here."], ["Another document starts.", "It ends now."]]
    assert stats == Counter(undecodable_line=1, undecodable_line_bytes=len("A café serves coffee.\n"))
    status, out, _ = _make(tmp_path, vocab, capsys, input=[str(path)], on_decode_error="skip")
    assert status == 0 and out.rstrip().endswith("undecodable_line 1, undecodable_line_bytes 22")
    assert json.loads((tmp_path / "out/manifest.json").read_text())["skipped_or_repaired"]["undecodable_line"] == 1
    # a line read in pieces goes whole from the piece that does not decode: megabytes, said as bytes
    path.write_bytes(b"Kept line.\n" + b"a" * 100 + b"\xe9" + b"b" * 9_899 + b"\nLast line.\n")
    stats = Counter()
    lines = [(n, text) for n, text, _ in documents._decoded_lines(path, documents.Decoding(skip_errors=True), stats, 4000)]
    assert lines == [(1, "Kept line."), (3, "Last line.")]
    assert stats == Counter(undecodable_line=1, undecodable_line_bytes=10_001)


@pytest.mark.parametrize("values,message", [
    ({"encoding": "utf-16"}, "encoding utf-16: files are read line by line as bytes"),
    ({"encoding": "klingon"}, "encoding 'klingon' is not a text encoding Python knows"),
    ({"on_decode_error": "ignore"}, "on_decode_error must be error or skip, got 'ignore'"),
    ({"format": "parquet", "encoding": "latin-1"}, "encoding latin-1: parquet holds its text as UTF-8"),
])
def test_bad_decoding_settings_are_config_errors(tmp_path, vocab, values, message):
    (tmp_path / "c.txt").write_text(TEXT)
    with pytest.raises(DataConfigError, match=message):
        DataConfig(input=[str(tmp_path / "c.txt")], vocab=str(vocab), output=str(tmp_path / "out"), **values)


def test_utf16_text_is_refused_by_name(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(TEXT.encode("utf-16"))
    for entry in (path, tmp_path):  # named, or found in a folder
        with pytest.raises(CorpusError, match="c.txt: UTF-16 or UTF-32 text .*: convert it to UTF-8"):
            expand_inputs([str(entry)])


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_text_without_a_byte_order_mark_is_refused_by_name_not_skipped_as_binary(tmp_path, encoding):
    """In a folder, it was skipped as a binary file (NUL bytes) and half a corpus went unread."""
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(TEXT.encode(encoding))
    order = encoding.replace("utf-16-", "UTF-16").upper()
    with pytest.raises(CorpusError, match=rf"b.txt: UTF-16 text without a byte-order mark .*iconv -f {order} -t UTF-8"):
        expand_inputs([str(tmp_path)])
    (tmp_path / "b.txt").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0\0\0\x01\0\x08\x06\0\0\0")
    skipped = []
    assert expand_inputs([str(tmp_path)], skipped=skipped) == [str(tmp_path / "a.txt")]  # binary: skipped, said so
    assert skipped == [(str(tmp_path / "b.txt"), "not text (it holds NUL bytes)")]


# ---- the byte-order mark, JSON --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["text", "jsonl", "peoples_daily"])
def test_the_byte_order_mark_is_dropped(tmp_path, fmt):
    body = {"text": TEXT, "jsonl": json.dumps({"text": "First record."}) + "\n" + json.dumps({"text": "Second."}),
            "peoples_daily": "标题/n\n今天/t  好/a  。/w\n"}[fmt]
    path = tmp_path / "c"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    stats = Counter()
    docs = list(read_documents([path], fmt, "zh" if fmt == "peoples_daily" else "en", stats))
    first = {"text": "The first sentence is here.", "jsonl": "First record.", "peoples_daily": "标题"}[fmt]
    assert docs[0].doc_id == "c:1" and docs[0].sentences[0].text == first
    assert stats == Counter()  # no malformed record, no control character removed


@pytest.mark.parametrize("separator", ["\r", "\x0b", "\x0c", "\x1e", "\x85", "\u2028", "\u2029"])
def test_a_separator_between_words_becomes_a_space_and_is_counted(tmp_path, separator):
    """A lone CR, a form feed, a line or paragraph separator stand between words: deleted, they
    would glue them ("here.Second", "webtext"); other control characters go, as before."""
    path = tmp_path / "c"
    path.write_text(f"First line here.{separator}Second line here.\nA web{separator}text with a bell\x07.\n",
                    encoding="utf-8", newline="")
    stats = Counter()
    (doc,) = read_documents([path], "text", "en", stats, layout="paragraphs")
    text = " ".join(s.text for s in doc.sentences)
    assert "here. Second" in text and "web text" in text and "bell." in text and "\x07" not in text
    assert stats == Counter(separators_made_spaces=2, control_characters_removed=1)


@pytest.mark.parametrize("body", ['[{"text": "One."}, {"text": "Two."}]\n', '[\n  {"text": "One."},\n  {"text": "Two."}\n]\n'])
def test_a_json_array_file_is_refused_by_name(tmp_path, body):
    path = tmp_path / "c.json"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())  # a byte-order mark too, as Windows tools write it
    with pytest.raises(CorpusError, match=r"c.json: holds a JSON array \(line 1 opens with '\['\), not a JSON object "
                                          r"a line: convert it to jsonl, e.g. jq -c"):
        list(read_documents([path], "jsonl", "en", Counter()))


@pytest.mark.parametrize("lines", [3, 150])
def test_a_file_of_no_json_read_as_jsonl_is_an_error_and_a_bad_line_among_good_ones_is_counted(tmp_path, lines):
    """A text file in a folder read as jsonl lost every line to `malformed_json_line`, exit 0,
    the file never named; a record with a raw tab in its text (as many tools write them) was
    dropped as malformed."""
    text = tmp_path / "notes.txt"
    text.write_text("".join(f"Plain line {k}.\n" for k in range(lines)), encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"notes.txt: none of its first {min(lines, 100)} line\(s\) is a JSON "
                                          r"object \(line 1: Expecting value\): not jsonl"):
        list(read_documents([text], "jsonl", "en", Counter()))
    good = tmp_path / "c.jsonl"
    good.write_text('{"text": "A raw\ttab is here."}\nnot json\n{"text": "Fine."}\n', encoding="utf-8")
    stats = Counter()
    assert _texts(read_documents([good], "jsonl", "en", stats)) == [["A raw\ttab is here."], ["Fine."]]
    assert stats["malformed_json_line"] == 1


@pytest.mark.parametrize("name, fmt, named", [("c.jsonl", "text", "jsonl"), ("c.json.gz", "text", "jsonl"),
                                              ("c.parquet", "jsonl", "parquet"), ("c.tsv", "jsonl", "tsv")])
def test_a_file_whose_name_gives_another_format_is_an_error(tmp_path, name, fmt, named):
    """A jsonl file under the default format: text was read as text, its braces and keys made
    into the corpus's sentences, with no warning."""
    import gzip
    (tmp_path / "a").mkdir()
    path = tmp_path / "a" / name
    body = b'{"text": "A sentence."}\n'
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    why = (f"a {named} file by its name, not read with format: {fmt} (its records would be read as {fmt}): set "
           f"format: {named}, or rename the file if it is {fmt}")
    with pytest.raises(CorpusError, match=re.escape(f"input: {path} is {why}")):  # named: an error
        expand_inputs([str(path)], fmt)
    (tmp_path / "a" / "b.txt").write_text("Text.\n")
    skipped = []  # found in a folder: left out, said so
    assert expand_inputs([str(tmp_path / "a")], fmt, skipped) == [str(tmp_path / "a" / "b.txt")]
    assert skipped == [(str(path), why)]


def test_a_mistyped_text_field_is_an_error_naming_the_fields(tmp_path, vocab, capsys, monkeypatch):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"id": k, "body": "Some text here."}) for k in range(2)) + "\n")
    with pytest.raises(CorpusError, match=r"c.jsonl: no field 'text' in any of its 2 records \(fields: id, body\): "
                                          "set text_field to the field that holds the text"):
        list(read_documents([path], "jsonl", "en", Counter()))
    assert _texts(read_documents([path], "jsonl", "en", Counter(), text_field="body")) == [["Some text here."]] * 2
    status, _, err = _make(tmp_path, vocab, capsys, input=[str(path)], format="jsonl", text_field="txt")
    assert status == 2 and err.count("\n") == 1 and "no field 'txt' in any of its 2 records (fields: id, body)" in err

    # decided on the first records, before the rest of a big file is read
    monkeypatch.setattr(documents, "FIELD_CHECK_RECORDS", 3)
    late = tmp_path / "late.jsonl"
    late.write_text("".join(json.dumps(r) + "\n" for r in [{"body": "x"}] * 3 + [{"text": "Late text."}]))
    with pytest.raises(CorpusError, match="late.jsonl: no field 'text' in its first 3 records"):
        list(read_documents([late], "jsonl", "en", Counter()))


# ---- folders: symlinks, loops, what is not corpus -------------------------------------------------

def test_symlinked_folders_are_read_and_loops_end(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.txt").write_text("B.\n")
    corpus = tmp_path / "corpus"
    (corpus / "real").mkdir(parents=True)
    (corpus / "real" / "a.txt").write_text("A.\n")
    (corpus / "linked").symlink_to(elsewhere)             # a symlinked sub-folder
    (corpus / "real" / "up").symlink_to(corpus)           # two loops: glob's ** would go round them for ever
    (corpus / "real" / "round").symlink_to(corpus / "real")
    (corpus / "twice").symlink_to(elsewhere)              # a second path to a folder read already
    (corpus / "gone.txt").symlink_to(tmp_path / "missing.txt")
    (corpus / "z_link.txt").symlink_to(elsewhere / "b.txt")  # read once, as linked/b.txt
    expected = [str(corpus / "linked/b.txt"), str(corpus / "real/a.txt")]
    with _within(20):
        for entry in (corpus, f"{corpus}/**/*.txt", f"{corpus}/**"):
            skipped = []
            assert expand_inputs([str(entry)], skipped=skipped) == expected
            assert skipped == [(str(corpus / "gone.txt"), "a broken symlink"),
                               (str(corpus / "real/round"), f"a symlink loop back to {corpus / 'real'}"),
                               (str(corpus / "real/up"), f"a symlink loop back to {corpus}"),
                               (str(corpus / "twice"), f"the same folder as {corpus / 'linked'}, read there"),
                               (str(corpus / "z_link.txt"), f"the same file as {corpus / 'linked/b.txt'} (read once)")]
    skipped = []  # a file named twice in the same words is read once, without a note
    assert expand_inputs([str(corpus / "real/a.txt")] * 2, skipped=skipped) == [str(corpus / "real/a.txt")]
    assert skipped == []


def _zip_bytes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("inside.txt", TEXT)
    return buffer.getvalue()


def _tar_gz(path):
    with tarfile.open(path, "w:gz") as t:
        t.add(path.parent / "a.txt", arcname="inside.txt")


def test_what_is_not_corpus_is_skipped_with_why_hidden_files_too(tmp_path, vocab, capsys):
    corpus = tmp_path / "corpus"
    (corpus / ".git").mkdir(parents=True)
    (corpus / "a.txt").write_text(TEXT)
    (corpus / "README.md").write_text("# My corpus\nHow it was made.\n")
    (corpus / "data.zip").write_bytes(_zip_bytes())
    _tar_gz(corpus / "data.tar.gz")
    (corpus / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (corpus / "weights").write_bytes(b"some text \x00\x01\x02 then binary")  # no telling name: its content
    (corpus / ".hidden.txt").write_text("Not read.\n")
    (corpus / ".git" / "config").write_text("[core]\n")
    skipped = []
    assert expand_inputs([str(corpus)], skipped=skipped) == [str(corpus / "a.txt")]
    assert skipped == [(str(corpus / ".git"), "a hidden folder, not entered"),
                       (str(corpus / ".hidden.txt"), "hidden (its name starts with a dot): name it in input: to read it"),
                       (str(corpus / "README.md"), "a README, most likely not corpus text (name it in input: to read it)"),
                       (str(corpus / "data.tar.gz"), "an archive (.tar.gz): unpack it to read its files"),
                       (str(corpus / "data.zip"), "an archive (.zip): unpack it to read its files"),
                       (str(corpus / "photo.png"), "not text (.png)"),
                       (str(corpus / "weights"), "not text (it holds NUL bytes)")]
    assert expand_inputs([str(corpus / "README.md")]) == [str(corpus / "README.md")]  # named: read
    with pytest.raises(CorpusError, match=r"input: .*data.zip is an archive \(.zip\): unpack it to read its files"):
        expand_inputs([str(corpus / "data.zip")])
    assert expand_inputs([str(corpus / "weights")], fmt="parquet") == [str(corpus / "weights")]  # binary is parquet's

    status, out, _ = _make(tmp_path, vocab, capsys, input=[str(corpus)])
    assert status == 0 and f"skipped {corpus / 'data.zip'}: an archive (.zip)" in out  # as it is skipped
    *_, corpus_line, last = out.rstrip().split("\n")  # and at the end of the report (nothing else skipped)
    assert corpus_line.startswith("corpus (layout sentence_per_line): 2 documents")
    assert last.startswith(f"skipped 7 input file(s): {corpus / '.git'}: a hidden folder") and last.endswith("; and 4 more")
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert [s["file"] for s in manifest["skipped_inputs"]] == [path for path, _ in skipped]


def test_a_folder_of_nothing_to_read_is_an_error_saying_why(tmp_path):
    (tmp_path / "README").write_text("About.\n")
    (tmp_path / "x.zip").write_bytes(_zip_bytes())
    with pytest.raises(CorpusError, match=rf"input: folder {tmp_path} holds no files to read \(skipped: "
                                          rf"{tmp_path / 'README'}: a README"):
        expand_inputs([str(tmp_path)])


# ---- one huge line --------------------------------------------------------------------------------

def test_a_huge_line_is_read_in_pieces_and_nothing_of_it_lost(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "MAX_LINE_CHARS", 1000)  # lines are read 4000 bytes at a time
    path = tmp_path / "c.txt"
    huge = "wo€rd " * 50_000  # 300,000 characters, 400 KB: pieces end inside words and inside characters
    path.write_text(f"{huge}\n\nNext document.\n", encoding="utf-8")
    pieces = list(documents._decoded_lines(path, documents.Decoding(), Counter(), 4000))
    assert max(len(text.encode()) for _, text, _ in pieces) <= 4000 and len(pieces) > 100  # never held whole
    assert "".join(text for _, text, _ in pieces[:-2]) == huge and pieces[-1] == (3, "Next document.", False)
    stats = Counter()
    docs = list(read_documents([path], "text", "en", stats))
    sentences = _texts(docs)[0]
    assert max(map(len, sentences)) <= 1000 and len(sentences) >= 300
    assert " ".join(sentences).split() == huge.split()  # every word, whole
    assert docs[1].doc_id == "c.txt:3" and stats == Counter(line_over_1M_chars_split=1)

    # a record's line, held whole already, is cut the same way
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": huge}) + "\n", encoding="utf-8")
    stats = Counter()
    assert " ".join(_texts(read_documents([path], "jsonl", "en", stats))[0]).split() == huge.split()
    assert stats == Counter(line_over_1M_chars_split=1)

    # byte offsets count the pieces before the one that does not decode
    path = tmp_path / "c.txt"
    path.write_bytes(b"x" * 10_000 + b"\nab\xff\n")
    with pytest.raises(CorpusError, match=r"c.txt: line 2, byte 10,003 \(0xff\)"):
        list(read_documents([path], "text", "en", Counter()))
    path.write_bytes(b"x" * 10_000 + b"\xff\n")
    with pytest.raises(CorpusError, match=r"c.txt: line 1, byte 10,000 \(0xff\)"):
        list(read_documents([path], "text", "en", Counter()))
    stats = Counter()
    path.write_bytes(b"x" * 5_000 + b"\xff" + b"y" * 5_000 + b"\nnext line\n")  # the pieces before the bad one stay
    assert _texts(read_documents([path], "text", "en", stats, on_decode_error="skip")) == [["x" * 1000] * 4 + ["next line"]]
    assert stats == Counter(undecodable_line=1, undecodable_line_bytes=6_002, line_over_1M_chars_split=1)


def test_a_huge_jsonl_record_is_skipped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "MAX_RECORD_BYTES", 1000)
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "Huge. " * 1000}) + "\n" + json.dumps({"text": "Small one."}) + "\n")
    stats = Counter()
    assert _texts(read_documents([path], "jsonl", "en", stats)) == [["Small one."]]
    assert stats == Counter(json_line_over_40MB_skipped=1)


# ---- a corpus of no document ----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["empty", "blank", "undecodable"])
def test_a_corpus_of_no_document_is_an_error_naming_the_inputs(tmp_path, vocab, capsys, case):
    path = tmp_path / "c.txt"
    path.write_bytes({"empty": b"", "blank": b"\n\n  \n", "undecodable": b"bad \xff\n\xe9t\xe9\n"}[case])
    status, _, err = _make(tmp_path, vocab, capsys, input=[str(path)], on_decode_error="skip")
    why = {"empty": "not a line of text", "blank": "skipped or repaired: empty_document 2",
           "undecodable": "skipped or repaired: undecodable_line 2, undecodable_line_bytes 10"}[case]
    assert status == 2 and err == f"error: no document in {path} ({why}): check the config's format, text_field, " \
                                  "layout and encoding\n"
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


# ---- a fine-tuning task's texts as the corpus ------------------------------------------------------

def test_a_tasks_training_texts_are_the_corpus_labels_dropped(tmp_path, vocab):
    """`labelled_texts`: train.tsv's text_a (and text_b, a second paragraph) read, its labels never."""
    task = tmp_path / "task"
    task.mkdir()
    (task / "train.tsv").write_text("label\ttext_a\ttext_b\npositive\tThe first sentence is here.\tIt ends now.\n"
                                    "negative\tA café serves coffee.\tAnother document starts.\nbroken row\n",
                                    encoding="utf-8")
    config = DataConfig(input=["unused"], vocab=str(vocab), output=str(tmp_path / "out"), tasks=["knowledge_masking"],
                        labelled_texts=str(task))
    stats = Counter()
    docs = list(config.documents(config.files, stats))
    assert [[[s.text for s in p] for p in d.paragraphs] for d in docs] == [
        [["The first sentence is here."], ["It ends now."]], [["A café serves coffee."], ["Another document starts."]]]
    assert stats["tsv_row_wrong_column_count"] == 1
    with pytest.raises(DataConfigError, match=r"labelled_texts: .*missing/train.tsv not found .*data_gen fetch"):
        DataConfig(input=["unused"], vocab=str(vocab), output=str(tmp_path / "out"), labelled_texts=str(tmp_path / "missing"))
    (task / "train.tsv").write_text("label\tsentence\npositive\tx\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"no column 'text_a' \(text_field\); it has \['label', 'sentence'\]"):
        list(config.documents(config.files, Counter()))


def test_the_files_the_config_names_beside_the_text_are_not_read_as_text(tmp_path):
    """`vocab: data/corpus/vocab.txt` with `input: data/corpus` (the paper-scale configs did so):
    its 30,522 tokens were read as a document of the corpus; so were a click log the Chinese
    paper-scale config kept in the corpus folder, and stop words."""
    from data_gen.config import DataConfig
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The war ended.\nPeace came.\n")
    (corpus / "vocab.txt").write_text("[PAD]\n[UNK]\nwar\n")
    (corpus / "stop.txt").write_text("the\n")
    (corpus / "click_log.tsv").write_text("war\tThe war ended\t1\t2\n")
    config = DataConfig(input=[str(corpus)], vocab=str(corpus / "vocab.txt"), output=str(tmp_path / "out"),
                        stopwords=str(corpus / "stop.txt"), tasks=["knowledge_masking", "ir_relevance"],
                        task_options={"ir_relevance": {"click_log": str(corpus / "click_log.tsv")}})
    assert config.files == [str(corpus / "a.txt")]
    assert set(config.skipped_files) >= {
        (str(corpus / "vocab.txt"), "named by the config's vocab, not text"),
        (str(corpus / "stop.txt"), "named by the config's stopwords, not text"),
        (str(corpus / "click_log.tsv"), "named by the config's task_options.ir_relevance.click_log, not text")}


def test_an_output_folder_inside_the_input_folder_is_not_read_back_as_text(tmp_path, vocab, capsys):
    """`input: data/corpus` with `output: data/corpus/shards`: a second make read the first's
    manifest as corpus, its fingerprint changed, and it removed the good shards and failed; the
    parts of a corpus read each other's part manifests into their shards."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(TEXT, encoding="utf-8")
    config = dict(input=[str(corpus)], vocab=str(vocab), output=str(corpus / "shards"), tasks=["knowledge_masking"],
                  max_seq_len=64, shards=1)
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(config))
    assert main(["make", "--config", str(tmp_path / "data.yaml"), "--quiet"]) == 0
    first = json.loads((corpus / "shards" / "manifest.json").read_text())
    assert first["inputs"] == [str(corpus / "a.txt")]
    (corpus / "b.txt").write_text("More text is here.\n", encoding="utf-8")
    assert main(["make", "--config", str(tmp_path / "data.yaml"), "--quiet"]) == 0
    again = json.loads((corpus / "shards" / "manifest.json").read_text())
    assert again["inputs"] == [str(corpus / "a.txt"), str(corpus / "b.txt")]
    assert again["skipped_inputs"] == [{"file": str(corpus / "shards"),
                                        "why": "the output folder: what make writes, not entered"}]
    assert main(["make", "--config", str(tmp_path / "data.yaml"), "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["make", "--config", str(tmp_path / "data.yaml"), "--quiet", "--prepare"]) == 0
    for part in (0, 1):
        assert main(["make", "--config", str(tmp_path / "data.yaml"), "--quiet", "--part", str(part), "--parts", "2"]) == 0
    assert main(["merge", "--config", str(tmp_path / "data.yaml")]) == 0
    merged = json.loads((corpus / "shards" / "manifest.json").read_text())
    assert merged["inputs"] == again["inputs"]


def test_a_users_mistakes_with_files_are_one_line_errors_not_tracebacks(tmp_path, vocab, capsys, monkeypatch):
    """Each of these ended in a raw traceback: a file name not in UTF-8 (UnicodeEncodeError in the
    fingerprint), an output under a file (NotADirectoryError) or where it cannot be made
    (PermissionError), Ctrl-C (a KeyboardInterrupt traceback that did not say the manifest was gone)."""
    import os
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(TEXT, encoding="utf-8")
    os.close(os.open(os.fsencode(corpus) + b"/caf\xe9.txt", os.O_CREAT | os.O_WRONLY))
    status, _, err = _make(tmp_path, vocab, capsys, input=[str(corpus)])
    assert status == 2 and err == f"error: {tmp_path / 'data.yaml'}: input: {corpus}/caf\\xe9.txt: its name is not UTF-8: rename it (e.g. " \
                                  "convmv -f latin1 -t utf8 --notest), or move it out of the input\n"
    os.rename(os.fsencode(corpus) + b"/caf\xe9.txt", os.fsencode(corpus) + b"/.caf\xe9.swp")  # not read: noted
    os.close(os.open(os.fsencode(corpus) + "/zero\u200bwidth \u3000 name.txt".encode(), os.O_CREAT | os.O_WRONLY))
    status, out, err = _make(tmp_path, vocab, capsys, input=[str(corpus)])
    assert status == 0 and f"skipped {corpus}/.caf\\xe9.swp: hidden" in out, err  # UTF-8 names of any kind are read
    os.remove(os.fsencode(corpus) + b"/.caf\xe9.swp")
    status, _, err = _make(tmp_path, vocab, capsys, input=[str(corpus)], output=str(corpus / "a.txt" / "out"))
    assert status == 2 and err == f"error: {tmp_path / 'data.yaml'}: output: {corpus / 'a.txt' / 'out'}: a folder " \
                                  f"of the path is a file ({corpus / 'a.txt'})\n"

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")
    with monkeypatch.context() as m:
        m.setattr(Path, "mkdir", refused)
        status, _, err = _make(tmp_path, vocab, capsys, input=[str(corpus)])
    assert status == 2 and err == f"error: output {tmp_path / 'out'}: cannot create it (Permission denied)\n"

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    (corpus / "b.txt").write_text("More text here.\n", encoding="utf-8")  # the shards are made again
    monkeypatch.setattr("data_gen.make._generate", stopped)
    status, _, err = _make(tmp_path, vocab, capsys, input=[str(corpus)])
    assert status == 130 and err == (f"interrupted: {tmp_path / 'out'} holds no manifest.json (removed as the shards "
                                     f"began to be replaced): nothing reads it until make runs again to its end\n")
    status, _, err = _make(tmp_path, vocab, capsys, input=[str(corpus)], output=str(tmp_path / "new"))
    assert status == 130 and err == (f"interrupted: {tmp_path / 'new'} holds no manifest.json: nothing reads it "
                                     f"until make runs again to its end\n")
    monkeypatch.undo()
    assert _make(tmp_path, vocab, capsys, input=[str(corpus)])[0] == 0
    monkeypatch.setattr("data_gen.make.warn_layouts", stopped)  # before a shard is replaced: as it was
    status, _, err = _make(tmp_path, vocab, capsys, input=[str(corpus)], shards=2)
    assert status == 130 and err == f"interrupted: {tmp_path / 'out'} is as it was\n"


@pytest.mark.parametrize("between", ["\r\n", "\rx"])
def test_a_cr_that_ends_a_piece_is_read_as_the_unsplit_line_reads_it(tmp_path, between):
    """A CRLF line end whose CR closed a 4000-byte piece left the CR in the line's text (a space
    where the line ended); a CR inside a line stays as it was."""
    path = tmp_path / "c.txt"
    head = "w" * 3999  # the CR is the piece's last byte
    path.write_bytes(f"{head}{between}tail\r\nNext.\r\n".encode())
    pieces = list(documents._decoded_lines(path, documents.Decoding(), Counter(), 4000))
    lines = {}
    for lineno, text, _ in pieces:
        lines[lineno] = lines.get(lineno, "") + text
    whole = [line.rstrip("\r\n") for line in path.read_bytes().decode().split("\n")[:-1]]
    assert list(lines.values()) == whole


@pytest.mark.parametrize("end", ["\n", "\r\n", ""])
@pytest.mark.parametrize("extra, kept", [(0, True), (1, False)])
def test_a_jsonl_record_of_exactly_the_limit_is_read_and_one_byte_more_is_not(tmp_path, monkeypatch, end, extra, kept):
    """A record of exactly MAX_RECORD_BYTES (its line end aside) was counted as too long; `end`:
    the file's line ends ("": the record is the file's last line, without one)."""
    monkeypatch.setattr(documents, "MAX_RECORD_BYTES", 1000)
    head, tail = '{"text": "Edge. ', '"}'
    fill = 1000 + extra - len((head + tail).encode())
    record = head + "é" * (fill // 2) + "x" * (fill % 2) + tail  # characters of two bytes, as the limit counts bytes
    assert len(record.encode()) == 1000 + extra
    path = tmp_path / "c.jsonl"
    path.write_bytes((json.dumps({"text": "Small one."}) + (end or "\n") + record + end).encode())
    stats = Counter()
    texts = _texts(read_documents([path], "jsonl", "en", stats))
    assert texts[0] == ["Small one."] and (len(texts) == 2) == kept
    assert stats == (Counter() if kept else Counter(json_line_over_40MB_skipped=1))


def test_make_s_workers_leave_ctrl_c_to_make(tmp_path, vocab):
    """Ctrl-C reaches every process of the terminal's group: each worker printed a traceback of
    its own beside make's one line."""
    import signal

    from data_gen import make
    previous = signal.getsignal(signal.SIGINT)
    try:
        (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
        config = DataConfig(input=[str(tmp_path / "a.txt")], vocab=str(vocab), output=str(tmp_path / "o"),
                            tasks=["knowledge_masking"])
        make._init_worker(config, make._corpus_states(config))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
