"""What the ``python -m ml.*`` commands share: their parser, argument types, progress on
standard error, errors as one line and exit status 2, and reports as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# A command's exit status when its input is wrong (a missing folder, an unreadable model).
USAGE_ERROR = 2


def parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m module``, described by the first line of ``doc``."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc.strip().splitlines()[0])


def add_json_argument(parser: argparse.ArgumentParser, what: str = "figures") -> None:
    parser.add_argument("--json", type=Path, help=f"also write the {what} here")


def non_negative_int(text: str) -> int:
    """argparse type for counts: a clear error for "-5" or "many" before any work starts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def progress(done: int, total: int, started: float, what: str) -> None:
    """One line on standard error, rewritten in place: ``what: done/total (rate/s)``."""
    rate = done / max(time.time() - started, 1e-6)
    sys.stderr.write(f"\r{what}: {done}/{total} ({rate:.0f}/s)")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def fail(message: str) -> int:
    """Tell the user what is wrong on one line of standard error; the exit status to return."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def print_report(result: dict, json_path: Path | None = None) -> None:
    """A command's figures: JSON on standard output and, with ``--json FILE``, in FILE too."""
    text = json.dumps(result, indent=1)
    print(text)
    if json_path:
        Path(json_path).write_text(text + "\n")
