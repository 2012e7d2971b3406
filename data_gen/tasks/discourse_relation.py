"""Discourse relation: which discourse marker linked two consecutive sentences?

Pairs are mined from a text corpus in the spirit of Sileo et al.'s Discovery: when a sentence of
a paragraph starts with a marker from `configs/discourse/{lang}.yaml`, the pair (previous
sentence, this sentence without its marker) is an example and the marker's index is its label.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Tuple

import yaml


class MarkerList:
    def __init__(self, markers: List[str], lang: str):
        if not markers:
            raise ValueError("the discourse marker list is empty")
        self.markers = [m.lower() for m in markers]
        self.lang = lang
        order = sorted(range(len(markers)), key=lambda i: -len(self.markers[i]))
        if lang == "en":
            alternatives = "|".join(re.escape(self.markers[i]) for i in order)
            self._pattern = re.compile(rf"^({alternatives})(?:,\s*|\s+)(?=\S)", re.IGNORECASE)
        else:
            alternatives = "|".join(re.escape(self.markers[i]) for i in order)
            self._pattern = re.compile(rf"^({alternatives})[，,、]?(?=\S)")
        self._index = {m: i for i, m in enumerate(self.markers)}

    @classmethod
    def from_yaml(cls, path) -> "MarkerList":
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(values, dict) or not isinstance(values.get("markers"), list):
            raise ValueError(f"{path}: expected a mapping with a 'markers' list")
        return cls([str(m) for m in values["markers"]], values.get("lang", "en"))

    def match(self, sentence: str) -> Optional[Tuple[int, str]]:
        """(marker index, the sentence without its marker), or None."""
        found = self._pattern.match(sentence)
        if not found:
            return None
        rest = sentence[found.end():]
        if self.lang == "en":
            rest = rest[:1].upper() + rest[1:]
        return self._index[found.group(1).lower()], rest
