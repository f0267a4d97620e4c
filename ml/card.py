"""Model cards (model.json) and where shipped models live: ml/models/<name>/<version>/."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

MODELS_ROOT = Path(__file__).resolve().parent / "models"
CARD_FILE = "model.json"
CARD_FORMAT = 1
DEFAULT_TASK = "brain-tumour"


def find_model_dirs(root: Path = MODELS_ROOT) -> list[Path]:
    """Every directory holding a model card, sorted by (name, version)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob(f"*/*/{CARD_FILE}"))


def read_card(model_dir: Path) -> dict:
    path = Path(model_dir) / CARD_FILE
    with open(path, encoding="utf-8") as fh:
        card = json.load(fh)
    if card.get("card_format") != CARD_FORMAT:
        raise ValueError(f"{path}: unsupported card_format {card.get('card_format')!r}")
    return card


def write_json_atomic(path: Path, data: dict) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=False)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def percents(value: float, threshold: float) -> tuple[str, str]:
    """``value`` and ``threshold`` as percentages with just enough decimals that a value below
    the threshold reads below it ("86.8%" and "87.0%", not "87%" and "87%")."""
    for decimals in range(3):
        shown = f"{value:.{decimals}%}", f"{threshold:.{decimals}%}"
        if value >= threshold or float(shown[0][:-1]) < float(shown[1][:-1]):
            return shown
    # Closer than two decimals show: the value rounded down, the threshold up.
    scale = 100_000
    low, high = math.floor(round(value * scale, 6)), math.ceil(round(threshold * scale, 6))
    return f"{low / 1000:.3f}%", f"{high / 1000:.3f}%"


def refer_reason(confidence: float, refer_threshold: float) -> str:
    """Why a result is ``uncertain``: its confidence against the card's refer threshold."""
    shown, limit = percents(confidence, refer_threshold)
    return f"confidence {shown} is below the model's refer threshold {limit}: refer for specialist review"


def print_report(result: dict, json_path: Path | None = None) -> None:
    """A command's figures: JSON on standard output and, with ``--json FILE``, in FILE too."""
    text = json.dumps(result, indent=1)
    print(text)
    if json_path:
        Path(json_path).write_text(text + "\n")


def default_model_dir(task: str = DEFAULT_TASK, root: Path = MODELS_ROOT) -> Path:
    """The newest shipped version of ``task`` (the registry in the web app may override)."""
    dirs = [d for d in find_model_dirs(root) if read_card(d).get("task") == task]
    if not dirs:
        raise FileNotFoundError(f"no shipped model for task {task!r} under {root}")
    return max(dirs, key=lambda d: read_card(d).get("created_at", ""))
