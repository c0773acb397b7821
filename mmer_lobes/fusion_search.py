"""Checks and searches on hold-out score sets, used to fit a late fusion
(:mod:`mmer_lobes.fusion`, which re-exports every name defined here).

:func:`align_score_sets` matches the speech and text score sets of one split by utterance id;
:func:`objective_value`, :func:`select_weight` and :func:`weight_grid` are the hold-out grid
search of the weighted fusion; :func:`missing_classes` names the classes a hold-out lacks.
:class:`FusionError` is the error of every fusion module but :mod:`mmer_lobes.fusion_rules`.

Example
-------
>>> speech = ScoreSet(["u1", "u2"], ["ang", "sad"], np.log([[0.8, 0.2], [0.6, 0.4]]), ["ang", "sad"])
>>> text = ScoreSet(["u2", "u1"], ["sad", "ang"], np.log([[0.3, 0.7], [0.5, 0.5]]), ["ang", "sad"])
>>> speech, text = align_score_sets(speech, text)
>>> grid = weight_grid(0.5)
>>> values = [objective_value(w * speech.scores + (1 - w) * text.scores, speech.label_indices()) for w in grid]
>>> values, select_weight(grid, values)
([100.0, 100.0, 50.0], 0.5)
"""
import numpy as np

from mmer_lobes.metrics import classification_metrics
from mmer_lobes.scores import ScoreFileError, ScoreSet

OBJECTIVES = ("UA", "WA")


class FusionError(ScoreFileError):
    """Two score sets cannot be fused, or a fusion is misconfigured or used before fitting.

    A :class:`~mmer_lobes.scores.ScoreFileError`, so one ``except`` catches both.
    :mod:`mmer_lobes.fusion` re-raises a
    :class:`~mmer_lobes.fusion_rules.FusionParamsError` (invalid parameters or scores) as a
    FusionError with the same message.

    Example
    -------
    >>> issubclass(FusionError, ScoreFileError)
    True
    """


def align_score_sets(speech, text, names=("speech", "text")):
    """Checks that two score sets cover the same utterances, labels and classes, and returns
    them with the second one reordered to the row order of the first.

    Raises :class:`FusionError` naming the first difference found: the class lists (names
    or order), the utterance ids (how many are only on either side, and the first of each),
    or the true labels (the first utterance whose labels differ, and how many do).

    Arguments
    ---------
    speech, text : ScoreSet
        The two modalities' scores of the same split.
    names : tuple of str
        How the two sets are called in error messages.

    Returns
    -------
    (ScoreSet, ScoreSet)
        ``speech`` unchanged and ``text`` in the order of ``speech.ids``.

    Example
    -------
    >>> a = ScoreSet(["u1", "u2"], ["ang", "sad"], np.zeros((2, 2)), ["ang", "sad"])
    >>> b = ScoreSet(["u2", "u1"], ["sad", "ang"], np.array([[2.0, 2.0], [1.0, 1.0]]), ["ang", "sad"])
    >>> align_score_sets(a, b)[1].scores.tolist()
    [[1.0, 1.0], [2.0, 2.0]]
    >>> c = ScoreSet(["u1", "u3"], ["ang", "sad"], np.zeros((2, 2)), ["ang", "sad"])
    >>> align_score_sets(a, c)
    Traceback (most recent call last):
    ...
    mmer_lobes.fusion_search.FusionError: 1 ids only in speech (first: u2), 1 only in text (first: u3)
    """
    first, second = names
    if list(speech.classes) != list(text.classes):
        if sorted(speech.classes) == sorted(text.classes):
            raise FusionError(
                f"class order differs: {first} has {list(speech.classes)}, "
                f"{second} has {list(text.classes)}"
            )
        raise FusionError(
            f"classes differ: {first} has {list(speech.classes)}, {second} has {list(text.classes)}"
        )
    for name, score_set in ((first, speech), (second, text)):
        _check_score_set(score_set, name)
    text_rows = {utt_id: row for row, utt_id in enumerate(text.ids)}
    speech_ids = set(speech.ids)
    only_first = [utt_id for utt_id in speech.ids if utt_id not in text_rows]
    only_second = [utt_id for utt_id in text.ids if utt_id not in speech_ids]
    if only_first or only_second:
        parts = [f"{len(only_first)} ids only in {first}"]
        if only_first:
            parts[0] += f" (first: {only_first[0]})"
        parts.append(f"{len(only_second)} only in {second}")
        if only_second:
            parts[1] += f" (first: {only_second[0]})"
        raise FusionError(", ".join(parts))
    order = np.array([text_rows[utt_id] for utt_id in speech.ids], dtype=np.int64)
    text_labels = [text.labels[row] for row in order]
    differing = [
        (utt_id, a, b) for utt_id, a, b in zip(speech.ids, speech.labels, text_labels) if a != b
    ]
    if differing:
        utt_id, a, b = differing[0]
        others = len(differing) - 1
        more = f" ({others} more utterance{'s differ' if others > 1 else ' differs'})" if others else ""
        raise FusionError(f"utterance {utt_id}: label {a} in {first}, {b} in {second}{more}")
    aligned = ScoreSet(
        list(speech.ids), text_labels, np.asarray(text.scores, dtype=np.float64)[order],
        list(text.classes),
    )
    return speech, aligned


