"""Serving benchmark: load time, batch-1 latency on one thread, batch-32 throughput.

    python -m ml.bench [--model DIR] [--json FILE]

Each measurement runs in a fresh interpreter, since TensorFlow's thread pools are fixed
at start-up: latency with one intra-op thread (one core), throughput with all cores.
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

REPEATS = 200


def _sample_inputs(classifier, n: int) -> np.ndarray:
    """Real images when the datasets are beside the repo, else reproducible noise."""
    from ml.labels import index_folder
    from ml.preprocess import preprocess

    root = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "brain-tumor-mri" / "Training"
    if root.is_dir():
        items = index_folder(root)
        picks = [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)]
        return np.stack([preprocess(it.path, classifier.size) for it in picks])
    return np.random.default_rng(0).random((n, classifier.size, classifier.size, 1), dtype=np.float32)


def _worker(mode: str, model_dir: Path) -> dict:
    import tensorflow as tf

    if mode == "latency":
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from ml.serve import Classifier

    started = time.perf_counter()
    classifier = Classifier.load(model_dir)
    load_s = time.perf_counter() - started
    out: dict = {"load_s": round(load_s, 3)}
    if mode == "latency":
        x = _sample_inputs(classifier, 32)
        for i in range(10):
            classifier._predict(x[i % 32 : i % 32 + 1])
        times = []
        for i in range(REPEATS):
            t = time.perf_counter()
            classifier._predict(x[i % 32 : i % 32 + 1])
            times.append((time.perf_counter() - t) * 1000)
        explain = []
        for i in range(REPEATS // 2):
            t = time.perf_counter()
            classifier._explain(x[i % 32 : i % 32 + 1])
            explain.append((time.perf_counter() - t) * 1000)
        # End to end on a real file: decode, gate, preprocess, model, heatmap PNG.
        from ml.labels import index_folder

        root = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "brain-tumor-mri" / "Training"
        if root.is_dir():
            items = index_folder(root)[::300]
            for explain_flag, key in ((False, "classify_ms_p50"), (True, "classify_explained_ms_p50")):
                runs = []
                for it in items:
                    t = time.perf_counter()
                    classifier.classify(it.path, explain=explain_flag)
                    runs.append((time.perf_counter() - t) * 1000)
                out[key] = round(float(np.percentile(runs, 50)), 2)
            out["explanation_overhead"] = round(
                out["classify_explained_ms_p50"] / out["classify_ms_p50"] - 1, 3
            )
        out.update(
            latency_ms_p50=round(float(np.percentile(times, 50)), 2),
            latency_ms_p95=round(float(np.percentile(times, 95)), 2),
            gradcam_ms_p50=round(float(np.percentile(explain, 50)), 2),
        )
    else:
        x = _sample_inputs(classifier, 32)
        classifier._predict(x)
        rounds = 20
        t = time.perf_counter()
        for _ in range(rounds):
            classifier._predict(x)
        out["throughput_images_per_s"] = round(rounds * len(x) / (time.perf_counter() - t), 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--mode", choices=["latency", "throughput"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    model_dir = args.model or cards.default_model_dir()
    if args.mode:
        print(json.dumps(_worker(args.mode, model_dir)))
        return 0
    result: dict = {"model": str(model_dir), "cores": os.cpu_count()}
    for mode in ("latency", "throughput"):
        proc = subprocess.run(  # noqa: S603  our own module, fixed arguments
            [sys.executable, "-m", "ml.bench", "--model", str(model_dir), "--mode", mode],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        if mode == "latency":
            result.update(figures)
        else:
            result["throughput_images_per_s"] = figures["throughput_images_per_s"]
            result["peak_rss_mb"] = max(result["peak_rss_mb"], figures["peak_rss_mb"])
    cards.print_report(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
