"""What the command lines share: argparse types, and how their messages say a set of numbers."""
import argparse
from pathlib import Path
from typing import List, Sequence

from ernie_common.fileio import file_above


def _at_least(text: str, least: int, expected: str) -> int:
    """`text` as a whole number of at least `least`, else an ArgumentTypeError saying `expected`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type for counts such as `--batch-size`: 0 or a negative number is refused by
    argparse with the option's name (a negative batch size gave an empty answer, 0 a traceback)."""
    return _at_least(text, 1, "a positive integer")


# the largest seed: a step's seed (seed x 1,000,003 + step + rank x 1,000,000,007: propeller's
# step_seed) stays well inside the 64-bit seeds Paddle takes
MAX_SEED = 2**32 - 1


def random_seed(text: str) -> int:
    """An argparse type for a random seed: a whole number from 0 to `MAX_SEED` (a negative one
    failed inside Paddle's `manual_seed` with a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed, a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, got {value}")
    return value


def count(text: str) -> int:
    """An argparse type for a count that may be 0 (`--min-frequency`)."""
    return _at_least(text, 0, "0 or more")


def number_ranges(numbers: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    runs: List[List[int]] = []
    for k in numbers:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def output_file(text: str) -> str:
    """An argparse type for a file a command writes: refused now, not after the work, where it
    is a directory or lies in what is not one."""
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, where a file is written: name the file")
    return _in_folders(text)


def output_dir(text: str) -> str:
    """An argparse type for a directory a command writes into: refused where it is a file."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, where a directory is written: name a directory")
    return _in_folders(text)


def _in_folders(text: str) -> str:
    """`text`, where none of the folders of its path is a file (the write would fail after the work)."""
    if file_above(text):
        raise argparse.ArgumentTypeError(f"{text}: a folder of the path is a file ({file_above(text)})")
    return text


def input_file(text: str) -> str:
    """An argparse type for a file a command reads: refused where it does not exist or is a directory."""
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, where a file is read")
    if not Path(text).exists():  # (a pipe, /dev/stdin, is read as a file is)
        raise argparse.ArgumentTypeError(f"{text}: file not found")
    return text
