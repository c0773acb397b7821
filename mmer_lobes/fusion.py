"""Late (score-level) fusion of a speech and a text emotion classifier.

Both modalities write score files (see :mod:`mmer_lobes.scores`): per utterance, the
log-posterior of every class. Fusion combines the two ``(N, C)`` score matrices of one fold
into one, with parameters learned on the hold-out split and applied to the test split:

``weighted``  S = w1 * S_speech + (1 - w1) * S_text, w1 searched on the hold-out over a grid
              (Padi et al. 2022, fusion (a); the paper found w1 = 0.94).
``znorm``     each modality's scores are z-normalised per class column with hold-out mean and
              standard deviation (floored relative to the modality's typical one), then
              combined with w1 = 0.5 (the paper's fusion (b)).
``logreg``    multinomial logistic regression on the concatenated log-posteriors of both
              modalities, trained on the hold-out (not in the paper).

Every method is a small object with ``fit(holdout_speech, holdout_text)``,
``apply(speech, text)`` and ``to_dict()`` / ``from_dict()``, whose dict holds only plain JSON
types, so that a fitted fusion can travel inside an exported model's hyperparameters.
A class with no hold-out utterance is warned about and recorded (``holdout_missing_classes``);
the hold-out UA is then over the present classes.

Example
-------
>>> classes = ["ang", "sad"]
>>> speech = ScoreSet(["u1", "u2"], ["ang", "sad"], np.log([[0.8, 0.2], [0.6, 0.4]]), classes)
>>> text = ScoreSet(["u2", "u1"], ["sad", "ang"], np.log([[0.1, 0.9], [0.5, 0.5]]), classes)
>>> fusion = make_fusion("weighted", step=0.1).fit(speech, text)
>>> fusion.weight
0.5
>>> fusion.apply(speech, text).argmax(axis=1).tolist()
[0, 1]
"""
import inspect
import logging
import warnings

import numpy as np

from mmer_lobes.metrics import classification_metrics
from mmer_lobes.scores import ScoreFileError, ScoreSet

logger = logging.getLogger(__name__)

OBJECTIVES = ("UA", "WA")

# Logit given by the logistic-regression fusion to a class absent from its hold-out
# (finite, so that it survives JSON and score files; exp(-1e4) is 0 in float64).
ABSENT_CLASS_LOGIT = -1.0e4

# A hold-out score column whose standard deviation is at most this (in nats) is constant:
# score files hold 6 decimals (mmer_lobes.scores.write_scores), so a smaller spread is
# rounding, not information.
CONSTANT_STD = 1.0e-6


class FusionError(ScoreFileError):
    """Two score sets cannot be fused, or a fusion is misconfigured or used before fitting.

    A :class:`~mmer_lobes.scores.ScoreFileError`, so one ``except`` catches both.

    Example
    -------
    >>> issubclass(FusionError, ScoreFileError)
    True
    """


def log_softmax(scores):
    """Normalises each row of ``scores`` into log-posteriors (rows of ``exp`` sum to 1).

    Example
    -------
    >>> out = log_softmax(np.array([[0.0, 0.0], [2.0, 0.0]]))
    >>> np.exp(out).sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    >>> out[0].round(4).tolist()
    [-0.6931, -0.6931]
    """
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


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
    mmer_lobes.fusion.FusionError: 1 ids only in speech (first: u2), 1 only in text (first: u3)
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


