"""A user's own corpus as it comes: wrapped prose, a paragraph a line, folders, globs, compressed
files, jsonl and parquet records; the layout warning, the corpus report, and each bad input."""
import bz2
import gzip
import json
import lzma
import re
import textwrap
from collections import Counter

import pytest
import yaml

from data_gen.__main__ import main
from data_gen.config import DataConfig
from data_gen.documents import Reading, expand_inputs, layout_warning, read_documents
from data_gen.make import fingerprint, make
from data_gen.sentences import join_lines, split_chinese, split_english
from tests.conftest import DEMO_CORPUS, REPO

ZH_SENTENCES = ["今天的天气很好。", "我们一起去公园散步吧！", "你知道图书馆几点开门吗？", "他说：“明天再来。”",
                "这条河从山里流出来，经过三个村子，最后流进了大海。", "学生们在教室里认真地读书。",
                "秋天到了，树叶慢慢变黄了。", "我用电脑写了一个小程序。", "妈妈做的饭菜非常好吃；",
                "大家都很喜欢。", "火车在夜里穿过了长长的隧道……", "山上的风很大，我们走得很慢。"]


def _zstd(data):
    import zstandard
    return zstandard.ZstdCompressor().compress(data)


def _english_paragraphs(n=60):
    """Paragraphs of 1 to 5 consecutive sentences of the demo corpus (real English prose)."""
    sentences = [line.strip() for line in DEMO_CORPUS.open(encoding="utf-8") if line.strip()][:400]
    paragraphs, at = [], 0
    for k in range(n):
        size = (1, 3, 2, 5, 4)[k % 5]
        paragraphs.append(" ".join(sentences[at:at + size]))
        at += size
    return paragraphs


def _wrapped_book(paragraphs, chapter_every=12):
    """The layout books are distributed in: lines wrapped at 70 characters, a blank line between
    paragraphs, a heading at each chapter."""
    lines = []
    for k, paragraph in enumerate(paragraphs):
        if k % chapter_every == 0:
            lines += [f"CHAPTER {'I' * (k // chapter_every + 1)}.", ""]
        lines += textwrap.wrap(paragraph, 70, break_on_hyphens=False, break_long_words=False) + [""]
    return "\n".join(lines) + "\n"


def _splitter_count(text):
    """The English splitter's count over the joined paragraphs of a blank-line-separated text."""
    blocks = [" ".join(line.strip() for line in block.split("\n") if line.strip()) for block in text.split("\n\n")]
    return sum(len(split_english(b)) for b in blocks if b)


def _texts(docs):
    return [[[s.text for s in p] for p in d.paragraphs] for d in docs]


def _write_config(path, **values):
    path.write_text(yaml.safe_dump(values))
    return str(path)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    path = tmp_path_factory.mktemp("book") / "book.txt"
    path.write_text(_wrapped_book(_english_paragraphs()), encoding="utf-8")
    return path


def test_wrapped_prose_read_as_paragraphs_has_the_splitters_sentences(book):
    text = book.read_text(encoding="utf-8")
    stats = Counter()
    (doc,) = read_documents([book], "text", "en", stats, layout="paragraphs")  # a file is one document
    assert len(doc.sentences) == _splitter_count(text) == 185  # headings are paragraphs of their own here
    assert len(doc.paragraphs) == 60 + 5 and doc.doc_id == "book.txt:1"
    assert _texts([doc])[0][:2] == [["CHAPTER I."], split_english(_english_paragraphs()[0])] and not stats

    chapters = list(read_documents([book], "text", "en", Counter(), layout="paragraphs",
                                   document_separator=r"^CHAPTER [IVXLC]+\.$"))
    assert len(chapters) == 5 and [len(c.paragraphs) for c in chapters] == [12, 12, 12, 12, 12]
    assert sum(len(c.sentences) for c in chapters) == 180  # the five headings are not text
    assert not any("CHAPTER" in s.text for c in chapters for s in c.sentences)
    assert chapters[1].doc_id == "book.txt:64"  # the first text line after the heading (line 62)

    lines = list(read_documents([book], "text", "en", Counter()))  # the default layout: a line a sentence
    assert sum(len(d.sentences) for d in lines) == sum(1 for line in text.splitlines() if line.strip())


