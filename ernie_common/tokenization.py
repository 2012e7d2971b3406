"""Tokenizers over an ERNIE `vocab.txt`, one interface for data generation, fine-tuning,
encoding, prediction and the exports, with Hugging Face `tokenizers` as the engine.

`FullTokenizer` is BERT's: clean text, split CJK characters, lower-case and strip accents when
`do_lower_case`, split on whitespace and punctuation, then greedy longest-match WordPiece.
`CharTokenizer` is the original ERNIE Chinese one: lower-case, split on whitespace only (text is
pre-segmented), then WordPiece. Both give the ids of their pure-Python originals (tested against
Hugging Face's legacy `BertTokenizer`) at the speed of the Rust engine.
`SentencePieceTokenizer` is the original ERNIE Tiny's kind: a SentencePiece unigram model
(trained with the `sentencepiece` package, `python -m data_gen build-vocab --kind sentencepiece`)
over words; Chinese is cut into words by jieba first, as ERNIE Tiny cut it with its dictionary.
`make_tokenizer` gives the tokenizer a vocabulary was made for.

ERNIE's `vocab.txt` is one token a line, or `token<TAB>id` a line (the Chinese releases). A
SentencePiece vocabulary has its model and a note of its settings beside it
(`sentencepiece.model`, `sentencepiece.json`); the vocab.txt lists the model's pieces in id order.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import Unigram, WordPiece

PAD, CLS, SEP, MASK, UNK = "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"
SPECIAL_TOKENS = (PAD, CLS, SEP, MASK, UNK)
# the share of [UNK] tokens past which a vocabulary is said not to fit a text (data_gen make, fine-tuning)
UNKNOWN_WARNING = 0.05
MAX_INPUT_CHARS_PER_WORD = 100
SENTENCEPIECE_MODEL, SENTENCEPIECE_SETTINGS = "sentencepiece.model", "sentencepiece.json"
WORD_START = "\u2581"  # what SentencePiece puts before the first piece of a word
TOKENIZER_FILES = (SENTENCEPIECE_MODEL, SENTENCEPIECE_SETTINGS)  # what travels beside a vocab.txt


class VocabError(ValueError):
    """A vocabulary file that is malformed or lacks a required token."""


def load_vocab(path) -> Dict[str, int]:
    """token -> id from an ERNIE vocab file; ids must be 0..N-1 without gaps or repeats."""
    path = Path(path)
    vocab: Dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise VocabError(f"{path}: not UTF-8 (byte {err.start})") from None
    except OSError as err:
        raise VocabError(f"cannot read vocabulary {path}: {err.strerror}") from None
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        token, sep, index = line.partition("\t")
        token = token.strip()
        if not token:
            raise VocabError(f"{path}:{lineno}: empty token")
        try:
            token_id = int(index) if sep else lineno - 1
        except ValueError:
            raise VocabError(f"{path}:{lineno}: expected 'token' or 'token<TAB>id', got {line!r}") from None
        if token in vocab:
            raise VocabError(f"{path}:{lineno}: token {token!r} repeats (first at id {vocab[token]})")
        vocab[token] = token_id
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise VocabError(f"{path}: ids are not exactly 0..{len(vocab) - 1}")
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise VocabError(f"{path}: missing special token(s) {missing}")
    return vocab


def first_normal_id(vocab: Dict[str, int]) -> int:
    """The first id after the special tokens: random replacements in masking start here."""
    return max(vocab[t] for t in SPECIAL_TOKENS) + 1


def write_vocab(path, tokens: Sequence[str]) -> None:
    """One token a line, in id order (the format every BERT-style tool reads)."""
    from .fileio import atomic_write_text
    atomic_write_text(path, "".join(f"{t}\n" for t in tokens))


def bert_normalizer(do_lower_case: bool) -> normalizers.Normalizer:
    # strip_accents=None follows lowercase, as BERT's basic tokenizer does.
    return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                      strip_accents=None, lowercase=do_lower_case)


class _Tokenizer:
    """What every tokenizer offers; subclasses give the `tokenizers` pipeline (`backend`)."""

    def __init__(self, vocab_file, backend: Tokenizer):
        self.vocab_file = Path(vocab_file)
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {i: t for t, i in self.vocab.items()}
        self.pad_id, self.cls_id, self.sep_id, self.mask_id, self.unk_id = (
            self.vocab[t] for t in SPECIAL_TOKENS)
        self.backend = backend

    def __len__(self) -> int:
        return len(self.vocab)

    def prepare(self, text: str) -> str:
        """The text as the pipeline takes it (SentencePiece's Chinese: cut into words)."""
        return text

    def tokenize(self, text: str) -> List[str]:
        return self.backend.encode(self.prepare(text), add_special_tokens=False).tokens

    def encode(self, text: str) -> List[int]:
        return self.backend.encode(self.prepare(text), add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        return [e.ids for e in self.backend.encode_batch([self.prepare(t) for t in texts], add_special_tokens=False)]

    def encode_with_offsets(self, text: str) -> Tuple[List[int], List[Tuple[int, int]]]:
        """Ids and each token's (start, end) character span in `text` (as `prepare` gives it)."""
        enc = self.backend.encode(self.prepare(text), add_special_tokens=False)
        return enc.ids, enc.offsets

    def encode_words(self, sentences: Sequence[Sequence[str]]) -> List[Tuple[List[int], List[int]]]:
        """For pre-split words (NER characters or words): per sentence, the piece ids and the
        index of the word each piece came from. A word the normaliser empties has no pieces."""
        encodings = self.backend.encode_batch([list(words) for words in sentences],
                                              is_pretokenized=True, add_special_tokens=False)
        return [(e.ids, e.word_ids) for e in encodings]

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> List[int]:
        return [self.vocab.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> List[str]:
        return [self.inv_vocab[int(i)] for i in ids]

    def continues_word(self) -> np.ndarray:
        """bool [vocab]: the tokens that continue a word rather than start one."""
        return np.asarray([self.inv_vocab[i].startswith("##") for i in range(len(self.inv_vocab))], bool)


class _WordPieceTokenizer(_Tokenizer):
    def __init__(self, vocab_file, normalizer, pre_tokenizer):
        backend = Tokenizer(WordPiece(load_vocab(vocab_file), unk_token=UNK,
                                      max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
        backend.normalizer = normalizer
        backend.pre_tokenizer = pre_tokenizer
        backend.decoder = decoders.WordPiece()
        super().__init__(vocab_file, backend)


class FullTokenizer(_WordPieceTokenizer):
    def __init__(self, vocab_file, do_lower_case: bool = True):
        super().__init__(vocab_file, bert_normalizer(do_lower_case), pre_tokenizers.BertPreTokenizer())
        self.do_lower_case = do_lower_case


class CharTokenizer(_WordPieceTokenizer):
    """For pre-segmented Chinese: words separated by spaces, each split by WordPiece."""

    def __init__(self, vocab_file):
        super().__init__(vocab_file, normalizers.Lowercase(), pre_tokenizers.WhitespaceSplit())


@functools.lru_cache(maxsize=None)
def _jieba():
    import jieba
    jieba.setLogLevel(60)  # its dictionary-loading messages
    return jieba


def jieba_words(text: str) -> List[str]:
    """jieba's words of a Chinese text, its HMM guessing the words its dictionary lacks: the cut
    of a SentencePiece vocabulary's training text, of the shards' raw sentences and of
    `SentencePieceTokenizer.prepare`, which must agree. Words of spaces only included."""
    return list(_jieba().cut(text, HMM=True))


def jieba_text(text: str) -> str:
    """A Chinese text as jieba's words separated by single spaces (words of spaces only dropped):
    what a Chinese SentencePiece vocabulary is learned from and what its tokenizer reads."""
    return " ".join(w for w in jieba_words(text) if w.strip())


class SentencePieceTokenizer(_Tokenizer):
    """A SentencePiece unigram model over words. English words are BERT's pre-tokenizer's
    (whitespace and punctuation); Chinese text is cut into words by jieba (`prepare`), or given
    as words separated by spaces. No piece crosses a word, so knowledge masking's words and
    phrases stay whole pieces. The model's normalisation (NFKC, and case folding for an uncased
    vocabulary) is its own, read from the model file."""

    def __init__(self, vocab_file):
        from sentencepiece import sentencepiece_model_pb2
        directory = Path(vocab_file).parent
        try:
            settings = json.loads((directory / SENTENCEPIECE_SETTINGS).read_text(encoding="utf-8"))
            proto = sentencepiece_model_pb2.ModelProto()
            proto.ParseFromString((directory / SENTENCEPIECE_MODEL).read_bytes())
        except (OSError, ValueError) as err:
            raise VocabError(f"{directory}: cannot read the SentencePiece model beside {Path(vocab_file).name}: "
                             f"{err}") from None
        vocab = load_vocab(vocab_file)
        pieces = [p.piece for p in proto.pieces]
        if pieces != sorted(vocab, key=vocab.get):
            raise VocabError(f"{vocab_file} does not list the pieces of {directory / SENTENCEPIECE_MODEL} in order")
        backend = Tokenizer(Unigram([(p.piece, p.score) for p in proto.pieces], vocab[UNK], False))
        if proto.normalizer_spec.precompiled_charsmap:
            backend.normalizer = normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap)
        self.lang = settings["lang"]
        words = pre_tokenizers.WhitespaceSplit() if self.lang == "zh" else pre_tokenizers.BertPreTokenizer()
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [words, pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always")])
        backend.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always")
        super().__init__(vocab_file, backend)
        self.do_lower_case = settings["do_lower_case"]

    def prepare(self, text: str) -> str:
        if self.lang != "zh":
            return text
        return jieba_text(text)

    def encode_with_offsets(self, text: str) -> Tuple[List[int], List[Tuple[int, int]]]:
        """Ids and each token's (start, end) character span in `text` itself: a Chinese text's
        tokens are read from its words joined by spaces (`prepare`), whose spans are mapped back
        (reading comprehension cuts its answers from the context with them)."""
        if self.lang != "zh":
            return super().encode_with_offsets(text)
        words, origin, at = [], [], 0  # origin: each prepared character's index in `text`
        for word in jieba_words(text):
            if word.strip():
                if words:
                    origin.append(at)  # the joining space: where the next word starts
                words.append(word)
                origin.extend(range(at, at + len(word)))
            at += len(word)
        enc = self.backend.encode(" ".join(words), add_special_tokens=False)
        origin.append(len(text))  # the end, where an empty span at the text's end starts
        return enc.ids, [(origin[a], origin[b - 1] + 1 if b > a else origin[a]) for a, b in enc.offsets]

    def continues_word(self) -> np.ndarray:
        return np.asarray([not (t.startswith(WORD_START) or t in SPECIAL_TOKENS)
                           for t in self.convert_ids_to_tokens(range(len(self.vocab)))], bool)


def is_sentencepiece(vocab_file) -> bool:
    return (Path(vocab_file).parent / SENTENCEPIECE_MODEL).is_file()


def make_tokenizer(vocab_file, do_lower_case: bool = True) -> _Tokenizer:
    """The tokenizer `vocab_file` was made for: SentencePiece where its model lies beside it
    (its own case setting then applies), else BERT's WordPiece."""
    if is_sentencepiece(vocab_file):
        return SentencePieceTokenizer(vocab_file)
    return FullTokenizer(vocab_file, do_lower_case)
