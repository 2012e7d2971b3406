"""Every repository path that the README, the docs, the configs' comments and the code's
docstrings and comments (the tests' aside) name exists: `ernie/kernels/cpu_kernels.py`, `configs/data/demo_en.yaml`,
`ernie2_{base,large}_en.yaml` (braces expanded). Paths a run writes (`output/`, `data/`) and
patterns (`NAME`, `*`, `<...>`) are not checked. The README's and the docs' relative Markdown links lead
to a file that exists and, with `#anchor`, to one of its headings."""
import itertools
import re

from tests.conftest import REPO

TOP = sorted(p.name for p in REPO.iterdir() if not p.name.startswith(".") and p.name not in ("output", "data"))
# a path: starts with a top-level entry of the repository, no spaces; braces allowed for expansion
CANDIDATE = re.compile(r"(?<![\w./-])((?:%s)(?:/[\w.{},-]+)*/?)(?![\w$*<\[%%])" % "|".join(re.escape(t) for t in TOP))
FILE = re.compile(r"(\.(py|yaml|yml|md|sh|cc|txt|json|png|tsv|ini|cfg|toml)|/)$")
# names that stand for many: NAME, TASK, X, a {placeholder}
PATTERN = re.compile(r"NAME|TASK|\bX\b|\{[^,{}]*\}|\.\.\.")
# paths of other repositories, and former names (`old` → `new`), named on their line
ELSEWHERE = re.compile(r"PaddlePaddle/|github|→")
SOURCES = ["README.md", "docs/*.md", "examples/**/*.md", "configs/**/*.yaml", "**/*.py", "**/*.sh", ".ci/run"]


def _expand(path: str):
    """`a_{b,c}_{d,e}` -> the four names."""
    parts = re.split(r"\{([^{}]*)\}", path)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def _files():
    seen = set()
    for pattern in SOURCES:
        for path in REPO.glob(pattern):
            # tests name the files of the trees they build in temporary directories: not checked
            if ".venv" in path.parts or "egg-info" in str(path) or path in seen or not path.is_file() \
                    or path.relative_to(REPO).parts[0] == "tests":
                continue
            seen.add(path)
            yield path


def test_every_named_repository_path_exists():
    missing = []
    for source in _files():
        text = source.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for match in CANDIDATE.finditer(line):
                name = match.group(1).rstrip(".,)")
                if name in TOP or "/" not in name or not FILE.search(name) or PATTERN.search(name) \
                        or ELSEWHERE.search(line):
                    continue
                for path in _expand(name):
                    if not (REPO / path).exists():
                        missing.append(f"{source.relative_to(REPO)}:{lineno}: {path}")
    assert not missing, "\n".join(missing)


def test_the_check_sees_a_path_that_is_gone(tmp_path):
    assert CANDIDATE.search("see `ernie/csrc/cpu_kernels.cc` for the kernels").group(1) == "ernie/csrc/cpu_kernels.cc"
    assert not (REPO / "ernie/csrc/cpu_kernels.cc").exists()
    assert _expand("configs/pretrain/ernie2_{base,large}_en.yaml") == [
        "configs/pretrain/ernie2_base_en.yaml", "configs/pretrain/ernie2_large_en.yaml"]


# a Markdown link: [text](target), the target relative to the file (not a URL, not a bare anchor)
LINK = re.compile(r"\]\(([^()\s]+)\)")


def _anchors(markdown: str):
    """The anchors GitHub gives the headings of a Markdown text: lower case, punctuation but
    hyphens dropped, spaces as hyphens (code blocks' `#` lines are not headings)."""
    anchors, fenced = set(), False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_every_relative_link_of_the_readme_and_docs_leads_somewhere():
    """`[install](install.md#gpu-builds-clusters)` in docs/cluster.md: docs/install.md exists and
    has that heading."""
    broken = []
    for source in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = source.read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue
                path, _, anchor = target.partition("#")
                where = (source.parent / path).resolve() if path else source
                if not where.exists():
                    broken.append(f"{source.relative_to(REPO)}:{lineno}: {target} (no such file)")
                elif anchor and where.suffix == ".md" and anchor not in _anchors(where.read_text(encoding="utf-8")):
                    broken.append(f"{source.relative_to(REPO)}:{lineno}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_link_check_sees_a_heading_that_is_gone():
    assert _anchors("# Install\n## GPU builds (clusters)\n```bash\n# a comment\n```\n") == {"install", "gpu-builds-clusters"}
    assert LINK.findall("see [the guide](docs/pretraining-guide.md#continuing-from-a-model).") == [
        "docs/pretraining-guide.md#continuing-from-a-model"]