def test_chinese_paragraph_a_line_and_wrapped_chinese(tmp_path):
    paragraphs = ["".join(ZH_SENTENCES[(k + j) % len(ZH_SENTENCES)] for j in range(22)) for k in range(30)]
    assert all(len(p) > 200 for p in paragraphs)
    one_a_line = tmp_path / "zh.txt"
    one_a_line.write_text("【第一篇】\n" + "\n".join(paragraphs[:20]) + "\n【第二篇】\n" + "\n".join(paragraphs[20:]) + "\n",
                          encoding="utf-8")
    docs = list(read_documents([one_a_line], "text", "zh", Counter(), layout="paragraph_per_line",
                               document_separator="^【.*】$"))
    assert [len(d.paragraphs) for d in docs] == [20, 10]
    assert sum(len(d.sentences) for d in docs) == sum(len(split_chinese(p)) for p in paragraphs) == 660
    assert [s.text for s in docs[0].paragraphs[0]] == split_chinese(paragraphs[0])
    (whole,) = read_documents([one_a_line], "text", "zh", Counter(), layout="paragraph_per_line")
    assert len(whole.paragraphs) == 32  # without the separator the titles are paragraphs of one file

    warning = layout_warning(one_a_line, Reading.of("text", "zh"))  # the default: a 300-character "sentence"
    assert warning["suggested_layout"] == "paragraph_per_line" and "layout sentence_per_line" in warning["message"]

    # wrapped at 23 characters: the lines of a paragraph join with nothing between Chinese characters
    wrapped = tmp_path / "zh_wrapped.txt"
    wrapped.write_text("\n\n".join("\n".join(p[i:i + 23] for i in range(0, len(p), 23)) for p in paragraphs) + "\n",
                       encoding="utf-8")
    (doc,) = read_documents([wrapped], "text", "zh", Counter(), layout="paragraphs")
    assert _texts([doc]) == [[split_chinese(p) for p in paragraphs]]
    assert layout_warning(wrapped, Reading.of("text", "zh", "paragraph_per_line"))["suggested_layout"] == "paragraphs"


def test_join_lines_by_the_languages_rule():
    assert join_lines(["It was the best", "  of times,", "", "it was"], "en") == "It was the best of times, it was"
    assert join_lines(["我用Python", "写程序，用Hello", "World问好。"], "zh") == "我用Python写程序，用Hello World问好。"


@pytest.mark.parametrize("suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress),
                                             (".zst", _zstd)])
def test_compressed_input_reads_as_the_plain_file(book, tmp_path, suffix, compress):
    packed = tmp_path / f"book.txt{suffix}"
    packed.write_bytes(compress(book.read_bytes()))
    for layout in ("sentence_per_line", "paragraphs"):
        plain = list(read_documents([book], "text", "en", Counter(), layout=layout))
        assert _texts(read_documents([packed], "text", "en", Counter(), layout=layout)) == _texts(plain)


@pytest.mark.parametrize("suffix,compress", [(".bz2", bz2.compress), (".xz", lzma.compress), (".zst", _zstd)])
def test_every_stream_is_read_and_a_corrupt_later_one_is_an_error(book, tmp_path, suffix, compress):
    """pbzip2 and lbzip2 write one stream a block: all are read, NUL padding between them
    skipped; one damaged after the first is an error, where bz2.open and lzma.open stop at it
    without a word (trailing junk to them)."""
    from data_gen.documents import CorpusError
    lines = book.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    first, second = compress(b"".join(lines[:half])), compress(b"".join(lines[half:]))
    whole = tmp_path / f"two{suffix}"
    whole.write_bytes(first + second)
    padded = tmp_path / f"padded{suffix}"
    padded.write_bytes(first + b"\0" * 100 + second + b"\0" * 37)
    for path in (whole, padded):
        assert _texts(read_documents([path], "text", "en", Counter(), layout="paragraphs")) == \
            _texts(read_documents([book], "text", "en", Counter(), layout="paragraphs"))
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(first + second[:3] + b"\xff" * 8 + second[11:])
    with pytest.raises(CorpusError, match=rf"broken{re.escape(suffix)}: cannot read line"):
        list(read_documents([broken], "text", "en", Counter(), layout="paragraphs"))


def test_compressed_input_gives_the_same_shards(book, en_vocab, tmp_path):
    shas = {}
    for suffix, compress in (("", bytes), (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress),
                             (".zst", _zstd)):
        path = tmp_path / f"book.txt{suffix}"
        path.write_bytes(compress(book.read_bytes()))
        config = DataConfig(input=[str(path)], vocab=str(en_vocab), output=str(tmp_path / f"out{suffix}"),
                            layout="paragraphs", tasks=["knowledge_masking", "sentence_reordering"],
                            max_seq_len=64, shards=2, chunk_bytes=4096)
        shas[suffix] = [s["sha256"] for s in make(config, progress=False)["shards"]]
    assert shas[""] == shas[".gz"] == shas[".bz2"] == shas[".xz"] == shas[".zst"]


