"""Sentence splitting for English and Chinese.

English uses blingfire's finite-state splitter (abbreviations, initials, decimals and quotes are
handled; tens of MB/s). Chinese ends a sentence after 。！？；… or a run of them, keeping any
closing quotes or brackets that follow with the sentence they close.
"""
from __future__ import annotations

import re
from typing import List

import blingfire

_ZH_SENTENCE = re.compile(r"[^。！？；!?;…]*(?:(?:[。！？；!?;]|…+)+[”’」』）)》\"']*|$)")


def split_english(text: str) -> List[str]:
    text = text.strip()
    if not text:
        return []
    return [s for s in blingfire.text_to_sentences(text).split("\n") if s.strip()]


def split_chinese(text: str) -> List[str]:
    return [s.strip() for s in _ZH_SENTENCE.findall(text.strip()) if s.strip()]


def split_sentences(text: str, lang: str) -> List[str]:
    if lang == "en":
        return split_english(text)
    if lang == "zh":
        return split_chinese(text)
    raise ValueError(f"unknown language {lang!r}; expected 'en' or 'zh'")