def _check_score_set(score_set, name):
    """Shape, finiteness and unique ids of one score set."""
    scores = np.asarray(score_set.scores, dtype=np.float64)
    if scores.shape != (len(score_set.ids), len(score_set.classes)):
        raise FusionError(
            f"{name}: {len(score_set.ids)} ids and {len(score_set.classes)} classes need scores "
            f"of shape ({len(score_set.ids)}, {len(score_set.classes)}), got {scores.shape}"
        )
    if len(score_set.labels) != len(score_set.ids):
        raise FusionError(f"{name}: {len(score_set.ids)} ids but {len(score_set.labels)} labels")
    if len(set(score_set.ids)) != len(score_set.ids):
        raise FusionError(f"{name}: duplicate utterance ids")
    if not np.isfinite(scores).all():
        raise FusionError(f"{name}: scores must be finite")
    unknown = sorted(set(score_set.labels) - set(score_set.classes))
    if unknown:
        raise FusionError(f"{name}: labels {unknown} are not among the classes {list(score_set.classes)}")


def objective_value(scores, label_indices, objective="UA", n_classes=None):
    """UA or WA (percent) of the argmax decisions of ``scores`` against the true labels.

    UA is the mean recall over the classes present in ``label_indices`` (a class with no
    utterance has no recall; :func:`mmer_lobes.metrics.summarize_confusion` leaves it out),
    so a class missing from the hold-out neither counts as 0 nor divides by zero; predicting
    it is still an error for the present classes. :meth:`ScoreFusion.fit` warns about such
    classes and records them (``holdout_missing_classes``).

    Example
    -------
    >>> objective_value(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), [0, 1, 1], "WA")
    66.66666666666667
    >>> objective_value(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), [0, 1, 1], "UA")
    75.0

    Class 1 has no utterance: UA is the mean recall of classes 0 (1/2) and 2 (1/1).

    >>> objective_value(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]), [0, 0, 2], "UA")
    75.0
    """
    objective = _check_objective(objective)
    scores = np.asarray(scores, dtype=np.float64)
    n_classes = scores.shape[1] if n_classes is None else n_classes
    if len(label_indices) == 0:
        raise FusionError("cannot compute a fusion objective on an empty hold-out")
    names = [str(i) for i in range(n_classes)]
    return classification_metrics(label_indices, scores.argmax(axis=1), names)[objective]


def missing_classes(label_indices, classes):
    """The classes (names, in class order) that have no utterance in ``label_indices``.

    Example
    -------
    >>> missing_classes([0, 2, 2], ["ang", "hap", "sad"])
    ['hap']
    """
    present = set(np.asarray(label_indices, dtype=np.int64).tolist())
    return [name for index, name in enumerate(classes) if index not in present]


def select_weight(grid, values, tolerance=1e-9):
    """Picks the best weight of a grid search, breaking ties deterministically.

    The best value wins; among weights whose value is within ``tolerance`` of the best,
    the one closest to 0.5 (equal weighting) is chosen, and between two equally close
    ones the smaller.

    Example
    -------
    >>> select_weight([0.0, 0.25, 0.5, 0.75, 1.0], [60.0, 70.0, 65.0, 70.0, 70.0])
    0.25
    >>> select_weight([0.6, 0.7, 0.8], [80.0, 90.0, 90.0])
    0.7
    """
    grid = np.asarray(grid, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    best = values.max()
    candidates = grid[values >= best - tolerance]
    distance = np.round(np.abs(candidates - 0.5), 12)
    closest = candidates[distance == distance.min()]
    return float(closest.min())


def weight_grid(step):
    """The weights searched by :class:`WeightedFusion`: 0, step, 2 step, ..., and 1.

    Example
    -------
    >>> weight_grid(0.25).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> len(weight_grid(0.01)), float(weight_grid(0.01)[94])
    (101, 0.94)
    """
    step = float(step)
    if not 0.0 < step <= 1.0:
        raise FusionError(f"the weight grid step must lie in (0, 1], got {step}")
    count = int(np.floor(1.0 / step + 1e-9))
    grid = np.round(np.arange(count + 1) * step, 10)
    if grid[-1] < 1.0:
        grid = np.append(grid, 1.0)
    return grid


def _check_objective(objective):
    name = str(objective).upper()
    if name not in OBJECTIVES:
        raise FusionError(f"unknown fusion objective '{objective}', choose one of {list(OBJECTIVES)}")
    return name