def test_paragraphs_and_documents_stay_bounded(book, tmp_path, monkeypatch):
    """A file without blank lines read as `paragraphs` (one paragraph), or a dump without a
    document_separator (one document), is cut into bounded pieces, and the cuts are counted."""
    import data_gen.documents as documents
    monkeypatch.setattr(documents, "MAX_LINE_CHARS", 3000)
    monkeypatch.setattr(documents, "MAX_DOCUMENT_CHARS", 6000)
    no_blank_lines = tmp_path / "run_on.txt"
    no_blank_lines.write_text("\n".join(l for l in book.read_text().splitlines() if l.strip()) + "\n")
    stats = Counter()
    docs = list(read_documents([no_blank_lines], "text", "en", stats, layout="paragraphs"))
    text_chars = sum(len(l) for l in book.read_text().splitlines() if l.strip())
    assert stats["paragraph_over_1M_chars_cut"] == text_chars // 3000 == 4
    assert stats["document_over_10M_chars_cut"] == len(docs) - 1 == 2
    assert all(sum(len(s.text) for s in d.sentences) <= 6000 + 3000 for d in docs)


def test_folders_and_globs_in_sorted_order(tmp_path):
    corpus = tmp_path / "corpus"
    for name in ("b.txt", "a.txt", "10.txt", "2.txt", "sub/c.txt", "sub/deeper/d.txt.gz", ".hidden", ".cache/x.txt"):
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_bytes((gzip.compress if name.endswith(".gz") else bytes)(f"{name}\n".encode()))
    expected = ["10.txt", "2.txt", "a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt.gz"]
    assert expand_inputs([str(corpus)]) == [str(corpus / n) for n in expected]
    assert expand_inputs([f"{corpus}/*.txt"]) == [str(corpus / n) for n in expected[:4]]
    assert expand_inputs([f"{corpus}/**/*.txt"]) == [str(corpus / n) for n in expected[:5]]
    assert expand_inputs([f"{corpus}/s*"]) == [str(corpus / n) for n in expected[4:]]  # a matched folder: its files
    # in the order given; a file named twice is read once
    assert expand_inputs([str(corpus / "b.txt"), str(corpus)]) == [str(corpus / n) for n in ["b.txt", *expected[:3],
                                                                                             *expected[4:]]]
    config = DataConfig(input=[str(corpus / "sub"), f"{corpus}/[ab].txt"], vocab=str(REPO / "configs/stopwords/en.txt"),
                        output=str(tmp_path / "o"), tasks=["knowledge_masking"])
    assert [d.doc_id for d in config.documents(config.files, Counter())] == ["c.txt:1", "d.txt.gz:1", "a.txt:1",
                                                                             "b.txt:1"]