class ScoreFusion:
    """Base of the fusion methods: fit on hold-out score sets, apply to any score sets.

    ``fit`` takes two :class:`~mmer_lobes.scores.ScoreSet` (aligned by utterance id, see
    :func:`align_score_sets`). ``apply`` takes two ScoreSets (returned rows follow the first
    one's ids) or two ``(N, C)`` arrays whose rows already correspond, and returns the fused
    ``(N, C)`` scores.

    Example
    -------
    >>> sorted(FUSION_METHODS)
    ['logreg', 'weighted', 'znorm']
    """

    method = None

    def __init__(self):
        self.classes = None
        self.holdout_missing_classes = None

    @property
    def fitted(self):
        """Whether the parameters are learned (or loaded).

        Example
        -------
        >>> ZNormFusion().fitted
        False
        """
        return self.classes is not None

    def fit(self, speech, text):
        """Learns the parameters on the hold-out score sets; returns ``self``.

        Example
        -------
        >>> s = ScoreSet(["u1", "u2"], ["a", "b"], np.log([[0.9, 0.1], [0.4, 0.6]]), ["a", "b"])
        >>> t = ScoreSet(["u2", "u1"], ["b", "a"], np.log([[0.7, 0.3], [0.6, 0.4]]), ["a", "b"])
        >>> WeightedFusion(step=0.5).fit(s, t).weight
        1.0
        """
        speech, text = align_score_sets(speech, text)
        labels = speech.label_indices()
        if labels.size == 0:
            raise FusionError(f"the {self.method} fusion cannot be fitted on an empty hold-out")
        self.classes = list(speech.classes)
        # A class with fewer than 2 training utterances in a fold can be missing from the
        # hold-out: nothing is learned about it there, and the hold-out UA is over the others.
        self.holdout_missing_classes = missing_classes(labels, self.classes)
        if self.holdout_missing_classes:
            logger.warning(
                "%s fusion: the hold-out has no utterance of class(es) %s; its UA averages the "
                "recalls of the %d present classes%s",
                self.method, self.holdout_missing_classes,
                len(self.classes) - len(self.holdout_missing_classes), self._missing_note(),
            )
        self._fit(
            np.asarray(speech.scores, dtype=np.float64),
            np.asarray(text.scores, dtype=np.float64),
            labels,
        )
        return self

    def _missing_note(self):
        """What the method does with a class missing from the hold-out, for the warning."""
        return ""

    def apply(self, speech, text):
        """Fused ``(N, C)`` scores of two score sets (or two aligned arrays).

        Example
        -------
        >>> fusion = WeightedFusion.from_dict({"method": "weighted", "classes": ["a", "b"], "weight": 0.5})
        >>> fusion.apply(np.array([[-1.0, -3.0]]), np.array([[-3.0, -1.0]])).tolist()
        [[-2.0, -2.0]]
        """
        if not self.fitted:
            raise FusionError(f"the {self.method} fusion must be fitted (or loaded) before use")
        if isinstance(speech, ScoreSet) or isinstance(text, ScoreSet):
            speech, text = align_score_sets(speech, text)
            if list(speech.classes) != self.classes:
                raise FusionError(
                    f"the scores have classes {list(speech.classes)}, the {self.method} fusion "
                    f"was fitted on {self.classes}"
                )
            speech, text = speech.scores, text.scores
        speech = np.asarray(speech, dtype=np.float64)
        text = np.asarray(text, dtype=np.float64)
        if speech.ndim != 2 or speech.shape != text.shape or speech.shape[1] != len(self.classes):
            raise FusionError(
                f"expected two (N, {len(self.classes)}) score arrays, got {speech.shape} and "
                f"{text.shape}"
            )
        if not (np.isfinite(speech).all() and np.isfinite(text).all()):
            raise FusionError("scores must be finite")
        return self._apply(speech, text)

    def to_dict(self):
        """The learned parameters as plain JSON types (``method`` and ``classes`` included).

        Example
        -------
        >>> s = ScoreSet(["u1", "u2"], ["a", "b"], np.array([[0.0, 1.0], [2.0, 1.0]]), ["a", "b"])
        >>> ZNormFusion().fit(s, s).to_dict()["speech_mean"]
        [1.0, 1.0]
        """
        if not self.fitted:
            raise FusionError(f"the {self.method} fusion has no parameters before fitting")
        return {
            "method": self.method, "classes": list(self.classes),
            "holdout_missing_classes": list(self.holdout_missing_classes or []),
            **self._params(),
        }

    @classmethod
    def from_dict(cls, params):
        """Rebuilds a fitted fusion from :meth:`to_dict`'s output.

        Example
        -------
        >>> s = ScoreSet(["u1", "u2"], ["a", "b"], np.array([[0.0, 1.0], [2.0, 1.0]]), ["a", "b"])
        >>> fitted = ZNormFusion().fit(s, s)
        >>> ZNormFusion.from_dict(fitted.to_dict()).apply(s, s).tolist() == fitted.apply(s, s).tolist()
        True
        """
        if params.get("method") != cls.method:
            raise FusionError(f"parameters of a '{params.get('method')}' fusion, not '{cls.method}'")
        fusion = cls(**{k: params[k] for k in cls._options() if k in params})
        fusion.classes = list(params["classes"])
        # absent from parameters saved before it was recorded
        fusion.holdout_missing_classes = list(params.get("holdout_missing_classes") or [])
        fusion._load(params)
        return fusion

    @classmethod
    def _options(cls):
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


