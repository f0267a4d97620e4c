"""The parts of the Keras training loop that ``ml.train`` assembles: targets and weights,
the augmented input pipeline, BatchNorm re-estimation on clean images, the per-epoch report
that validates the model as it will serve, and the warm start from an earlier model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from ml.calibration import calibrated_probs
from ml.card import SPLIT_FILE, Card
from ml.data import UNKNOWN_CODE, Dataset
from ml.labels import CLASSES
from ml.metrics import NOTUMOR_INDEX
from ml.preprocess import PREPROCESS_VERSION

# A class's loss weight is at most this many times the most common class's: dementia-mri's
# ModerateDemented (52 of 5,121 slices, a handful of subjects) would otherwise weigh 49 times
# NonDemented, and 40-odd training slices repeated that often are learnt by heart.
MAX_WEIGHT_RATIO = 10.0


def label_masks(
    labels: np.ndarray, n_classes: int = len(CLASSES), no_finding: int = NOTUMOR_INDEX
) -> np.ndarray:
    """0/1 target masks: one-hot for a known class, "any class but no finding" for a tumour
    of unknown type (tumour MRI)."""
    masks = np.zeros((len(labels), n_classes), dtype=np.float32)
    known = labels < UNKNOWN_CODE
    masks[np.flatnonzero(known), labels[known]] = 1.0
    masks[~known] = 1.0
    masks[~known, no_finding] = 0.0
    return masks


def balanced_weights(labels: np.ndarray, max_ratio: float = MAX_WEIGHT_RATIO) -> np.ndarray:
    """Per image, the weight that gives each label the same total (class weighting), a
    label's weight capped at ``max_ratio`` times the most common label's."""
    counts = np.bincount(labels, minlength=UNKNOWN_CODE + 1).astype(np.float64)
    present = counts > 0
    per_label = np.zeros_like(counts)
    per_label[present] = counts[present].sum() / (present.sum() * counts[present])
    per_label = np.minimum(per_label, max_ratio * per_label[present].min())
    return per_label[labels].astype(np.float32)


def make_training_data(
    train: Dataset,
    batch: int,
    seed: int,
    strength: float = 1.0,
    n_classes: int = len(CLASSES),
    no_finding: int = NOTUMOR_INDEX,
    profile: str = "scanners",
):
    """Shuffled, augmented, class-weighted batches of (image, label mask, weight); ``profile``
    names the augmentation (``ml.augment.PROFILES``)."""
    import tensorflow as tf

    from ml.augment import PROFILES

    augment = PROFILES[profile]

    size = train.images.shape[1]
    data = tf.data.Dataset.from_tensor_slices(
        (train.images, label_masks(train.labels, n_classes, no_finding), balanced_weights(train.labels))
    )
    data = data.shuffle(len(train), seed=seed, reshuffle_each_iteration=True)
    data = data.map(lambda x, y, w: (augment(x, size, strength), y, w), num_parallel_calls=tf.data.AUTOTUNE)
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
    epoch with the figures that matter clinically for ``task`` (an ``ml.tasks.Task``). It
    writes ``val_loss``, ``val_mask_accuracy`` and ``val_macro_f1`` into the epoch logs, so
    early stopping and the history see validation figures from the model exactly as it will
    serve."""

    def __new__(cls, val: Dataset, calibration: np.ndarray, epochs: int, task):
        import keras

        no_finding = task.classes.index(task.no_finding)
        masks = label_masks(val.labels, len(task.classes), no_finding)
        known = val.labels < UNKNOWN_CODE

        class _Report(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.time()

            def on_epoch_end(self, epoch, logs=None):
                recalibrate_batch_norm(self.model, calibration)
                logits = self.model.predict(val.images, batch_size=128, verbose=0)
                logs["val_loss"] = float(masked_nll_numpy(masks, logits).mean())
                logs["val_mask_accuracy"] = float(masks[np.arange(len(masks)), logits.argmax(1)].mean())
                pred, truth = logits[known].argmax(1), val.labels[known]
                logs["val_macro_f1"] = float(
                    f1_score(truth, pred, labels=range(len(task.classes)), average="macro", zero_division=0.0)
                )
                recalls = " ".join(
                    f"{name} {(pred[truth == i] == i).mean():.3f}"
                    for i, name in enumerate(task.classes)
                    if (truth == i).any()
                )
                finding = ""
                if task.flagged:
                    score = 1 - calibrated_probs(logits)[:, no_finding]
                    present = val.labels != no_finding
                    finding = (
                        f" | finding recall {(score[present] >= 0.5).mean():.4f} "
                        f"specificity {(score[~present] < 0.5).mean():.4f}"
                    )
                lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                print(
                    f"epoch {epoch + 1}/{epochs} {time.time() - self.started:.0f}s "
                    f"loss {logs['loss']:.4f} acc {logs['mask_accuracy']:.4f} | "
                    f"val loss {logs['val_loss']:.4f} acc {(pred == truth).mean():.4f} "
                    f"macro-F1 {logs['val_macro_f1']:.4f} recall: {recalls}{finding} | lr {lr:.2e}",
                    flush=True,
                )

        return _Report()


def read_parent(model_dir: Path) -> Card:
    """The card of an earlier model to continue from (a warm start, ``--init``); refused unless
    it was trained on this code's preprocessing."""
    parent = Card.load(model_dir)
    if parent.preprocessing_version != PREPROCESS_VERSION:
        raise ValueError(
            f"{model_dir} was trained on preprocessing version {parent.preprocessing_version}, "
            f"this code uses {PREPROCESS_VERSION}"
        )
    return parent


def parent_split(model_dir: Path, full: Dataset) -> dict[str, np.ndarray]:
    """The train / validation / test indices of ``full`` that ``model_dir``'s split.npz lists: a
    warm start keeps its parent's split exactly, so none of the parent's training images can land
    in this run's test split (recomputed at another --size, the perceptual hashes, taken of the
    preprocessed image, could group a few images otherwise). Refused unless that split covers
    exactly these images."""
    where = {digest: i for i, digest in enumerate(full.sha256)}
    with np.load(model_dir / SPLIT_FILE) as saved:
        split = {
            name: np.array(sorted(where[d] for d in saved[name] if d in where), dtype=int) for name in saved
        }
        listed = sum(len(saved[name]) for name in saved)
    found = sum(len(v) for v in split.values())
    if listed != len(full) or found != len(full):
        raise ValueError(
            f"{model_dir}: its split differs from this run's images ({listed} listed there, "
            f"{len(full)} here, {found} of them in both); a warm start needs the same --data, "
            "--limit and --seed"
        )
    return split


def load_parent_model(model_dir: Path, parent: Card):
    """The Keras model of a warm start's parent (``read_parent``)."""
    import keras

    import ml.model  # noqa: F401  registers the custom layer for deserialisation

    return keras.models.load_model(model_dir / parent.model_file, compile=False)
