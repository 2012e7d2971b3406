"""SentencePiece vocabularies (ERNIE Tiny's kind) as a tokenizer component: training, ids equal
to the `sentencepiece` package's own, knowledge-masking units whole pieces, the data pipeline
and pre-training on them, and the Hugging Face export's tokenizer giving the same ids."""
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from data_gen.config import DataConfig, DataConfigError
from data_gen.make import make
from data_gen.sentences import split_sentences
from data_gen.shards import Shard
from data_gen.vocab import build_vocab
from ernie_common.tasks import get
from ernie_common.tokenization import SENTENCEPIECE_MODEL, SPECIAL_TOKENS, WORD_START, SentencePieceTokenizer, VocabError, make_tokenizer
from tests.conftest import DEMO_CORPUS, REPO
from tests.test_data_gen_make import _documents

SENTENCES = ["The United States of America, in 2021: Congress's choice.", "We the People!",
             "Nothing   changes\tthat (much)."]


@pytest.fixture(scope="module")
def en_spm(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("spm_en") / "vocab.txt"
    build_vocab([DEMO_CORPUS], vocab, 2000, "en", kind="sentencepiece")
    return vocab


def test_a_sentencepiece_vocabulary_trains_with_ernies_special_tokens(en_spm):
    lines = en_spm.read_text(encoding="utf-8").splitlines()
    assert tuple(lines[:5]) == SPECIAL_TOKENS and len(lines) <= 2000
    tokenizer = make_tokenizer(en_spm)
    assert isinstance(tokenizer, SentencePieceTokenizer) and tokenizer.mask_id == 3


def test_ids_equal_the_sentencepiece_packages(en_spm):
    import sentencepiece
    from tokenizers import pre_tokenizers
    reference = sentencepiece.SentencePieceProcessor(model_file=str(en_spm.with_name(SENTENCEPIECE_MODEL)))
    words = pre_tokenizers.BertPreTokenizer()
    tokenizer = make_tokenizer(en_spm)
    for text in SENTENCES:
        expected = reference.encode(" ".join(w for w, _ in words.pre_tokenize_str(text)))
        assert tokenizer.encode(text) == expected, text


@pytest.fixture(scope="module")
def spm_shards(tmp_path_factory, en_spm):
    root = tmp_path_factory.mktemp("spm_pipeline")
    (root / "corpus.txt").write_text("".join("".join(doc) + "\n" for doc in _documents(4, 30)), encoding="utf-8")
    config = DataConfig(input=[str(root / "corpus.txt")], vocab=str(en_spm), output=str(root / "shards"),
                        tokenizer="sentencepiece", tasks=["knowledge_masking", "capitalization", "sentence_reordering"],
                        max_seq_len=64, shards=1, stopwords=str(REPO / "configs/stopwords/en.txt"))
    make(config, progress=False)
    return root


def _units_inside_words(ex, tokenizer, field):
    """Positions where a unit starts on a piece that continues a word, except right after
    [CLS] or [SEP] (a sentence longer than a segment is cut there, inside a word if need be)."""
    continues = tokenizer.continues_word()[ex.src_ids]
    after_special = np.isin(np.concatenate([[tokenizer.cls_id], ex.src_ids[:-1]]), [tokenizer.cls_id, tokenizer.sep_id])
    return np.flatnonzero((ex.labels[field] == 0) & continues & ~after_special)


def test_knowledge_units_are_whole_pieces(spm_shards, en_spm):
    tokenizer = make_tokenizer(en_spm)
    examples = list(Shard(next((spm_shards / "shards").glob("part-*.shard"))))
    assert len(examples) > 10
    for ex in examples:
        for field in ("seg_basic", "seg_knowledge"):
            assert not len(_units_inside_words(ex, tokenizer, field))


def test_the_config_names_the_tokenizer_the_vocabulary_has(en_spm, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("A sentence.\n", encoding="utf-8")
    with pytest.raises(DataConfigError, match="tokenizer wordpiece, but .* is a SentencePiece vocabulary"):
        DataConfig(input=[str(corpus)], vocab=str(en_spm), output=str(tmp_path / "o"))


def test_pretraining_fine_tuning_inputs_and_the_hf_export_on_sentencepiece(spm_shards, tmp_path):
    import transformers
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, use_task_id=True, task_type_vocab_size=8)))
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(dict(
        model=str(tmp_path / "model.yaml"), data=str(spm_shards / "shards"), output=str(tmp_path / "run"),
        batch_tokens=512, log_every=5, checkpoint_every=1000, optimization={"warmup_steps": 2},
        schedule={"strategy": "continual_multitask", "stages": [["knowledge_masking"], ["sentence_reordering"]],
                  "iterations_per_task": 6})))
    run = subprocess.run([sys.executable, "-m", "ernie.pretrain", "--config", str(tmp_path / "pretrain.yaml"),
                          "--quiet"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    model = tmp_path / "run" / "model"
    assert (model / SENTENCEPIECE_MODEL).is_file()  # the tokenizer travels with the model

    from ernie.formats.checkpoint import load_model_dir
    from ernie.formats.hf_format import write_hf_dir
    from ernie.model.features import pack_pair
    config, params, vocab = load_model_dir(model)
    tokenizer = make_tokenizer(vocab)  # what fine-tuning, encode and predict build from a model directory
    assert isinstance(tokenizer, SentencePieceTokenizer)
    hf_dir = write_hf_dir(tmp_path / "hf", config, params, vocab_file=vocab)
    hf = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    for a, b in zip(SENTENCES, SENTENCES[1:] + SENTENCES[:1]):
        ours, _ = pack_pair(tokenizer.encode(a), tokenizer.encode(b), 64, tokenizer.cls_id, tokenizer.sep_id)
        assert hf(a, b)["input_ids"] == ours
        single, _ = pack_pair(tokenizer.encode(a), None, 64, tokenizer.cls_id, tokenizer.sep_id)
        assert hf(a)["input_ids"] == single
    assert hf.convert_ids_to_tokens(hf(SENTENCES[1])["input_ids"])[1].startswith(WORD_START)


@pytest.fixture(scope="module")
def zh_spm(zh_lines, tmp_path_factory):
    vocab = tmp_path_factory.mktemp("zh_spm") / "vocab.txt"
    build_vocab_lines = vocab.with_name("zh.txt")
    build_vocab_lines.write_text("\n".join(zh_lines[:3000]) + "\n", encoding="utf-8")
    with pytest.raises(VocabError, match="cannot train a vocabulary of 500: .*Vocabulary size is smaller"):
        build_vocab([build_vocab_lines], vocab, 500, "zh", kind="sentencepiece")
    build_vocab([build_vocab_lines], vocab, 6000, "zh", kind="sentencepiece")
    return vocab


def test_chinese_words_stay_whole_pieces(zh_lines, zh_spm, tmp_path):
    vocab = zh_spm
    assert json.loads(vocab.with_name("sentencepiece.json").read_text()) == {"lang": "zh", "do_lower_case": True}
    tokenizer = make_tokenizer(vocab)
    pieces = tokenizer.tokenize(zh_lines[0][:60])
    assert pieces and all(p for p in pieces)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(zh_lines[:200]) + "\n", encoding="utf-8")
    make(DataConfig(input=[str(corpus)], vocab=str(vocab), output=str(tmp_path / "shards"), lang="zh",
                    tokenizer="sentencepiece", tasks=["knowledge_masking"], max_seq_len=64, shards=1), progress=False)
    examples = list(Shard(tmp_path / "shards" / "part-00000.shard"))
    assert examples
    for ex in examples:  # a jieba word is a knowledge unit, and it starts a piece of its own
        assert not len(_units_inside_words(ex, tokenizer, "seg_knowledge"))
    assert np.mean([(ex.labels["seg_knowledge"] == 1).any() for ex in examples]) > 0.5


def test_chinese_texts_outside_the_sentences_are_cut_as_fine_tuning_cuts_them(zh_lines, zh_spm, tmp_path):
    """Discourse relation's second sentence (its marker removed) and IR relevance's query and
    title are pieces of jieba's words, as the tokenizer gives them in fine-tuning, not pieces of
    the raw text, which SentencePiece would cut across words."""
    tokenizer = make_tokenizer(zh_spm)
    markers = tuple(yaml.safe_load((REPO / "configs/discourse/zh.yaml").read_text(encoding="utf-8"))["markers"])
    paragraphs = [split_sentences(line, "zh") for line in zh_lines[3000:3600] if 20 < len(line) < 120]
    paragraphs = [p for p in paragraphs if not any(s.startswith(markers) for s in p)]  # no pair of their own
    # each paragraph followed, in the same paragraph, by a sentence that opens with a marker
    firsts = [p[0] for p in paragraphs]
    lines = ["".join(a) + f"但是{b}" for a, b in zip(paragraphs, firsts[1:])]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    queries, titles = [b[:12] for b in firsts[:20]], [b[:30] for b in firsts[1:21]]
    clicks = tmp_path / "clicks.tsv"
    clicks.write_text("".join(f"{q}\t{t}\t3\t5\n" for q, t in zip(queries, titles)), encoding="utf-8")
    make(DataConfig(input=[str(corpus)], vocab=str(zh_spm), output=str(tmp_path / "shards"), lang="zh",
                    tokenizer="sentencepiece", tasks=["knowledge_masking", "discourse_relation", "ir_relevance"],
                    layout="paragraph_per_line", max_seq_len=256, shards=1,
                    task_options={"discourse_relation": {"discourse_markers": str(REPO / "configs/discourse/zh.yaml")},
                                  "ir_relevance": {"click_log": str(clicks)}}), progress=False)
    examples = list(Shard(tmp_path / "shards" / "part-00000.shard"))

    def second_segment(ex):
        return ex.src_ids[(ex.sent_ids == 1) & (ex.src_ids != tokenizer.sep_id)].tolist()
    seconds = [second_segment(ex) for ex in examples if ex.task == get("discourse_relation").task_id]
    wanted = {tuple(tokenizer.encode(b)) for b in firsts[1:]}
    raw = {tuple(tokenizer.backend.encode(b, add_special_tokens=False).ids) for b in firsts[1:]}
    assert len(seconds) > 100 and all(tuple(ids) in wanted for ids in seconds)
    assert wanted != raw  # the raw text's pieces would have differed
    pairs = [ex for ex in examples if ex.task == get("ir_relevance").task_id]
    assert pairs and all(tuple(second_segment(ex)) in {tuple(tokenizer.encode(t)) for t in titles} for ex in pairs)


def test_a_word_found_only_in_lines_over_sentencepieces_limit_reaches_the_vocabulary(tmp_path):
    """SentencePiece skips inputs over 4,192 bytes without a word: long lines go to it in pieces."""
    from data_gen.vocab import _in_pieces
    short = DEMO_CORPUS.read_text(encoding="utf-8").splitlines()[:3000]
    long_line = " ".join(["quizzically wyvernous"] * 300)  # 6,599 bytes, its words nowhere else
    (tmp_path / "c.txt").write_text("\n".join(short + [long_line] * 3) + "\n", encoding="utf-8")
    vocab = tmp_path / "vocab.txt"
    build_vocab([tmp_path / "c.txt"], vocab, 1000, "en", kind="sentencepiece")
    assert make_tokenizer(vocab).tokenize("wyvernous") == [WORD_START + "wyvernous"]

    pieces = list(_in_pieces(long_line, 100)) + list(_in_pieces("a " + "é" * 80 + " b", 100))
    assert " ".join(pieces[:-3]) == long_line and all(len(p.encode("utf-8")) <= 100 for p in pieces)
    assert pieces[-3:] == ["a", "é" * 50, "b"]  # a word over the limit alone, cut at a character


def test_chinese_token_spans_are_spans_of_the_text_itself(zh_lines, zh_spm):
    """Reading comprehension cuts answers from the context with the tokens' spans: a Chinese
    text is read as its jieba words joined by spaces, and the spans are mapped back to the text,
    so they cover the characters their tokens were read from, in order, every character (a lone
    word-start piece shares its word's first character)."""
    tokenizer = make_tokenizer(zh_spm)
    for text in zh_lines[:50]:
        text = text.replace(" ", "")
        ids, spans = tokenizer.encode_with_offsets(text)
        assert ids == tokenizer.encode(text)
        assert sorted({i for a, b in spans for i in range(a, b)}) == list(range(len(text)))
        assert all(a < b for a, b in spans) and spans == sorted(spans)
        assert all(b - c <= 1 for (_, b), (c, _) in zip(spans, spans[1:]))  # sharing at most a word's first
