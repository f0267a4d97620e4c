"""Model cards (model.json): the typed ``Card``, built and validated in one place, the names of
the files in a model directory, and where shipped models live: ml/models/<name>/<version>/.

Pure Python and numpy-free: the web process reads cards, the worker loads models through them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

MODELS_ROOT = Path(__file__).resolve().parent / "models"
CARD_FORMAT = 1
DEFAULT_TASK = "brain-tumour"

# The files of a model directory.
CARD_FILE = "model.json"
MODEL_FILE = "model.keras"  # the Keras model ml.train writes
LITERT_FILE = "model.tflite"  # its LiteRT export, which the worker serves (ml.export)
HEAD_FILE = "head.npz"  # the layers after global average pooling, for the explanation
GATE_FILE = "gate.npz"  # the out-of-distribution gate's feature statistics (ml.fit_gate)
SPLIT_FILE = "split.npz"  # sha256 of the train / val / test images


class ModelLoadError(Exception):
    """The model directory is missing, incomplete or incompatible with this code."""


class CardError(ModelLoadError, ValueError):
    """A model card lacks a required field, has one of the wrong type, or one this code does
    not know. (A ValueError too, for callers that read cards as plain data.)"""


@dataclass(frozen=True, kw_only=True)
class ModelInput:
    """What the network takes: one preprocessed slice (``ml.preprocess``)."""

    height: int
    width: int
    channels: int = 1
    dtype: str = "float32"
    range: tuple[float, ...] = (0.0, 1.0)

    def __post_init__(self):
        _check_fields(self)


@dataclass(frozen=True, kw_only=True)
class LiteRTExport:
    """The card's record of the LiteRT export (``ml.export`` writes it after verifying it)."""

    file: str
    sha256: str
    bytes: int
    input: str
    outputs: tuple[str, ...]
    head_file: str
    head_sha256: str
    head: tuple[str, ...]  # the head's activations, one per dense layer
    explanation: str
    converter: str
    verified_with: str
    max_difference_from_keras: dict
    exported_at: str

    def __post_init__(self):
        _check_fields(self)

    def to_json(self) -> dict:
        return _to_json(self)


@dataclass(frozen=True, kw_only=True)
class Card:
    """One model's card. Fields without a default are required; the JSON on disk has the
    same names and nesting (``from_json`` / ``to_json``), with the optional ones left out
    when unset."""

    card_format: int = CARD_FORMAT
    task: str
    name: str
    version: str
    description: str = ""
    created_at: str  # ISO 8601, UTC
    model_file: str = MODEL_FILE
    sha256: str  # of model_file: checked at every load
    classes: tuple[str, ...]
    no_finding_class: str
    input: ModelInput
    preprocessing_version: str
    output: str = "logits; probabilities = softmax(logits / temperature)"
    temperature: float
    # A tumour is suspected when 1 - p(no finding) reaches this.
    tumour_threshold: float
    tumour_threshold_rule: str = ""
    # A result whose calibrated top probability is below this is "uncertain": refer it.
    refer_threshold: float
    refer_threshold_rule: str = ""
    parameters: int | None = None
    # Figures and provenance, as ml.train wrote them (ml.metrics' reports); the web app's
    # analytics pages read them from the JSON.
    metrics: dict = field(default_factory=dict)
    metrics_by_source: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    libraries: dict = field(default_factory=dict)
    # The out-of-distribution gate's limits (ml.gate) and its feature statistics' file; unset
    # until ml.fit_gate has fitted it, and while unset only the modality check refuses.
    ood_gate: dict | None = None
    ood_gate_file: str | None = None
    # The modality the model reads ("MR") and the modality check it pins (relative to the
    # models root); unset: no modality check runs.
    modality: str | None = None
    modality_check: str | None = None
    # Unset until ml.export has written and verified the LiteRT export.
    litert: LiteRTExport | None = None

    def __post_init__(self):
        _check_fields(self)
        if self.card_format != CARD_FORMAT:
            raise CardError(f"unsupported card_format {self.card_format!r} (this code reads {CARD_FORMAT})")
        if self.no_finding_class not in self.classes:
            raise CardError(f"no_finding_class {self.no_finding_class!r} is not one of {self.classes}")
        if (self.ood_gate is None) != (self.ood_gate_file is None):
            raise CardError("ood_gate and ood_gate_file go together")
        if self.modality_check and not self.modality:
            raise CardError("modality_check needs modality")
        if not self.temperature > 0:
            raise CardError(f"temperature must be positive, not {self.temperature!r}")

    @classmethod
    def from_json(cls, data: dict) -> Card:
        """The card of a JSON object; CardError names a missing, unknown or mistyped field."""
        found = data.get("card_format") if isinstance(data, dict) else None
        if found != CARD_FORMAT:
            raise CardError(f"unsupported card_format {found!r} (this code reads {CARD_FORMAT})")
        return _from_json(cls, data)

    def to_json(self) -> dict:
        """Plain JSON, in the field order above; unset optional fields are left out."""
        return _to_json(self)

    @classmethod
    def load(cls, model_dir: Path | str) -> Card:
        """The card in ``model_dir``: ModelLoadError if there is none, CardError if it is invalid."""
        path = Path(model_dir) / CARD_FILE
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise ModelLoadError(f"no model card ({CARD_FILE}) in {model_dir}") from None
        except (OSError, ValueError) as exc:
            raise CardError(f"unreadable model card {path}: {exc}") from exc
        try:
            return cls.from_json(data)
        except CardError as exc:
            raise CardError(f"{path}: {exc}") from None

    def save(self, model_dir: Path | str) -> None:
        write_json_atomic(Path(model_dir) / CARD_FILE, self.to_json())

    def replace(self, **changes) -> Card:
        return dataclasses.replace(self, **changes)

    @property
    def size(self) -> int:
        """The side of the square input."""
        return self.input.height

    @property
    def label(self) -> str:
        """``name/version``, as reports and the web app show a model."""
        return f"{self.name}/{self.version}"


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_matches(v, item) for v in value)
    return isinstance(value, origin or hint)


