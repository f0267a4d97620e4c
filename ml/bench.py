"""Serving benchmark, Keras and LiteRT side by side: library import and model load, batch-1
latency on one thread, batch-32 throughput on all cores, peak memory and the explanation's cost;
and with ``--tasks``, every task's newest model served as the worker serves it (LiteRT, one
thread): its batch-1 latency and end-to-end classify time, and the memory of one process with
all of them (and the modality check) loaded.

    python -m ml.bench [--model DIR] [--json FILE]
    python -m ml.bench --tasks [--json FILE]

Each measurement runs in a fresh interpreter, since TensorFlow's thread pools are fixed at
start-up and a process's peak memory is its own: latency with one thread (one core),
throughput with all cores. The LiteRT processes never import TensorFlow, as the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ml import card as cards
from ml import cli

REPEATS = 200
RUNTIMES = ("keras", "litert")  # ml.runtimes.RUNTIMES; not imported, to keep this process light
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASET = DATASETS / "brain-tumor-mri" / "Training"
# Each task's real images for its latency runs (ml.tasks names; the web app's registry is not read).
TASK_DATA = {
    "tumour-mri": ("brain-tumor-mri/Training", "tumour-mri"),
    "dementia-mri": ("alzheimer-mri/train", "dementia-mri"),
    "tumour-ct": ("brain-ct/train", "tumour-ct"),
}


def _task_files(task: str, n: int) -> list[Path]:
    """``n`` of the task's real images, evenly spaced; none when the datasets are not beside the repo."""
    from ml.labels import index_folder

    folder, label_task = TASK_DATA[task]
    if not (DATASETS / folder).is_dir():
        return []
    items = index_folder(DATASETS / folder, task=label_task)
    return [items[i].path for i in np.linspace(0, len(items) - 1, n).astype(int)]


def _sample_inputs(classifier, n: int, task: str = "tumour-mri") -> np.ndarray:
    """Real images when the datasets are beside the repo, else reproducible noise."""
    from ml.preprocess import preprocess

    files = _task_files(task, n)
    if files:
        return np.stack([preprocess(path, classifier.size) for path in files])
    return np.random.default_rng(0).random((n, classifier.size, classifier.size, 1), dtype=np.float32)


