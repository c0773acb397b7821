"""Emotion-recognition metrics: WA, UA, weighted F1, per-class recall, confusion matrices and
their plots.

WA (weighted accuracy) is the plain accuracy over utterances; UA (unweighted accuracy) is
the mean of the per-class recalls, so every class counts the same whatever its size. Both
are reported in percent, as in the paper. Weighted F1 (``wF1``) is the mean of the per-class
F1 scores weighted by each class's number of true utterances: MELD's usual figure.

The confusion matrix of label lists is scikit-learn's (``labels=range(n_classes)``, so every
class has its row and column). Every figure is then computed from the matrix
(:func:`summarize_confusion`): scikit-learn computes them from label lists only, and a
fold's pooled matrix (the report) has no label lists; one computation serves both.
"""
import numpy as np
from sklearn.metrics import confusion_matrix as _sklearn_confusion_matrix


def confusion_matrix(true_indices, predicted_indices, n_classes):
    """Counts (true class, predicted class) pairs; rows are true classes.

    Arguments
    ---------
    true_indices : array-like of int
    predicted_indices : array-like of int
    n_classes : int

    Example
    -------
    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    """
    true_indices = _as_indices(true_indices, "true")
    predicted_indices = _as_indices(predicted_indices, "predicted")
    if true_indices.shape != predicted_indices.shape:
        raise ValueError(
            f"{true_indices.size} true labels but {predicted_indices.size} predictions"
        )
    for name, values in (("true", true_indices), ("predicted", predicted_indices)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} class indices must lie in [0, {n_classes})")
    if true_indices.size == 0:  # scikit-learn refuses empty input; the matrix is all zeros
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    counts = _sklearn_confusion_matrix(true_indices.ravel(), predicted_indices.ravel(), labels=range(n_classes))
    return counts.astype(np.int64, copy=False)


def _as_indices(values, name):
    """Class indices as int64, refusing non-integer values instead of truncating them."""
    array = np.asarray(values)
    if array.size and not np.all(np.equal(np.mod(array, 1), 0)):
        raise ValueError(f"{name} class indices must be integers")
    return array.astype(np.int64)


def row_normalize(counts):
    """Turns a count matrix into per-true-class rates (rows sum to 1; empty rows stay 0).

    Example
    -------
    >>> row_normalize(np.array([[1, 3], [0, 0]])).tolist()
    [[0.25, 0.75], [0.0, 0.0]]
    """
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def summarize_confusion(counts, class_names):
    """WA, UA and per-class recall (all in percent) from a confusion matrix.

    Classes absent from the reference (empty rows) are left out of UA, and their
    recall is reported as ``None``.

    Arguments
    ---------
    counts : array-like
        ``(C, C)`` confusion counts, rows are true classes.
    class_names : list of str

    Returns
    -------
    dict
        ``{"WA", "UA", "wF1", "recall": {class: value}, "confusion": counts as lists, "n": total}``

    Example
    -------
    >>> m = summarize_confusion([[3, 1], [2, 2]], ["ang", "sad"])
    >>> m["WA"], m["UA"], m["recall"]
    (62.5, 62.5, {'ang': 75.0, 'sad': 50.0})
    >>> round(m["wF1"], 2)  # F1 ang 2*3/(2*3+1+2) = 66.67, sad 2*2/(2*2+2+1) = 57.14
    61.9
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {counts.shape}")
    if counts.shape[0] != len(class_names):
        raise ValueError(
            f"{counts.shape[0]} classes in the confusion matrix but {len(class_names)} class names"
        )
    if (counts < 0).any():
        raise ValueError("confusion counts must not be negative")
    total = int(counts.sum())
    if total == 0:
        raise ValueError("cannot compute metrics on an empty confusion matrix")
    support = counts.sum(axis=1)
    recalls = {}
    for index, name in enumerate(class_names):
        recalls[name] = (
            float(100.0 * counts[index, index] / support[index]) if support[index] > 0 else None
        )
    present = [value for value in recalls.values() if value is not None]
    return {
        "WA": 100.0 * float(np.trace(counts)) / total,
        "UA": float(np.mean(present)),
        "wF1": weighted_f1(counts),
        "recall": recalls,
        "confusion": counts.tolist(),
        "n": total,
    }


def weighted_f1(counts):
    """The support-weighted mean of the per-class F1 scores, in percent, of a confusion
    matrix (rows are true classes); a class never predicted nor true adds nothing. As
    scikit-learn's ``f1_score(average="weighted")``, which needs label lists.

    Example
    -------
    >>> round(weighted_f1([[3, 1], [2, 2]]), 4)
    61.9048
    """
    counts = np.asarray(counts, dtype=np.float64)
    true_positives = np.diag(counts)
    denominators = counts.sum(axis=0) + counts.sum(axis=1)  # 2TP + FP + FN
    f1 = np.divide(2 * true_positives, denominators, out=np.zeros_like(true_positives), where=denominators > 0)
    support = counts.sum(axis=1)
    return float(100.0 * (f1 * support).sum() / support.sum())


def classification_metrics(true_indices, predicted_indices, class_names):
    """WA, UA, per-class recall and confusion counts of a set of predictions.

    Example
    -------
    >>> m = classification_metrics([0, 0, 0, 1], [0, 0, 1, 1], ["ang", "sad"])
    >>> round(m["WA"], 2), round(m["UA"], 2)
    (75.0, 83.33)
    """
    counts = confusion_matrix(true_indices, predicted_indices, len(class_names))
    return summarize_confusion(counts, class_names)


def plot_confusion_matrix(counts, class_names, path, title=""):
    """Draws a confusion matrix as a PNG: colour is the row-normalised rate, each cell
    shows the rate in percent and the count.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "cm.png")
    >>> plot_confusion_matrix([[3, 1], [2, 2]], ["ang", "sad"], path, "demo")
    >>> os.path.getsize(path) > 0
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmer_lobes.files import atomic_open

    counts = np.asarray(counts, dtype=np.int64)
    rates = row_normalize(counts)
    size = 1.2 + 0.9 * len(class_names)
    figure, axis = plt.subplots(figsize=(size + 1.0, size))
    image = axis.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="recall")
    axis.set_xticks(range(len(class_names)), labels=class_names)
    axis.set_yticks(range(len(class_names)), labels=class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if title:
        axis.set_title(title)
    for row in range(counts.shape[0]):
        for col in range(counts.shape[1]):
            colour = "white" if rates[row, col] > 0.5 else "black"
            axis.text(
                col, row, f"{100 * rates[row, col]:.1f}%\n({counts[row, col]})",
                ha="center", va="center", color=colour, fontsize=8,
            )
    figure.tight_layout()
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)
