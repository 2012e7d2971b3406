"""IR relevance: how relevant is a title to a query, from a search engine's click log?

Log format (TSV, one line per query-title pair): `query<TAB>title<TAB>clicks<TAB>impressions`.
Label 0 (strong): the title was clicked (clicks > 0). Label 1 (weak): shown but never clicked
(impressions > 0, clicks == 0). Label 2 (irrelevant): a title drawn at random from the log's
other queries, one per query. Pairs with no impressions are skipped (nothing was observed).
The log is the task's option `click_log`; without one the task is skipped: pairs are never
invented.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from data_gen.data_task import DataTask
from data_gen.documents import SIDE_FILE, clean_lines
from data_gen.examples import TokenTable
from ernie.pretrain.task_head import LinearHead
from ernie_common.tasks import SENTENCE, TaskOptions, register, resource

STRONG, WEAK, IRRELEVANT = 0, 1, 2
CLASS_NAMES = ("clicked", "shown_not_clicked", "random_title")


@dataclass(frozen=True)
class Click:
    query: str
    title: str
    clicks: int
    impressions: int


def read_click_log(path: Path, stats: Counter) -> List[Click]:
    """`query<TAB>title<TAB>clicks<TAB>impressions`, integers >= 0, clicks <= impressions. Lines
    are read and cleaned as a corpus's are (`data_gen.documents`); a malformed one is counted, a
    line that is not UTF-8 an error naming it (the data config's `encoding:` is the corpus's)."""
    return list(_clicks(path, stats))


def _clicks(path: Path, stats: Counter) -> Iterator[Click]:
    for _, line in clean_lines(Path(path), stats, SIDE_FILE):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) != 4:
                raise ValueError
            query, title = fields[0].strip(), fields[1].strip()
            clicks, impressions = int(fields[2]), int(fields[3])
            if not query or not title or clicks < 0 or impressions < clicks:
                raise ValueError
        except ValueError:
            stats["malformed_click_log_line"] += 1
            continue
        yield Click(query, title, clicks, impressions)


def relevance_pairs(log: Sequence[Click], rng: np.random.Generator, stats: Counter
                    ) -> List[Tuple[str, str, int]]:
    """(query, title, label) for every observed pair plus one random title per query."""
    pairs = []
    logged: Dict[str, set] = {}  # every title logged for a query, observed or not
    for click in log:
        logged.setdefault(click.query, set()).add(click.title)
        if click.impressions == 0:
            stats["skipped/ir_pair_without_impressions"] += 1
            continue
        pairs.append((click.query, click.title, STRONG if click.clicks > 0 else WEAK))
    observed_queries = sorted({q for q, _, _ in pairs})
    all_titles = sorted({c.title for c in log})
    for query in observed_queries:
        own = logged[query]
        if len(own) == len(all_titles):
            stats["skipped/ir_query_without_foreign_title"] += 1
            continue
        while (title := all_titles[int(rng.integers(len(all_titles)))]) in own:
            pass
        pairs.append((query, title, IRRELEVANT))
    return pairs


@dataclass
class IRRelevanceOptions(TaskOptions):
    click_log: Optional[str] = resource()  # the search engine's click log; none: the task is skipped


@register(options=IRRelevanceOptions, head=LinearHead)
class IRRelevance(DataTask):
    name, task_id, level = "ir_relevance", 6, SENTENCE
    description = "how relevant is this title to this query, by a search engine's clicks? (semantic-aware)"

    def check_resources(self) -> None:
        """The click log read through once when the data config is loaded: `make` reads it for its
        examples only after the whole corpus, hours later on a large one, where a line that is not
        UTF-8, or a log of no well-formed line, would stop it."""
        if self.options.click_log:
            stats: Counter = Counter()
            if not sum(1 for _ in _clicks(Path(self.options.click_log), stats)):
                raise ValueError(f"{self.options.click_log}: no line of query<TAB>title<TAB>clicks<TAB>impressions "
                                 f"(clicks <= impressions, whole numbers) among its "
                                 f"{stats['malformed_click_log_line']} non-blank line(s)")

    def num_classes(self, generator) -> int:
        return len(CLASS_NAMES)

    def corpus_examples(self, generator, read_stats, rng, stats):
        if not self.options.click_log:
            stats[f"skipped/{self.name}_without_click_log"] += 1
            return "no click_log configured, task skipped (pairs are never invented)"
        pairs = relevance_pairs(read_click_log(self.options.click_log, read_stats), rng, stats)
        stream = generator.chunk_tokenizer.encode_texts([t for q, title, _ in pairs for t in (q, title)])
        table = TokenTable.unlabelled(stream.ids, generator.fields)
        bounds = stream.text_tokens.tolist()
        plans = [generator.plan([(bounds[2 * k], bounds[2 * k + 1]), (bounds[2 * k + 1], bounds[2 * k + 2])],
                                self, label, stats, token_tasks=0)
                 for k, (_, _, label) in enumerate(pairs)]
        return table, plans

    def describe(self, example, tokens, original, manifest):
        return {"label": f"{example.label} {CLASS_NAMES[example.label]}"}