def test_jsonl_and_parquet_records_under_a_field_of_their_own(book, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    text = book.read_text(encoding="utf-8")
    jsonl = tmp_path / "books.jsonl"
    jsonl.write_text(json.dumps({"id": 1, "body": text}) + "\n" + json.dumps({"id": 2, "body": text}) + "\n"
                     + json.dumps({"id": 3}) + "\n")
    parquet = tmp_path / "books.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "body": [text, text, None]}), parquet)
    (one,) = read_documents([book], "text", "en", Counter(), layout="paragraphs")
    for path, fmt, skipped in ((jsonl, "jsonl", "json_without_text_or_sentences"), (parquet, "parquet",
                                                                                   "parquet_row_without_text")):
        stats = Counter()
        docs = list(read_documents([path], fmt, "en", stats, layout="paragraphs", text_field="body"))
        assert _texts(docs) == _texts([one, one]) and stats == Counter({skipped: 1})
        assert [d.doc_id for d in docs] == [f"{path.name}:1", f"{path.name}:2"]  # line, row
        by_line = list(read_documents([path], fmt, "en", Counter(), text_field="body"))  # a record's default
        assert len(by_line) == 2 and len(by_line[0].paragraphs) == sum(1 for l in text.splitlines() if l.strip())
        warning = layout_warning(path, Reading.of(fmt, "en", text_field="body"))
        assert warning["suggested_layout"] == "paragraphs" and "layout paragraph_per_line" in warning["message"]


def test_the_warning_the_report_and_the_fingerprint(book, en_vocab, tmp_path, capsys):
    values = dict(input=[str(book)], vocab=str(en_vocab), output=str(tmp_path / "lines"), max_seq_len=64,
                  tasks=["knowledge_masking", "sentence_reordering"], shards=2, chunk_bytes=4096)
    manifest = make(DataConfig(**values), progress=False)
    err, out = capsys.readouterr()[::-1]
    assert err.count("warning:") == 1 and str(book) in err and "layout: paragraphs" in err
    (warning,) = manifest["layout_warnings"]
    assert warning["file"] == str(book) and warning["suggested_layout"] == "paragraphs"
    assert warning["lines_ending_a_sentence"] == 0.286 and "29% of its 255 lines end a sentence" in err
    # read as configured all the same: a line a "sentence", a document a run of lines
    n_lines = sum(1 for line in book.read_text().splitlines() if line.strip())
    assert manifest["corpus"]["sentences"] == n_lines == 255 and manifest["corpus"]["documents"] == 65
    assert "1 layout warning(s)" in out

    paragraphs = make(DataConfig(**{**values, "output": str(tmp_path / "paragraphs"), "layout": "paragraphs",
                                    "document_separator": r"^CHAPTER [IVXLC]+\.$"}), progress=False)
    assert "warning" not in capsys.readouterr().err and paragraphs["layout_warnings"] == []
    words = sum(len(s.split()) for p in _english_paragraphs() for s in split_english(p))
    assert {k: paragraphs["corpus"][k] for k in ("documents", "paragraphs", "sentences", "words_per_sentence",
                                                  "sentences_per_document")} == {
        "documents": 5, "paragraphs": 60, "sentences": 180, "words_per_sentence": round(words / 180, 1),
        "sentences_per_document": 36.0}
    assert paragraphs["inputs"] == [str(book)] and paragraphs["config"]["layout"] == "paragraphs"

    files = [str(book)]
    base = fingerprint(DataConfig(**values), files)
    for change in ({"layout": "paragraphs"}, {"document_separator": "^CHAPTER"}, {"layout": "paragraph_per_line"}):
        assert fingerprint(DataConfig(**{**values, **change}), files) != base
    renamed = tmp_path / "renamed.txt"
    renamed.write_bytes(book.read_bytes())
    assert fingerprint(DataConfig(**{**values, "input": [str(renamed)]}), [str(renamed)]) != base


def test_get_and_a_vocabulary_from_every_input(tmp_path, capsys):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt.gz"
    first.write_text(_wrapped_book(_english_paragraphs(30)), encoding="utf-8")
    second.write_bytes(gzip.compress(("Zyxwvut quibbled. " * 3 + "\n").encode() * 3))
    config = _write_config(tmp_path / "data.yaml", input=[str(tmp_path / "*.t*")], vocab=str(tmp_path / "v/vocab.txt"),
                           output=str(tmp_path / "out"), layout="paragraphs", lang="en")
    assert main(["get", "--config", config, "input"]) == 0 and capsys.readouterr().out == f"{tmp_path}/*.t*\n"
    assert main(["get", "--config", config, "layout"]) == 0 and capsys.readouterr().out == "paragraphs\n"
    assert main(["get", "--config", config, "text_field"]) == 0 and capsys.readouterr().out == ""
    assert main(["get", "--config", config, "do_lower_case", "--set", "do_lower_case=false"]) == 0
    assert capsys.readouterr().out == "false\n"
    assert main(["build-vocab", "--config", config, "--size", "600"]) == 0  # the vocabulary does not exist yet
    assert "from 2 input file(s)" in capsys.readouterr().out
    tokens = (tmp_path / "v/vocab.txt").read_text().split("\n")
    assert tokens[:5] == ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] and "zyxwvut" in tokens  # the second file's
    assert main(["get", "--config", config, "nope"]) == 2 and "no key 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece"])
def test_a_vocabulary_of_a_truncated_input_is_an_error(book, tmp_path, capsys, kind):
    broken = tmp_path / "book.txt.xz"
    broken.write_bytes(lzma.compress(book.read_bytes())[:-100])
    config = _write_config(tmp_path / "data.yaml", input=[str(book), str(broken)], vocab=str(tmp_path / "vocab.txt"),
                           output=str(tmp_path / "out"), layout="paragraphs")
    assert main(["build-vocab", "--config", config, "--size", "300", "--kind", kind]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken}: cannot read line ") and "a truncated or corrupt xz file" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.txt.xz", "data.yaml"]


