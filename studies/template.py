"""A report is a Markdown template with `${name}` fields, filled from values computed from the
runs' files: the prose stays in the template, every figure and conclusion comes from the runs."""
from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Mapping

from ernie_common.fileio import atomic_write_text
from studies.jobs import ROOT

TEMPLATES = Path(__file__).resolve().parent / "templates"


class TemplateError(ValueError):
    pass


def fill(template: Path, values: Mapping[str, str]) -> str:
    """The template with every field replaced; a field without a value, or a value without a field,
    is an error (a report never shows `${...}` and never computes a figure nobody reads)."""
    text = template.read_text(encoding="utf-8")
    fields = set(string.Template(text).get_identifiers())
    missing, unused = sorted(fields - set(values)), sorted(set(values) - fields)
    if missing or unused:
        raise TemplateError(f"{template}: fields without values {missing}, values without fields {unused}")
    return string.Template(text).substitute(values)


def write_report(doc: Path, text: str) -> None:
    """The filled report, written atomically: trailing spaces dropped, and the blank lines that
    parts left empty collapsed to one."""
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines()))
    atomic_write_text(doc, text.strip() + "\n")
    print(f"wrote {doc}")


def shown(path: Path) -> str:
    """A path as a document names it: from the repository root where it is inside."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def precision_text(amp: str) -> str:
    """A run's `amp` as the reports name it: float32, bfloat16 products (on a CPU), fp16."""
    return {"off": "float32", "bf16": "bfloat16 products"}.get(amp, amp)


def segment_text(segment: dict) -> str:
    """One of a run's `segments` (summary.json, ernie.pretrain): from which step, in which
    precision, on which CPU it trained."""
    amp = precision_text(segment["amp"])
    where = segment["machine"].split(";")[0].removeprefix("CPU: ") if segment.get("machine") else "a machine not recorded"
    return f"from step {segment['from_step']:,} in {amp} on {where}"