class WeightedFusion(ScoreFusion):
    """``S = w1 * S_speech + (1 - w1) * S_text``, with ``w1`` searched on the hold-out.

    The grid is 0, ``step``, 2 ``step``, ..., 1. The objective (UA or WA of the argmax
    decisions on the hold-out) picks ``w1``; ties go to the ``w1`` closest to 0.5, then to
    the smaller one (:func:`select_weight`). The fused scores are not normalised (they are a
    convex combination of log-posteriors); apply :func:`log_softmax` for log-posteriors.

    Arguments
    ---------
    step : float
        Grid step in (0, 1].
    objective : str
        ``"UA"`` or ``"WA"``.

    Example
    -------
    >>> fusion = WeightedFusion.from_dict({"method": "weighted", "classes": ["a", "b"], "weight": 0.25})
    >>> fusion.apply(np.array([[0.0, -4.0]]), np.array([[-4.0, 0.0]])).tolist()
    [[-3.0, -1.0]]
    """

    method = "weighted"

    def __init__(self, step=0.01, objective="UA"):
        super().__init__()
        self.grid = weight_grid(step)
        self.step = float(step)
        self.objective = _check_objective(objective)
        self.weight = None
        self.holdout_objective = None
        self.curve = None

    def _fit(self, speech, text, labels):
        values = [
            objective_value(w * speech + (1.0 - w) * text, labels, self.objective, speech.shape[1])
            for w in self.grid
        ]
        self.curve = [float(v) for v in values]
        self.weight = select_weight(self.grid, values)
        self.holdout_objective = float(max(values))

    def _apply(self, speech, text):
        return self.weight * speech + (1.0 - self.weight) * text

    def _params(self):
        return {"weight": self.weight, "step": self.step, "objective": self.objective}

    def _load(self, params):
        weight = float(params["weight"])
        if not 0.0 <= weight <= 1.0:
            raise FusionError(f"the fusion weight must lie in [0, 1], got {weight}")
        self.weight = weight