def _truncated(path, compress, data):
    packed = compress(data)
    path.write_bytes(packed[:len(packed) // 2])
    return path


@pytest.mark.parametrize("case", ["layout", "separator", "text_field", "empty_folder", "no_match", "truncated_gz",
                                  "truncated_bz2", "truncated_xz", "truncated_zst", "truncated_late", "parquet_field"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, book, en_vocab, tmp_path, capsys):
    data = book.read_bytes()
    values = dict(input=[str(book)], vocab=str(en_vocab), output=str(tmp_path / "out"), max_seq_len=64, shards=2,
                  tasks=["sentence_reordering"], chunk_bytes=4096, layout="paragraphs")
    long_book = tmp_path / "long.txt.gz"  # broken past the lines the layout guess reads, in generation
    long_book.write_bytes(gzip.compress(data * 12, mtime=0)[:-10])
    (tmp_path / "empty").mkdir()
    changes, expected = {
        "layout": ({"layout": "wrapped"}, "layout must be one of sentence_per_line, paragraphs, paragraph_per_line, "
                                          "got 'wrapped'"),
        "separator": ({"document_separator": "(CHAPTER"}, "document_separator '(CHAPTER' is not a valid regular "
                                                          "expression: missing ), unterminated subpattern"),
        "text_field": ({"text_field": "body"}, "text_field is for jsonl, parquet and tsv input"),
        "empty_folder": ({"input": [str(tmp_path / "empty")]}, f"input: folder {tmp_path / 'empty'} holds no files"),
        "no_match": ({"input": [f"{tmp_path}/*.md"]}, f"input: no file matches {tmp_path}/*.md"),
        "truncated_gz": ({"input": [str(_truncated(tmp_path / "b.txt.gz", gzip.compress, data))]},
                         "(the compressed data ends early): a truncated or corrupt gzip file"),
        "truncated_bz2": ({"input": [str(_truncated(tmp_path / "b.txt.bz2", bz2.compress, data))]},
                          "b.txt.bz2: cannot read line 1 (the compressed data ends early): a truncated or corrupt "
                          "bzip2 file"),
        "truncated_xz": ({"input": [str(_truncated(tmp_path / "b.txt.xz", lzma.compress, data))]},
                         "b.txt.xz: cannot read line"),
        "truncated_zst": ({"input": [str(_truncated(tmp_path / "b.txt.zst", _zstd, data))]},
                          "b.txt.zst: cannot read line"),
        "truncated_late": ({"input": [str(long_book)]}, "long.txt.gz: cannot read line 3841 "),  # past the guess's
        "parquet_field": ({"input": [str(tmp_path / "t.parquet")], "format": "parquet"},
                          "t.parquet: no column 'text' (columns: id, body): set text_field to the column that holds "
                          "the text"),
    }[case]
    if case == "parquet_field":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq
        pq.write_table(pa.table({"id": [1], "body": ["Some text."]}), tmp_path / "t.parquet")
    config = _write_config(tmp_path / "data.yaml", **{**values, **changes})
    assert main(["make", "--config", config, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []


def test_a_vocabulary_of_a_config_leaves_out_its_heldout_documents(tmp_path, capsys):
    """The held-out documents are what the model is measured on: their words do not choose the
    vocabulary, as they choose nothing the tasks prepare."""
    from data_gen.generate import is_heldout
    words = [f"zq{chr(97 + k)}{chr(97 + k)}xv" for k in range(16)]  # one made-up word a document
    documents = [f"The {w} stood here.\nThen the {w} went there." for w in words]  # a sentence a line
    (tmp_path / "docs.txt").write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    config = _write_config(tmp_path / "data.yaml", input=[str(tmp_path / "docs.txt")], vocab=str(tmp_path / "vocab.txt"),
                           output=str(tmp_path / "out"), lang="en", heldout_documents=0.4)
    read = DataConfig.from_yaml(config, [], check_files=False)
    held = {w for w, d in zip(words, read.documents(read.files, Counter())) if is_heldout(d, 0.4, read.seed)}
    assert 0 < len(held) < len(words) == len(list(read.documents(read.files, Counter())))
    assert main(["build-vocab", "--config", config, "--size", "400", "--min-frequency", "2"]) == 0
    tokens = set((tmp_path / "vocab.txt").read_text().split("\n"))
    assert {w for w in words if w in tokens} == set(words) - held