def _percentile(times: list[float], q: int) -> float:
    return round(float(np.percentile(times, q)), 2)


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM where /proc has it (ru_maxrss would keep the
    parent's size across fork and exec), else ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def _batch1_latencies_ms(classifier, x) -> list[float]:
    """``REPEATS`` batch-1 forward passes over the rows of ``x`` (after 10 to warm up), in ms."""
    for i in range(10):
        classifier.forward(x[i % len(x) : i % len(x) + 1])
    times = []
    for i in range(REPEATS):
        t = time.perf_counter()
        classifier.forward(x[i % len(x) : i % len(x) + 1])
        times.append((time.perf_counter() - t) * 1000)
    return times


def _worker(runtime: str, mode: str, model_dir: Path) -> dict:
    threads = 1 if mode == "latency" else os.cpu_count()
    started = time.perf_counter()
    # The libraries first (a worker imports them once, at start): the runtime, and scikit-learn
    # for the modality check the card may ask for.
    if runtime == "keras":
        import keras  # noqa: F401
        import tensorflow as tf

        if mode == "latency":
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    else:
        import ai_edge_litert.interpreter  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    from ml.serve import Classifier

    imported = time.perf_counter()
    classifier = Classifier.load(model_dir, runtime=runtime, threads=threads)
    out: dict = {
        "import_s": round(imported - started, 3),
        # Files read and checked, interpreter built or graphs traced, gate and modality check.
        "load_s": round(time.perf_counter() - imported, 3),
    }
    from ml import tasks

    x = _sample_inputs(classifier, 32, tasks.canonical(classifier.card.task))
    if mode == "latency":
        times = _batch1_latencies_ms(classifier, x)
        explain = []
        for i in range(REPEATS // 2):
            t = time.perf_counter()
            classifier.explain(x[i % 32 : i % 32 + 1])
            explain.append((time.perf_counter() - t) * 1000)
        out.update(
            latency_ms_p50=_percentile(times, 50),
            latency_ms_p95=_percentile(times, 95),
            # Grad-CAM (Keras) or the map from the head's weights (LiteRT), model run included.
            explain_ms_p50=_percentile(explain, 50),
        )
        # End to end on a real file: decode, gate, preprocess, model, heatmap PNG.
        if DATASET.is_dir():
            from ml.labels import index_folder

            items = index_folder(DATASET)[::300]
            for explain_flag, key in ((False, "classify_ms_p50"), (True, "classify_explained_ms_p50")):
                runs = []
                for it in items:
                    t = time.perf_counter()
                    classifier.classify(it.path, explain=explain_flag)
                    runs.append((time.perf_counter() - t) * 1000)
                out[key] = _percentile(runs, 50)
            out["explanation_overhead"] = round(
                out["classify_explained_ms_p50"] / out["classify_ms_p50"] - 1, 3
            )
    else:
        classifier.forward(x)
        rounds = 20
        t = time.perf_counter()
        for _ in range(rounds):
            classifier.forward(x)
        out["throughput_images_per_s"] = round(rounds * len(x) / (time.perf_counter() - t), 1)
    out["peak_rss_mb"] = _peak_rss_mb()
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    return out


def _tasks_worker() -> dict:
    """One process as the worker runs: LiteRT, one thread, every task's newest model loaded
    (each with its gate and modality check); per task its batch-1 latency and the end-to-end
    classify time on real files (decode, image checks, modality check, model, features)."""
    from ml import tasks
    from ml.serve import Classifier

    started_rss = _peak_rss_mb()
    out: dict = {"rss_mb_before_models": started_rss, "tasks": {}}
    loaded = {}
    for task in tasks.TASKS:
        try:
            model_dir = cards.default_model_dir(task)
        except FileNotFoundError:
            out["tasks"][task] = {"model": None}
            continue
        t = time.perf_counter()
        loaded[task] = Classifier.load(model_dir, runtime="litert", threads=1)
        out["tasks"][task] = {
            "model": loaded[task].card.label,
            "input": f"{loaded[task].size}x{loaded[task].size}",
            "load_s": round(time.perf_counter() - t, 3),
        }
    out["rss_mb_all_models_loaded"] = _peak_rss_mb()
    for task, classifier in loaded.items():
        x = _sample_inputs(classifier, 32, task)
        times = _batch1_latencies_ms(classifier, x)
        figures = {"latency_ms_p50": _percentile(times, 50), "latency_ms_p95": _percentile(times, 95)}
        runs = []
        for path in _task_files(task, 20):
            t = time.perf_counter()
            classifier.classify(path, explain=False)
            runs.append((time.perf_counter() - t) * 1000)
        if runs:
            figures["classify_ms_p50"] = _percentile(runs, 50)
        out["tasks"][task] |= figures
    out["peak_rss_mb"] = _peak_rss_mb()
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    return out


def _measure_tasks() -> dict:
    proc = subprocess.run(  # noqa: S603  our own module, fixed arguments
        [sys.executable, "-m", "ml.bench", "--mode", "tasks"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tasks: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(runtime: str, model_dir: Path) -> dict:
    figures: dict = {}
    for mode in ("latency", "throughput"):
        proc = subprocess.run(  # noqa: S603  our own module, fixed arguments
            [
                sys.executable,
                "-m",
                "ml.bench",
                "--model",
                str(model_dir),
                "--runtime",
                runtime,
                "--mode",
                mode,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{runtime} {mode}: {proc.stderr[-3000:]}")
        found = json.loads(proc.stdout.strip().splitlines()[-1])
        if mode == "latency":
            figures.update(found)
        else:
            figures["throughput_images_per_s"] = found["throughput_images_per_s"]
            figures["peak_rss_mb"] = max(figures["peak_rss_mb"], found["peak_rss_mb"])
            figures["tensorflow_imported"] = figures["tensorflow_imported"] or found["tensorflow_imported"]
    return figures


def main(argv=None) -> int:
    parser = cli.parser("ml.bench", __doc__)
    parser.add_argument("--model", type=Path, default=None)
    cli.add_json_argument(parser)
    parser.add_argument("--runtime", choices=RUNTIMES, help=argparse.SUPPRESS)
    parser.add_argument(
        "--tasks",
        action="store_true",
        help="every task's newest model, all loaded in one worker-like process",
    )
    parser.add_argument("--mode", choices=["latency", "throughput", "tasks"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "tasks":
        print(json.dumps(_tasks_worker()))
        return 0
    if args.tasks:
        try:
            result = {"cores": os.cpu_count(), **_measure_tasks()}
        except RuntimeError as exc:
            cli.fail(str(exc))
            return 1
        cli.print_report(result, args.json)
        return 0
    model_dir = args.model or cards.default_model_dir()
    if args.mode:
        print(json.dumps(_worker(args.runtime, args.mode, model_dir)))
        return 0
    result: dict = {"model": str(model_dir), "cores": os.cpu_count()}
    try:
        for runtime in RUNTIMES:
            result[runtime] = _measure(runtime, model_dir)
    except RuntimeError as exc:
        cli.fail(str(exc))
        return 1
    keras, litert = result["keras"], result["litert"]
    result["litert_over_keras"] = {
        key: round(litert[key] / keras[key], 3)
        for key in (
            "import_s",
            "load_s",
            "latency_ms_p50",
            "latency_ms_p95",
            "explain_ms_p50",
            "throughput_images_per_s",
            "peak_rss_mb",
        )
    }
    cli.print_report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
