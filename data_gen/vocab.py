"""Vocabulary training in ERNIE's format: [PAD]=0, [CLS], [SEP], [MASK], [UNK], then the learned
tokens. WordPiece trains in Hugging Face `tokenizers` with the same normalisation and
pre-tokenisation as `ernie_common.tokenization.FullTokenizer`, so every learned piece is
reachable. SentencePiece (ERNIE Tiny's kind) trains a unigram model with the `sentencepiece`
package over the words `SentencePieceTokenizer` will see (BERT's pre-tokenizer's for English,
jieba's for Chinese), and writes the model and its settings beside the vocab.txt. A data config's
vocabulary (`build_config_vocab`) is learned from every input, read as `make` reads it.
"""
from __future__ import annotations

import io
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from tokenizers import Tokenizer, pre_tokenizers, trainers
from tokenizers.models import WordPiece

from ernie_common.fileio import atomic_path, atomic_write_text
from ernie_common.tokenization import (
    CLS,
    MASK,
    PAD,
    SENTENCEPIECE_MODEL,
    SENTENCEPIECE_SETTINGS,
    SEP,
    SPECIAL_TOKENS,
    UNK,
    VocabError,
    bert_normalizer,
    jieba_text,
    write_vocab,
)

from .generate import is_heldout

KINDS = ("wordpiece", "sentencepiece")

# How many distinct characters the vocabulary may hold: enough for the CJK characters of a
# Chinese corpus, a Latin alphabet with punctuation and symbols for English.
ALPHABET_LIMIT = {"en": 1000, "zh": 10000, "mixed": 12000}


def iter_text_lines(paths: Sequence[Path], strip_pos: bool = False) -> Iterator[str]:
    """Non-empty lines of UTF-8 files, read as the corpus readers read them (`documents.clean_lines`:
    decompressed, cleaned; a file that is not text, UTF-16 or another format by its name, and a
    line that is not UTF-8 are errors naming it, as their default: the whole file is most often in
    another encoding, which a data config's `encoding` reads); with `strip_pos`, People's Daily
    `word/pos` lines as plain text."""
    from .corpora import strip_pos_tags
    from .documents import CorpusError, Decoding, clean_lines, format_by_name, not_corpus
    decoding = Decoding(remedy="convert it to UTF-8 (e.g. iconv -f latin-1 -t utf-8), or build from a data config "
                               "(--config) whose encoding: reads it")
    for path in map(Path, paths):
        named = format_by_name(path)
        if named:  # its records' syntax (braces, keys, labels) would be learned as words
            raise CorpusError(f"input: {path} is a {named} file by its name, and --input reads lines of text: build "
                              f"from a data config (--config) with format: {named}")
        why = not_corpus(path, None, found=False)
        if why:
            raise CorpusError(f"input: {path} is {why}")
        for _, line in clean_lines(path, Counter(), decoding):
            if line.strip():
                yield strip_pos_tags(line) if strip_pos else line


def train_vocab(lines: Iterable[str], size: int, lang: str, do_lower_case: bool = True,
                min_frequency: int = 2) -> list:
    """Tokens in id order, special tokens first."""
    if lang not in ALPHABET_LIMIT:
        raise ValueError(f"unknown language {lang!r}; expected one of {sorted(ALPHABET_LIMIT)}")
    tokenizer = Tokenizer(WordPiece(unk_token=UNK))
    tokenizer.normalizer = bert_normalizer(do_lower_case)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        limit_alphabet=ALPHABET_LIMIT[lang], continuing_subword_prefix="##", show_progress=False)
    tokenizer.train_from_iterator(lines, trainer=trainer)
    learned = [t for t in tokenizer.get_vocab() if t not in SPECIAL_TOKENS]
    return list(SPECIAL_TOKENS) + sorted(learned, key=_canonical)


def _canonical(token: str) -> tuple:
    """Sort key of the learned tokens: single characters, their `##` continuations, words, then
    the other `##` pieces, each group by code point. The trainer's own id order follows hash maps
    and ties that differ from run to run (its alphabet, merges of equal count), so one corpus gave
    another vocab.txt each time, and so other ids and another model; WordPiece's longest-match
    tokenization does not depend on the ids."""
    piece = token.startswith("##")
    single = len(token) == (3 if piece else 1)
    return (0 if single else 2) + piece, token


# SentencePiece's trainer skips, with a warning its log level hides, every input longer than its
# max_sentence_length (4,192 bytes): lines are handed to it in pieces of whole words below that
# (its pieces never cross a space, so the cut loses nothing)
SENTENCEPIECE_LINE_BYTES = 4000


def _in_pieces(line: str, limit: int = SENTENCEPIECE_LINE_BYTES) -> Iterator[str]:
    """A line of space-separated words in pieces of whole words of at most `limit` UTF-8 bytes (a
    single longer word alone, cut at `limit` bytes on a character boundary)."""
    piece, size = [], 0  # size: of " ".join(piece) in bytes
    for word in line.split(" "):
        n = len(word.encode("utf-8"))
        if piece and size + 1 + n > limit:
            yield " ".join(piece)
            piece, size = [], 0
        if n > limit:
            yield word.encode("utf-8")[:limit].decode("utf-8", "ignore")
            continue
        size += n + (1 if piece else 0)
        piece.append(word)
    if piece:
        yield " ".join(piece)


