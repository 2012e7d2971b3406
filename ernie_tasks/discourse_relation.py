"""Discourse relation: which discourse marker linked two consecutive sentences?

Pairs are mined from a text corpus in the spirit of Sileo et al.'s Discovery: when a sentence of
a paragraph starts with a marker of the list its options name (`discourse_markers`, e.g. the
shipped `configs/discourse/{lang}.yaml`), the pair (previous sentence, this sentence without its
marker) is an example and the marker's index is its label.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from data_gen.data_task import DataTask
from ernie.pretrain.task_head import LinearHead
from ernie_common.configfile import build, read
from ernie_common.tasks import SENTENCE, TaskOptions, register, resource


@dataclass
class MarkerList:
    """A discourse marker file's content (`configs/discourse/{lang}.yaml`): the markers, whose
    indices are the labels, and the language whose punctuation may follow them. Each marker is one
    class: a marker listed twice (in any case) would leave a class no example has."""
    markers: List[str]
    lang: str = "en"

    def __post_init__(self):
        if self.lang not in ("en", "zh"):
            raise ValueError(f"lang must be en or zh, got {self.lang!r}")
        if not self.markers:
            raise ValueError("markers: the list is empty")
        self.markers = [m.strip().lower() for m in self.markers]
        first: Dict[str, int] = {}
        for i, marker in enumerate(self.markers):
            if not marker:
                raise ValueError(f"markers[{i}] is empty")
            if marker in first:
                raise ValueError(f"markers[{i}]: {marker!r} is listed twice (as markers[{first[marker]}] too)")
            first[marker] = i
        alternatives = "|".join(re.escape(m) for m in sorted(self.markers, key=len, reverse=True))
        if self.lang == "en":
            self._pattern = re.compile(rf"^({alternatives})(?:,\s*|\s+)(?=\S)", re.IGNORECASE)
        else:
            self._pattern = re.compile(rf"^({alternatives})[，,、]?(?=\S)")
        self._index = first

    @classmethod
    def from_yaml(cls, path) -> "MarkerList":
        """The marker file `path`, read and checked as a config is: an error names the file and
        what is wrong (not YAML, no `markers:` list, an unknown key, an empty or repeated marker)."""
        return build(cls, read(path), str(path))

    def match(self, sentence: str) -> Optional[Tuple[int, str]]:
        """(marker index, the sentence without its marker), or None."""
        found = self._pattern.match(sentence)
        if not found:
            return None
        rest = sentence[found.end():]
        if self.lang == "en":
            rest = rest[:1].upper() + rest[1:]
        return self._index[found.group(1).lower()], rest


@dataclass
class DiscourseRelationOptions(TaskOptions):
    discourse_markers: Optional[str] = resource()  # the marker list; none: the task makes no examples


@register(options=DiscourseRelationOptions, head=LinearHead)
class DiscourseRelation(DataTask):
    name, task_id, level = "discourse_relation", 5, SENTENCE
    description = "which discourse marker linked these two sentences? (semantic-aware)"

    def check_resources(self) -> None:
        if self.options.discourse_markers:
            MarkerList.from_yaml(self.options.discourse_markers)

    def setup(self, generator, state) -> None:
        path = self.options.discourse_markers
        self.markers = MarkerList.from_yaml(path) if path else None

    def num_classes(self, generator) -> int:
        return len(self.markers.markers) if self.markers else 0

    def manifest_entries(self, generator, stats) -> dict:
        markers = self.markers.markers if self.markers else []
        return {"discourse_markers": markers,
                "discourse_marker_counts": {m: stats[f"discourse_marker/{m}"] for m in markers
                                            if stats[f"discourse_marker/{m}"]}}

    def chunk_examples(self, context, stats) -> list:
        """Pairs of consecutive sentences of a paragraph whose second starts with a marker: the
        first as tokenized in the chunk, the second re-tokenized without its marker."""
        if self.markers is None:
            return []
        pairs, index = [], 0
        for doc in context.docs:
            for paragraph in doc.paragraphs:
                for k, second in enumerate(paragraph[1:]):
                    found = self.markers.match(second.text)
                    if found:
                        pairs.append((index + k, found[1], found[0]))
                index += len(paragraph)
        if not pairs:
            return []
        stream = context.generator.chunk_tokenizer.encode_texts([rest for _, rest, _ in pairs])
        row = context.table.append_unlabelled(stream.ids)
        sentence_tokens = context.whole.sentence_tokens
        plans = []
        for k, (sentence, _, label) in enumerate(pairs):
            a = (int(sentence_tokens[sentence]), int(sentence_tokens[sentence + 1]))
            b = (row + int(stream.text_tokens[k]), row + int(stream.text_tokens[k + 1]))
            if a[0] == a[1] or b[0] == b[1]:
                stats["skipped/discourse_pair_without_tokens"] += 1
                continue
            stats[f"discourse_marker/{self.markers.markers[label]}"] += 1
            plans.append(context.plan([a, b], self, label, stats, token_tasks=0))
        return plans

    def describe(self, example, tokens, original, manifest):
        return {"label": f"{example.label} marker={manifest['discourse_markers'][example.label]!r}"}