class ZNormFusion(ScoreFusion):
    """Z-normalises each modality per class column with hold-out statistics, then
    ``S = w1 * Z_speech + (1 - w1) * Z_text`` with a fixed ``w1`` (0.5 in the paper).

    Means and (population) standard deviations are taken over the hold-out utterances. A
    column's standard deviation is floored at ``std_floor`` times the median standard
    deviation of that modality's non-constant columns (the floor is logged and recorded in
    ``floored_columns``); a modality whose columns are all constant (std at most
    ``CONSTANT_STD``) cannot be normalised and is refused. The fused scores are not
    normalised; apply :func:`log_softmax` for log-posterior-like scores.

    Why relative to the modality's median: a tiny floor (the former 1e-8) multiplies any test
    deviation of a (near-)constant hold-out column by up to 1e8, so that one column decides
    every fused score. Flooring at a fraction of the modality's typical spread bounds any
    column's amplification to ``1 / std_floor`` times that of a typical column (10 times at
    0.1), while keeping z-norm's invariance to the scale of each modality's scores, which an
    absolute floor in nats would break.

    Arguments
    ---------
    weight : float
        ``w1``, the speech weight, in [0, 1].
    std_floor : float
        Fraction in (0, 1] of the modality's median column standard deviation below which
        a column's standard deviation is raised to it.

    Example
    -------
    >>> speech = ScoreSet(["u1", "u2"], ["a", "b"], np.array([[1.0, 0.0], [3.0, 0.0]]), ["a", "b"])
    >>> text = ScoreSet(["u1", "u2"], ["a", "b"], np.array([[2.0, 1.0], [6.0, 3.0]]), ["a", "b"])
    >>> fusion = ZNormFusion().fit(speech, text)
    >>> fusion.speech_mean.tolist(), fusion.speech_std.tolist(), fusion.floored_columns
    ([2.0, 0.0], [1.0, 0.1], {'speech': ['b'], 'text': []})
    >>> fusion.apply(np.array([[5.0, 0.0]]), np.array([[8.0, 2.0]])).tolist()
    [[2.5, 0.0]]
    """

    method = "znorm"
    MODALITIES = ("speech", "text")

    def __init__(self, weight=0.5, std_floor=0.1):
        super().__init__()
        self.weight = float(weight)
        if not 0.0 <= self.weight <= 1.0:
            raise FusionError(f"the z-norm fusion weight must lie in [0, 1], got {weight}")
        self.std_floor = float(std_floor)
        if not 0.0 < self.std_floor <= 1.0:
            raise FusionError(f"the z-norm std_floor must lie in (0, 1], got {std_floor}")
        self.speech_mean = self.speech_std = self.text_mean = self.text_std = None
        self.floored_columns = None

    def _fit(self, speech, text, labels):
        self.floored_columns = {}
        for modality, scores in zip(self.MODALITIES, (speech, text)):
            std, floored = self._floored_std(scores, modality)
            setattr(self, f"{modality}_mean", scores.mean(axis=0))
            setattr(self, f"{modality}_std", std)
            self.floored_columns[modality] = floored

    def _floored_std(self, scores, modality):
        """Column standard deviations of one modality with the floor applied, and the
        names of the floored columns."""
        std = scores.std(axis=0)
        informative = std > CONSTANT_STD
        if not informative.any():
            raise FusionError(
                f"z-norm fusion: every class column of the {modality} hold-out scores is "
                f"constant (standard deviation at most {CONSTANT_STD:g}), so the {modality} "
                "scores carry no information to normalise; check the "
                f"{modality} model's scores/holdout.csv"
            )
        reference = float(np.median(std[informative]))
        floor = self.std_floor * reference
        floored = []
        for index in np.flatnonzero(std < floor):
            logger.warning(
                "z-norm fusion: the %s hold-out scores of class %s have standard deviation "
                "%.3g, below %g x %.3g (the median of the %s columns); floored at %.3g",
                modality, self.classes[index], std[index], self.std_floor, reference, modality,
                floor,
            )
            floored.append(self.classes[index])
        return np.maximum(std, floor), floored

    def _apply(self, speech, text):
        z_speech = (speech - self.speech_mean) / self.speech_std
        z_text = (text - self.text_mean) / self.text_std
        return self.weight * z_speech + (1.0 - self.weight) * z_text

    def _params(self):
        return {
            "weight": self.weight, "std_floor": self.std_floor,
            "floored_columns": {k: list(v) for k, v in self.floored_columns.items()},
            "speech_mean": self.speech_mean.tolist(), "speech_std": self.speech_std.tolist(),
            "text_mean": self.text_mean.tolist(), "text_std": self.text_std.tolist(),
        }

    def _load(self, params):
        # Parameters saved before the relative floor hold ``epsilon`` instead of ``std_floor``
        # and no ``floored_columns``: their stored standard deviations are used as they are.
        n = len(self.classes)
        for key in ("speech_mean", "speech_std", "text_mean", "text_std"):
            value = np.asarray(params[key], dtype=np.float64)
            if value.shape != (n,):
                raise FusionError(f"{key} must hold {n} values, got shape {value.shape}")
            if key.endswith("std") and not (value > 0).all():
                raise FusionError(f"{key} must be positive")
            setattr(self, key, value)
        floored = params.get("floored_columns") or {}
        self.floored_columns = {m: list(floored.get(m) or []) for m in self.MODALITIES}


