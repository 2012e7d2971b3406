"""WordPiece vocabulary training in ERNIE's format: [PAD]=0, [CLS], [SEP], [MASK], [UNK], then
the learned tokens. Training runs in Hugging Face `tokenizers` with the same normalisation and
pre-tokenisation as `ernie_common.tokenization.FullTokenizer`, so every learned piece is reachable.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tokenizers import Tokenizer, pre_tokenizers, trainers
from tokenizers.models import WordPiece

from ernie_common.tokenization import SPECIAL_TOKENS, UNK, bert_normalizer, write_vocab

# How many distinct characters the vocabulary may hold: enough for the CJK characters of a
# Chinese corpus, a Latin alphabet with punctuation and symbols for English.
ALPHABET_LIMIT = {"en": 1000, "zh": 10000, "mixed": 12000}


def iter_text_lines(paths: Sequence[Path], strip_pos: bool = False) -> Iterator[str]:
    """Non-empty lines; with `strip_pos`, People's Daily `word/pos` lines as plain text."""
    from .corpora import strip_pos_tags
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    yield strip_pos_tags(line) if strip_pos else line


def train_vocab(lines: Iterable[str], size: int, lang: str, do_lower_case: bool = True,
                min_frequency: int = 2) -> list:
    """Tokens in id order, special tokens first."""
    if lang not in ALPHABET_LIMIT:
        raise ValueError(f"unknown language {lang!r}; expected one of {sorted(ALPHABET_LIMIT)}")
    if size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocabulary size {size} leaves no room beside the special tokens")
    tokenizer = Tokenizer(WordPiece(unk_token=UNK))
    tokenizer.normalizer = bert_normalizer(do_lower_case)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS),
        limit_alphabet=ALPHABET_LIMIT[lang], continuing_subword_prefix="##", show_progress=False)
    tokenizer.train_from_iterator(lines, trainer=trainer)
    learned = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return list(SPECIAL_TOKENS) + [t for t, _ in learned if t not in SPECIAL_TOKENS]


def build_vocab(inputs: Sequence[Path], output: Path, size: int, lang: str,
                do_lower_case: bool = True, min_frequency: int = 2, strip_pos: bool = False) -> int:
    tokens = train_vocab(iter_text_lines(inputs, strip_pos), size, lang, do_lower_case, min_frequency)
    write_vocab(output, tokens)
    return len(tokens)
