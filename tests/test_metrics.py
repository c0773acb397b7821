"""WA, UA, per-class recall and confusion matrices (mmer_lobes.metrics) on known cases."""
import os

import numpy as np
import pytest

from mmer_lobes.metrics import (
    classification_metrics,
    confusion_matrix,
    plot_confusion_matrix,
    row_normalize,
    summarize_confusion,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_counts_true_rows_predicted_columns():
    counts = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert counts.dtype == np.int64
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


def test_confusion_matrix_input_errors():
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        confusion_matrix([0, 1, 1], [0, 1], 2)
    with pytest.raises(ValueError, match=r"true class indices must lie in \[0, 2\)"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="predicted class indices"):
        confusion_matrix([0, 1], [-1, 1], 2)


def test_summary_of_a_known_matrix():
    # ang: 8 of 10 right, hap: 1 of 4, neu: 6 of 6, sad: 0 of 2
    counts = [[8, 1, 1, 0], [2, 1, 1, 0], [0, 0, 6, 0], [1, 0, 1, 0]]
    metrics = summarize_confusion(counts, ["ang", "hap", "neu", "sad"])
    assert metrics["WA"] == pytest.approx(100 * 15 / 22)
    assert metrics["UA"] == pytest.approx((80 + 25 + 100 + 0) / 4)
    assert metrics["recall"] == {"ang": 80.0, "hap": 25.0, "neu": 100.0, "sad": 0.0}
    assert metrics["confusion"] == counts and metrics["n"] == 22


def test_ua_differs_from_wa_on_imbalanced_classes():
    # always predicting the majority class: high WA, chance-level UA
    metrics = classification_metrics([0] * 9 + [1], [0] * 10, ["neu", "ang"])
    assert metrics["WA"] == 90.0 and metrics["UA"] == 50.0


def test_class_without_support_is_left_out_of_ua():
    counts = [[3, 1, 0], [0, 0, 0], [0, 1, 1]]  # no true 'hap'
    metrics = summarize_confusion(counts, ["ang", "hap", "sad"])
    assert metrics["recall"]["hap"] is None
    assert metrics["UA"] == pytest.approx((75.0 + 50.0) / 2)
    assert metrics["WA"] == pytest.approx(100 * 4 / 6)


def test_perfect_and_empty():
    metrics = classification_metrics([0, 1, 2], [0, 1, 2], ["a", "b", "c"])
    assert metrics["WA"] == metrics["UA"] == 100.0
    with pytest.raises(ValueError, match="empty"):
        summarize_confusion([[0, 0], [0, 0]], ["a", "b"])


def test_row_normalize():
    rates = row_normalize(np.array([[1, 3], [0, 0], [2, 2]]))
    assert rates.tolist() == [[0.25, 0.75], [0.0, 0.0], [0.5, 0.5]]
    assert row_normalize([[5, 0, 5]]).tolist() == [[0.5, 0.0, 0.5]]
    assert row_normalize([[1, 2, 1], [0, 0, 7]]).tolist() == [[0.25, 0.5, 0.25], [0.0, 0.0, 1.0]]


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "plots" / "confusion.png"
    plot_confusion_matrix([[3, 1, 0], [0, 0, 0], [2, 0, 5]], ["ang", "hap", "sad"], str(path), "t")
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
    assert os.listdir(path.parent) == ["confusion.png"]  # no temporary file left behind


@pytest.mark.parametrize(
    "counts, names",
    [
        ([[1, 0], [0, 1]], ["a"]),  # fewer names than classes: silently drops class b
        ([[1, 0], [0, 1]], ["a", "b", "c"]),  # more names: IndexError from numpy
        ([[1, 0, 1], [0, 1, 1]], ["a", "b"]),  # not square
        ([[1, -1], [0, 1]], ["a", "b"]),  # negative count: WA 200 %
    ],
)
def test_summary_rejects_malformed_input(counts, names):
    with pytest.raises(ValueError):
        summarize_confusion(counts, names)


def test_confusion_matrix_rejects_non_integer_indices():
    with pytest.raises(ValueError):
        confusion_matrix([0.7, 1.2], [0, 1], 2)


def test_written_files_get_normal_permissions(tmp_path):
    import stat

    path = tmp_path / "cm.png"
    old = os.umask(0o022)
    try:
        plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], str(path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def _reference_metrics(true, predicted, n_classes):
    """WA, UA over the classes present in ``true``, per-class recall (None when absent) and
    confusion counts, written out with plain numpy (independent of scikit-learn)."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(true, predicted):
        counts[t, p] += 1
    recall = [
        100.0 * np.sum((true == c) & (predicted == c)) / np.sum(true == c) if np.any(true == c) else None
        for c in range(n_classes)
    ]
    present = [value for value in recall if value is not None]
    return 100.0 * np.mean(true == predicted), sum(present) / len(present), recall, counts.tolist()


def _label_sets():
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        true = rng.integers(0, 4, size=50 + 17 * seed)
        yield f"random-{seed}", true, np.where(rng.random(true.size) < 0.6, true, rng.integers(0, 4, true.size))
    rng = np.random.default_rng(3)
    true = rng.choice([0, 1, 3], size=40)  # 'neu' never in the truth but predicted
    yield "absent-from-truth", true, rng.integers(0, 4, size=40)
    rng = np.random.default_rng(4)
    true = rng.integers(0, 4, size=40)  # 'hap' never predicted
    yield "never-predicted", true, np.where(true == 1, 0, rng.choice([0, 2, 3], size=40))
    yield "single-class", np.full(5, 2), np.full(5, 2)  # one class in truth and predictions


@pytest.mark.parametrize("case, true, predicted", list(_label_sets()))
def test_classification_metrics_match_a_plain_numpy_reference(case, true, predicted):
    import warnings

    names = ["ang", "hap", "neu", "sad"]
    wa, ua, recall, counts = _reference_metrics(true, predicted, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from scikit-learn may leak
        metrics = classification_metrics(true.tolist(), predicted.tolist(), names)
    assert metrics["WA"] == pytest.approx(wa, abs=1e-12, rel=0)
    assert metrics["UA"] == pytest.approx(ua, abs=1e-12, rel=0)
    assert metrics["confusion"] == counts and metrics["n"] == len(true)
    for name, expected in zip(names, recall):
        if expected is None:
            assert metrics["recall"][name] is None
        else:
            assert metrics["recall"][name] == pytest.approx(expected, abs=1e-12, rel=0)
    if case == "absent-from-truth":
        assert metrics["recall"]["neu"] is None and 2 in predicted
    if case == "never-predicted":
        assert 1 not in predicted and metrics["recall"]["hap"] == 0.0


@pytest.mark.parametrize("case, true, predicted", list(_label_sets()))
def test_weighted_f1_matches_scikit_learn(case, true, predicted):
    import warnings

    from sklearn.metrics import f1_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about ill-defined F1 of absent classes
        expected = 100.0 * f1_score(true, predicted, labels=range(4), average="weighted", zero_division=0)
    metrics = classification_metrics(true.tolist(), predicted.tolist(), ["ang", "hap", "neu", "sad"])
    assert metrics["wF1"] == pytest.approx(expected, abs=1e-10, rel=0)