class LogRegFusion(ScoreFusion):
    """Multinomial logistic regression on ``[S_speech, S_text]`` (2 C features), trained on
    the hold-out with scikit-learn (L2 penalty, inverse strength ``C``).

    Features are standardised with hold-out statistics for training (standard deviations
    floored at ``epsilon``), and the standardisation is folded back into ``coef`` and
    ``intercept``, so that ``apply`` is ``log_softmax([S_speech, S_text] @ coef.T + intercept)``
    on the raw scores: proper log-posteriors. A class absent from the hold-out gets a logit of
    ``ABSENT_CLASS_LOGIT``. Only ``fit`` needs scikit-learn.

    Arguments
    ---------
    C : float
        Inverse L2 regularisation strength (scikit-learn's ``C``).
    max_iter : int
        Iteration limit of the L-BFGS solver.
    epsilon : float
        Floor of the feature standard deviations.

    Example
    -------
    >>> params = {"method": "logreg", "classes": ["a", "b"], "coef": [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]], "intercept": [0.0, 0.0]}
    >>> out = LogRegFusion.from_dict(params).apply(np.log([[0.9, 0.1]]), np.log([[0.5, 0.5]]))
    >>> np.exp(out).round(3).tolist()
    [[0.9, 0.1]]
    """

    method = "logreg"

    def __init__(self, C=1.0, max_iter=1000, epsilon=1e-8):
        super().__init__()
        self.C = float(C)
        if not self.C > 0.0:
            raise FusionError(f"the logistic-regression C must be positive, got {C}")
        self.max_iter = int(max_iter)
        if self.max_iter < 1:
            raise FusionError(f"max_iter must be at least 1, got {max_iter}")
        self.epsilon = float(epsilon)
        if not self.epsilon > 0.0:
            raise FusionError(f"epsilon must be positive, got {epsilon}")
        self.coef = self.intercept = None
        self.converged = None

    def _missing_note(self):
        return f"; the logistic regression gives them the logit {ABSENT_CLASS_LOGIT:g}"

    def _fit(self, speech, text, labels):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        features = np.concatenate([speech, text], axis=1)
        present = np.unique(labels)
        if present.size < 2:
            raise FusionError(
                "the logistic-regression fusion needs at least two classes in the hold-out, "
                f"found only {[self.classes[i] for i in present]}"
            )
        mean = features.mean(axis=0)
        std = np.maximum(features.std(axis=0), self.epsilon)
        model = LogisticRegression(C=self.C, max_iter=self.max_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit((features - mean) / std, labels)
        self.converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        if not self.converged:
            logger.warning(
                "logistic-regression fusion did not converge in %d iterations; raise max_iter",
                self.max_iter,
            )
        if present.size == 2:  # scikit-learn fits one logit for two classes
            coef = np.concatenate([-model.coef_ / 2.0, model.coef_ / 2.0])
            intercept = np.concatenate([-model.intercept_ / 2.0, model.intercept_ / 2.0])
        else:
            coef, intercept = model.coef_, model.intercept_
        n_classes = len(self.classes)
        self.coef = np.zeros((n_classes, features.shape[1]))
        self.intercept = np.full(n_classes, ABSENT_CLASS_LOGIT)
        rows = model.classes_.astype(np.int64)
        self.coef[rows] = coef / std
        self.intercept[rows] = intercept - (coef / std) @ mean

    def _apply(self, speech, text):
        features = np.concatenate([speech, text], axis=1)
        return log_softmax(features @ self.coef.T + self.intercept)

    def _params(self):
        return {
            "C": self.C, "max_iter": self.max_iter, "epsilon": self.epsilon,
            "coef": self.coef.tolist(), "intercept": self.intercept.tolist(),
        }

    def _load(self, params):
        n = len(self.classes)
        coef = np.asarray(params["coef"], dtype=np.float64)
        intercept = np.asarray(params["intercept"], dtype=np.float64)
        if coef.shape != (n, 2 * n) or intercept.shape != (n,):
            raise FusionError(
                f"logreg parameters for {n} classes need coef ({n}, {2 * n}) and intercept "
                f"({n},), got {coef.shape} and {intercept.shape}"
            )
        self.coef, self.intercept = coef, intercept


FUSION_METHODS = {cls.method: cls for cls in (WeightedFusion, ZNormFusion, LogRegFusion)}


def make_fusion(method, **options):
    """Creates an unfitted fusion by name: ``weighted``, ``znorm`` or ``logreg``.

    Example
    -------
    >>> make_fusion("znorm", std_floor=0.05).std_floor
    0.05
    >>> make_fusion("average")
    Traceback (most recent call last):
    ...
    mmer_lobes.fusion.FusionError: unknown fusion method 'average', choose one of ['weighted', 'znorm', 'logreg']
    """
    if method not in FUSION_METHODS:
        raise FusionError(
            f"unknown fusion method '{method}', choose one of {list(FUSION_METHODS)}"
        )
    cls = FUSION_METHODS[method]
    unknown = sorted(set(options) - set(cls._options()))
    if unknown:
        raise FusionError(
            f"unknown option(s) {unknown} for the {method} fusion (known: {cls._options()})"
        )
    return cls(**options)


def fusion_from_dict(params):
    """Rebuilds any fitted fusion from its :meth:`ScoreFusion.to_dict` output.

    Example
    -------
    >>> fusion = fusion_from_dict({"method": "weighted", "classes": ["a", "b"], "weight": 0.94})
    >>> type(fusion).__name__, fusion.weight
    ('WeightedFusion', 0.94)
    """
    method = params.get("method") if isinstance(params, dict) else None
    if method not in FUSION_METHODS:
        raise FusionError(f"unknown fusion method '{method}' in fusion parameters")
    return FUSION_METHODS[method].from_dict(params)
