"""Every repository path that the README, the docs, the configs' comments and the code's
docstrings and comments (the tests' aside) name exists: `ernie/kernels/cpu_kernels.py`, `configs/data/demo_en.yaml`,
`ernie2_{base,large}_en.yaml` (braces expanded). Paths a run writes (`output/`, `data/`) and
patterns (`NAME`, `*`, `<...>`) are not checked."""
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