def _words(lines: Iterable[str], lang: str) -> Iterator[str]:
    """Lines as the words SentencePieceTokenizer cuts them into, separated by spaces."""
    if lang == "zh":
        for line in lines:
            yield jieba_text(line.strip())
        return
    split = pre_tokenizers.BertPreTokenizer()
    for line in lines:
        yield " ".join(word for word, _ in split.pre_tokenize_str(line.strip()))


def train_sentencepiece(lines: Iterable[str], size: int, lang: str, do_lower_case: bool, output: Path) -> int:
    """Trains a unigram model; writes `output` (vocab.txt) and the model and settings beside it."""
    import sentencepiece
    model, failed = io.BytesIO(), []

    def words():
        """The input's words; an error reading it is kept and raised below (SentencePiece would stop
        at it without a word, and train on what came before, or report an empty input)."""
        try:
            for line in _words(lines, lang):
                yield from _in_pieces(line)
        except Exception as err:  # whatever it is, it is raised again as it is
            failed.append(err)

    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=words(), model_writer=model, vocab_size=size, model_type="unigram",
            character_coverage=0.9995 if lang == "zh" else 1.0, hard_vocab_limit=False,
            normalization_rule_name="nmt_nfkc_cf" if do_lower_case else "nmt_nfkc",
            pad_id=0, pad_piece=PAD, bos_id=1, bos_piece=CLS, eos_id=2, eos_piece=SEP, unk_id=4, unk_piece=UNK,
            user_defined_symbols=[MASK], num_threads=1, minloglevel=2)
    except RuntimeError as err:  # SentencePiece says what is wrong on its last line
        if failed:
            raise failed[0] from None
        raise VocabError(f"SentencePiece cannot train a vocabulary of {size}: {str(err).splitlines()[-1]}") from None
    if failed:
        raise failed[0]
    from sentencepiece import sentencepiece_model_pb2
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    pieces = [p.piece for p in proto.pieces]
    if tuple(pieces[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
        raise VocabError(f"SentencePiece put the special tokens at {pieces[:len(SPECIAL_TOKENS)]}")
    with atomic_path(output.with_name(SENTENCEPIECE_MODEL)) as tmp:
        tmp.write_bytes(model.getvalue())
    atomic_write_text(output.with_name(SENTENCEPIECE_SETTINGS),
                      json.dumps({"lang": lang, "do_lower_case": do_lower_case}) + "\n")
    write_vocab(output, pieces)
    return len(pieces)


def build_vocab(inputs: Sequence[Path], output: Path, size: int, lang: str, do_lower_case: bool = True,
                min_frequency: int = 2, strip_pos: bool = False, kind: str = "wordpiece") -> int:
    """A vocabulary of the non-empty lines of text files."""
    return write_learned_vocab(iter_text_lines(inputs, strip_pos), output, size, lang, do_lower_case, min_frequency,
                               kind, source=", ".join(map(str, inputs)))


def build_config_vocab(config, size: int, lang: Optional[str] = None, output: Optional[Path] = None,
                       min_frequency: int = 2, cased: bool = False, kind: Optional[str] = None) -> int:
    """The vocabulary of a data config's corpus: the sentences of all its inputs but the held-out
    documents (`heldout_documents`: what the model is measured on is not its to learn from, as
    in the tasks' `prepare`), read with its format and layout; its lang, vocab path, tokenizer
    kind and casing unless told otherwise. (A misfit layout changes little here, the words are
    the same: `make` warns of it.)"""
    sentences = (s.text for doc in config.documents(config.files, Counter())
                 if not is_heldout(doc, config.heldout_documents, config.seed) for s in doc.sentences)
    return write_learned_vocab(sentences, Path(output or config.vocab), size, lang or config.lang,
                               config.do_lower_case and not cased, min_frequency, kind or config.tokenizer,
                               source=", ".join(config.input))


def write_learned_vocab(lines: Iterable[str], output: Path, size: int, lang: str, do_lower_case: bool = True,
                        min_frequency: int = 2, kind: str = "wordpiece", *, source: str) -> int:
    """Trains a vocabulary of `kind` on `lines` (read from `source`, which errors name) and
    writes it; its number of tokens. A size with no room beside the special tokens, or no line to
    learn from, is an error before anything is trained or written (the trainers would write a
    vocabulary of the special tokens alone, or fail with a message of their own)."""
    if kind not in KINDS:
        raise ValueError(f"unknown vocabulary kind {kind!r}; expected one of {KINDS}")
    if size <= len(SPECIAL_TOKENS):
        raise VocabError(f"vocabulary size {size} is too small: at least {len(SPECIAL_TOKENS) + 1}, the "
                         f"{len(SPECIAL_TOKENS)} special tokens {list(SPECIAL_TOKENS)} and one learned token")
    lines = iter(lines)
    first = next(lines, None)
    if first is None:
        raise VocabError(f"{source}: no text to learn a vocabulary from")
    lines = itertools.chain([first], lines)
    if kind == "sentencepiece":
        if lang not in ("en", "zh"):
            raise VocabError(f"a SentencePiece vocabulary is for en or zh, not {lang!r}")
        return train_sentencepiece(lines, size, lang, do_lower_case, Path(output))
    tokens = train_vocab(lines, size, lang, do_lower_case, min_frequency)
    for stale in (SENTENCEPIECE_MODEL, SENTENCEPIECE_SETTINGS):  # a WordPiece vocab.txt stands alone
        Path(output).with_name(stale).unlink(missing_ok=True)
    write_vocab(output, tokens)
    return len(tokens)
