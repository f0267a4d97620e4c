"""The parts of the Keras training loop that ``ml.train`` assembles: targets and weights,
the augmented input pipeline, BatchNorm re-estimation on clean images, the per-epoch report
that validates the model as it will serve, and the warm start from an earlier model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ml.calibration import calibrated_probs
from ml.card import SPLIT_FILE, Card
from ml.data import UNKNOWN_CODE, Dataset
from ml.labels import CLASSES
from ml.metrics import NOTUMOR_INDEX
from ml.preprocess import PREPROCESS_VERSION, SIZE


def label_masks(labels: np.ndarray) -> np.ndarray:
    """0/1 target masks: one-hot for a known class, "any tumour class" for unknown type."""
    masks = np.zeros((len(labels), len(CLASSES)), dtype=np.float32)
    known = labels < UNKNOWN_CODE
    masks[np.flatnonzero(known), labels[known]] = 1.0
    masks[~known] = 1.0
    masks[~known, NOTUMOR_INDEX] = 0.0
    return masks


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    counts = np.bincount(labels, minlength=UNKNOWN_CODE + 1).astype(np.float64)
    present = counts > 0
    per_label = np.zeros_like(counts)
    per_label[present] = counts[present].sum() / (present.sum() * counts[present])
    return per_label[labels].astype(np.float32)


def make_training_data(train: Dataset, batch: int, seed: int, strength: float = 1.0):
    """Shuffled, augmented, class-balanced batches of (image, label mask, weight)."""
    import tensorflow as tf

    from ml.augment import augment

    data = tf.data.Dataset.from_tensor_slices(
        (train.images, label_masks(train.labels), balanced_weights(train.labels))
    )
    data = data.shuffle(len(train), seed=seed, reshuffle_each_iteration=True)
    data = data.map(lambda x, y, w: (augment(x, SIZE, strength), y, w), num_parallel_calls=tf.data.AUTOTUNE)
    return data.batch(batch).prefetch(tf.data.AUTOTUNE)


def mask_accuracy(y_true, logits):
    """Top-1 accuracy against a label mask (for unknown-type tumours: any tumour class)."""
    from keras import ops

    top = ops.argmax(logits, axis=-1)
    return ops.take_along_axis(y_true, top[:, None], axis=-1)[:, 0]


def recalibrate_batch_norm(model, images: np.ndarray, batch: int = 128) -> None:
    """Re-estimate BatchNormalization moving statistics on clean (un-augmented) images.

    The moving statistics gathered during training describe augmented batches (inverted,
    gamma-shifted, blurred...), not the clean images the model serves; with them, inference
    mode disagreed wildly with training mode and validation swung from 74% to 50% between
    epochs. A cumulative average over clean batches in training mode fixes the mismatch
    (as PyTorch's ``update_bn`` does for SWA).
    """
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    try:
        for step, start in enumerate(range(0, len(images), batch)):
            for layer in norms:
                layer.momentum = step / (step + 1.0)  # cumulative mean over batches
            model(images[start : start + batch], training=True)
    finally:
        for layer, momentum in zip(norms, saved, strict=True):
            layer.momentum = momentum


def masked_nll_numpy(masks: np.ndarray, logits: np.ndarray) -> np.ndarray:
    from scipy.special import log_softmax, logsumexp

    log_p = log_softmax(logits.astype(np.float64), axis=-1)
    return -logsumexp(np.where(masks > 0, log_p, -1e9), axis=-1)


class EpochReport:
    """Recalibrates BatchNorm on clean training images, validates, and prints one line per
    epoch with the figures that matter clinically. It writes ``val_loss`` and
    ``val_mask_accuracy`` into the epoch logs, so early stopping and the history see
    validation figures from the model exactly as it will serve."""

    def __new__(cls, val: Dataset, calibration: np.ndarray, epochs: int):
        import keras

        class _Report(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.time()

            def on_epoch_end(self, epoch, logs=None):
                recalibrate_batch_norm(self.model, calibration)
                logits = self.model.predict(val.images, batch_size=128, verbose=0)
                masks = label_masks(val.labels)
                logs["val_loss"] = float(masked_nll_numpy(masks, logits).mean())
                logs["val_mask_accuracy"] = float(masks[np.arange(len(masks)), logits.argmax(1)].mean())
                probs = calibrated_probs(logits)
                known = val.labels < UNKNOWN_CODE
                acc = (probs[known].argmax(1) == val.labels[known]).mean()
                tumour = 1 - probs[:, NOTUMOR_INDEX]
                is_tumour = val.labels != NOTUMOR_INDEX
                recall = (tumour[is_tumour] >= 0.5).mean()
                spec = (tumour[~is_tumour] < 0.5).mean()
                unknown = val.labels == UNKNOWN_CODE
                br_recall = (tumour[unknown] >= 0.5).mean() if unknown.any() else float("nan")
                lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                print(
                    f"epoch {epoch + 1}/{epochs} {time.time() - self.started:.0f}s "
                    f"loss {logs['loss']:.4f} acc {logs['mask_accuracy']:.4f} | "
                    f"val loss {logs['val_loss']:.4f} 4-class acc {acc:.4f} "
                    f"tumour recall {recall:.4f} specificity {spec:.4f} "
                    f"yes-only recall {br_recall:.4f} | lr {lr:.2e}",
                    flush=True,
                )

        return _Report()


def load_parent(model_dir: Path, full: Dataset, split: dict) -> tuple[object, Card]:
    """(model, card) of an earlier model to continue from (a warm start).

    Refused unless its preprocessing and its train / validation / test split are this run's:
    otherwise its training images could land in this run's test split.
    """
    import keras

    import ml.model  # noqa: F401  registers the custom layer for deserialisation

    parent = Card.load(model_dir)
    if parent.preprocessing_version != PREPROCESS_VERSION:
        raise ValueError(
            f"{model_dir} was trained on preprocessing version {parent.preprocessing_version}, "
            f"this code uses {PREPROCESS_VERSION}"
        )
    with np.load(model_dir / SPLIT_FILE) as parent_split:
        for name, idx in split.items():
            if set(parent_split[name]) != {full.sha256[i] for i in idx}:
                raise ValueError(
                    f"{model_dir}: its {name} split differs from this run's; use the same data and seed"
                )
    model = keras.models.load_model(model_dir / parent.model_file, compile=False)
    return model, parent
