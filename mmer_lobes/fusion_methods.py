"""The three late-fusion methods, each a :class:`~mmer_lobes.fusion_base.ScoreFusion`:

``weighted``  :class:`WeightedFusion`, S = w1 * S_speech + (1 - w1) * S_text, w1 searched on
              the hold-out over a grid (Padi et al. 2022, fusion (a)).
``znorm``     :class:`ZNormFusion`, each modality z-normalised per class column with hold-out
              statistics, then combined with a fixed w1 (the paper's fusion (b)).
``logreg``    :class:`LogRegFusion`, multinomial logistic regression on the concatenated
              log-posteriors of both modalities, trained on the hold-out (not in the paper).

Each class learns its parameters from the hold-out arrays (``_fit``) and applies them with
the formulas of :mod:`mmer_lobes.fusion_rules`; the alignment, checks and JSON round trip are
:class:`~mmer_lobes.fusion_base.ScoreFusion`'s. Create them by name with
:func:`mmer_lobes.fusion.make_fusion`; :mod:`mmer_lobes.fusion` re-exports every name defined
here.

Example
-------
>>> from mmer_lobes.scores import ScoreSet
>>> s = ScoreSet(["u1", "u2"], ["a", "b"], np.log([[0.9, 0.1], [0.4, 0.6]]), ["a", "b"])
>>> t = ScoreSet(["u2", "u1"], ["b", "a"], np.log([[0.3, 0.7], [0.5, 0.5]]), ["a", "b"])
>>> [type(f).__name__ for f in (WeightedFusion(), ZNormFusion(), LogRegFusion()) if f.fit(s, t).fitted]
['WeightedFusion', 'ZNormFusion', 'LogRegFusion']
"""
import logging
import warnings

import numpy as np

from mmer_lobes.fusion_base import ScoreFusion
from mmer_lobes.fusion_rules import logreg_scores, weighted_scores, znorm_scores
from mmer_lobes.fusion_search import (
    FusionError,
    _check_objective,
    objective_value,
    select_weight,
    weight_grid,
)

# Not __name__: the fusion warnings have always been logged on "mmer_lobes.fusion" (the
# module that defined every fusion class before the split), and recipes/fuse.py and the
# tests capture that logger.
logger = logging.getLogger("mmer_lobes.fusion")

# Logit given by the logistic-regression fusion to a class absent from its hold-out
# (finite, so that it survives JSON and score files; exp(-1e4) is 0 in float64).
ABSENT_CLASS_LOGIT = -1.0e4

# A hold-out score column whose standard deviation is at most this (in nats) is constant:
# score files hold 6 decimals (mmer_lobes.scores.write_scores), so a smaller spread is
# rounding, not information.
CONSTANT_STD = 1.0e-6


class WeightedFusion(ScoreFusion):
    """``S = w1 * S_speech + (1 - w1) * S_text``, with ``w1`` searched on the hold-out.

    The grid is 0, ``step``, 2 ``step``, ..., 1. The objective (UA or WA of the argmax
    decisions on the hold-out) picks ``w1``; ties go to the ``w1`` closest to 0.5, then to
    the smaller one (:func:`~mmer_lobes.fusion_search.select_weight`). The fused scores are
    not normalised (they are a convex combination of log-posteriors); apply
    :func:`~mmer_lobes.fusion_rules.log_softmax` for log-posteriors.

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
        return weighted_scores(speech, text, self.weight)

    def _params(self):
        return {"weight": self.weight, "step": self.step, "objective": self.objective}


class ZNormFusion(ScoreFusion):
    """Z-normalises each modality per class column with hold-out statistics, then
    ``S = w1 * Z_speech + (1 - w1) * Z_text`` with a fixed ``w1`` (0.5 in the paper).

    Means and (population) standard deviations are taken over the hold-out utterances. A
    column's standard deviation is floored at ``std_floor`` times the median standard
    deviation of that modality's non-constant columns (the floor is logged and recorded in
    ``floored_columns``); a modality whose columns are all constant (std at most
    ``CONSTANT_STD``) cannot be normalised and is refused. The fused scores are not
    normalised; apply :func:`~mmer_lobes.fusion_rules.log_softmax` for log-posterior-like
    scores.

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
    >>> from mmer_lobes.scores import ScoreSet
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
        return znorm_scores(speech, text, self.weight, self.speech_mean, self.speech_std,
                            self.text_mean, self.text_std)

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
        return logreg_scores(speech, text, self.coef, self.intercept)

    def _params(self):
        return {
            "C": self.C, "max_iter": self.max_iter, "epsilon": self.epsilon,
            "coef": self.coef.tolist(), "intercept": self.intercept.tolist(),
        }
