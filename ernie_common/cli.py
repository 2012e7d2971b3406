"""What the command lines share: argparse types."""
import argparse


def positive_int(text: str) -> int:
    """An argparse type for counts such as `--batch-size`: 0 or a negative number is refused by
    argparse with the option's name (a negative batch size gave an empty answer, 0 a traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
