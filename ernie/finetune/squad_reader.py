"""SQuAD-style JSON (SQuAD v1.1, CMRC 2018, DRCD, DuReader as ERNIE distributes it).

Some public files give an answer offset that does not point at the answer text; the reader then
takes the text's nearest occurrence in the context and, where there is none, keeps the answer
for scoring with no offset (training skips it). Both cases are counted in `skipped`.
Predictions and scores are keyed by question id, so a dev or test file (`unique_ids`) that
repeats an id is refused: its questions would be merged into one.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import List, Optional

from ernie.finetune.examples import DataError, MrcExample


def read_mrc_examples(path, skipped: Optional[Counter] = None, unique_ids: bool = True) -> List[MrcExample]:
    skipped = Counter() if skipped is None else skipped
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))["data"]  # (a byte-order mark, as Windows tools write)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not SQuAD-style JSON with a top-level 'data' list ({err})") from None
    examples, first_at = [], {}  # {question id: where it first occurs}
    for a, article in enumerate(_list(data, f"{path}: data")):
        article = _object(article, f"{path}: data[{a}]")
        for p, paragraph in enumerate(_list(article.get("paragraphs", []), f"{path}: data[{a}].paragraphs")):
            paragraph = _object(paragraph, f"{path}: data[{a}].paragraphs[{p}]")
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise DataError(f"{path}: data[{a}].paragraphs[{p}] has no context string")
            for q, qa in enumerate(_list(paragraph.get("qas", []), f"{path}: data[{a}].paragraphs[{p}].qas")):
                position = f"data[{a}].paragraphs[{p}].qas[{q}]"
                where = f"{path}: {position}"
                qa = _object(qa, where)
                if "id" not in qa or not isinstance(qa.get("question"), str):
                    raise DataError(f"{where}: needs an 'id' and a 'question' string")
                qid = str(qa["id"])
                if unique_ids and qid in first_at:
                    raise DataError(f"{where}: question id {qid!r} repeats (first at {first_at[qid]})")
                first_at.setdefault(qid, position)
                answers = []
                for k, answer in enumerate(_list(qa.get("answers", []), f"{where}.answers")):
                    answer = _object(answer, f"{where}.answers[{k}]")
                    text, start = answer.get("text"), answer.get("answer_start")
                    if not isinstance(text, str):
                        raise DataError(f"{where} (id {qid}): an answer has no 'text' string")
                    if not isinstance(start, int) or context[start:start + len(text)] != text:
                        start = _nearest(context, text, start if isinstance(start, int) else 0)
                        skipped["answer offset corrected" if start is not None
                                else "answer not in context"] += 1
                    answers.append((text, start))
                examples.append(MrcExample(qid, qa["question"], context, answers))
    return examples


def _list(value, where: str) -> list:
    if not isinstance(value, list):
        raise DataError(f"{where}: a list expected (SQuAD's layout), found {type(value).__name__}")
    return value


def _object(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{where}: an object expected (SQuAD's layout), found {type(value).__name__}")
    return value


def _nearest(context: str, text: str, near: int) -> Optional[int]:
    starts, at = [], context.find(text)
    while at >= 0 and text:
        starts.append(at)
        at = context.find(text, at + 1)
    return min(starts, key=lambda s: abs(s - near)) if starts else None