def _check_fields(obj) -> None:
    for name, hint in _hints(type(obj)).items():
        value = getattr(obj, name)
        if not _matches(value, hint):
            raise CardError(f"field {name} should be {_describe(hint)}, not {value!r:.80}")


def _describe(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("ml.card.", "")


def _required(cls) -> list[str]:
    missing = dataclasses.MISSING
    return [f.name for f in dataclasses.fields(cls) if f.default is missing and f.default_factory is missing]


def _from_json(cls, data, prefix: str = ""):
    """``cls`` of a JSON object, every field checked against its type (named in the error)."""
    if not isinstance(data, dict):
        raise CardError(f"{prefix.rstrip('.') or 'the card'} should be an object, not {data!r:.80}")
    hints = _hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise CardError(f"unknown field {prefix}{unknown[0]}")
    missing = [name for name in _required(cls) if name not in data]
    if missing:
        raise CardError(f"required field {prefix}{missing[0]} is missing")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        nested = [arg for arg in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(arg)]
        if nested and isinstance(value, dict):
            value = _from_json(nested[0], value, f"{prefix}{name}.")
        elif isinstance(value, list):
            value = tuple(value)
        if not _matches(value, hint):
            raise CardError(f"field {prefix}{name} should be {_describe(hint)}, not {value!r:.80}")
        values[name] = float(value) if hint is float else value
    return cls(**values)


def _to_json(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None and f.default is None:
            continue
        if dataclasses.is_dataclass(value):
            value = _to_json(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_model_dirs(root: Path = MODELS_ROOT) -> list[Path]:
    """Every directory holding a model card, sorted by (name, version)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob(f"*/*/{CARD_FILE}"))


def _canonical_or_none(name) -> str | None:
    from ml import tasks

    try:
        return tasks.canonical(str(name))
    except tasks.UnknownTask:
        return None


def read_card(model_dir: Path) -> dict:
    """The card's JSON as stored, for the web app's registry (which keeps it whole and reads
    cards of any completeness); model code reads ``Card.load``."""
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


def default_model_dir(task: str = DEFAULT_TASK, root: Path = MODELS_ROOT) -> Path:
    """The newest shipped version of ``task`` (the registry in the web app may override); a
    card that names its task by a legacy name (``ml.tasks.LEGACY_NAMES``) counts as that task."""
    from ml import tasks

    wanted = tasks.canonical(task)
    dirs = [d for d in find_model_dirs(root) if _canonical_or_none(read_card(d).get("task")) == wanted]
    if not dirs:
        raise FileNotFoundError(f"no shipped model for task {task!r} under {root}")
    return max(dirs, key=lambda d: read_card(d).get("created_at", ""))
