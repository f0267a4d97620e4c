"""The two baselines earlier projects report, on the same split as the model."""

from __future__ import annotations

import numpy as np
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

BASELINE_SIZE = 64


def _flat(images: np.ndarray) -> np.ndarray:
    small = [
        np.asarray(
            Image.fromarray((im[..., 0] * 255).astype(np.uint8)).resize(
                (BASELINE_SIZE,) * 2, Image.Resampling.BOX
            )
        )
        for im in images
    ]
    return np.stack(small).reshape(len(images), -1).astype(np.float32) / 255.0


def run_baselines(train_x, train_y, test_x, test_y, seed: int = 0) -> dict:
    """Nearest class-average centroid and PCA + logistic regression, accuracy on test."""
    xtr, xte = _flat(train_x), _flat(test_x)
    classes = np.unique(train_y)
    centroids = np.stack([xtr[train_y == c].mean(axis=0) for c in classes])
    dist = ((xte[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    centroid_acc = float((classes[dist.argmin(axis=1)] == test_y).mean())
    components = min(50, len(xtr) - 1)
    pca = PCA(n_components=components, random_state=seed).fit(xtr)
    clf = LogisticRegression(max_iter=2000).fit(pca.transform(xtr), train_y)
    pca_acc = float((clf.predict(pca.transform(xte)) == test_y).mean())
    return {
        "nearest_centroid": {
            "accuracy": round(centroid_acc, 4),
            "input": f"{BASELINE_SIZE}x{BASELINE_SIZE} pixels",
        },
        "pca_logistic_regression": {
            "accuracy": round(pca_acc, 4),
            "input": f"{BASELINE_SIZE}x{BASELINE_SIZE} pixels, {components} principal components",
        },
    }
