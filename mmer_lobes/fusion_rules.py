"""Applying a fitted late fusion of a speech and a text emotion classifier.

:mod:`mmer_lobes.fusion` fits a fusion on the hold-out scores and writes its parameters as a
dict of plain JSON types (``ScoreFusion.to_dict()``, stored in ``fusion_params.json`` and in
an exported model's ``hyperparams.yaml``). This module holds all that is needed to apply such
a dict: its validation (:class:`LateFusion`) and the formula of every method, which the
fitting classes call too. It imports only numpy and :class:`mmer_lobes.errors.ProjectError`
(and may import the standard library), so that it can be copied into an exported model.

``weighted``  S = w1 * S_speech + (1 - w1) * S_text
``znorm``     S = w1 * (S_speech - mean_speech) / std_speech + (1 - w1) * (S_text - mean_text) / std_text
``logreg``    S = log_softmax([S_speech, S_text] @ coef.T + intercept)

Example
-------
>>> params = {"method": "weighted", "classes": ["ang", "sad"], "weight": 0.75}
>>> fusion = LateFusion(params)
>>> fusion.scores(np.array([[-0.2, -1.8]]), np.array([[-1.0, -0.6]])).tolist()
[[-0.4, -1.5]]
"""
import numpy as np

from mmer_lobes.errors import ProjectError

# The per-class statistics of the z-norm fusion.
_ZNORM_KEYS = ("speech_mean", "speech_std", "text_mean", "text_std")


class FusionParamsError(ProjectError, ValueError):
    """Fusion parameters are invalid, or scores do not fit them (shape, non-finite values).

    Example
    -------
    >>> LateFusion({"method": "mean", "classes": ["ang", "sad"]})
    Traceback (most recent call last):
    ...
    mmer_lobes.fusion_rules.FusionParamsError: unknown fusion method 'mean' in fusion parameters, choose one of ['weighted', 'znorm', 'logreg']
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


def weighted_scores(speech, text, weight):
    """The ``weighted`` fusion: ``weight * speech + (1 - weight) * text``.

    Example
    -------
    >>> weighted_scores(np.array([[0.0, -4.0]]), np.array([[-4.0, 0.0]]), 0.25).tolist()
    [[-3.0, -1.0]]
    """
    return weight * speech + (1.0 - weight) * text


def znorm_scores(speech, text, weight, speech_mean, speech_std, text_mean, text_std):
    """The ``znorm`` fusion: each modality z-normalised per class column with the given
    statistics, then weighted as in :func:`weighted_scores`.

    Example
    -------
    >>> znorm_scores(np.array([[5.0, 0.0]]), np.array([[8.0, 2.0]]), 0.5,
    ...              np.array([2.0, 0.0]), np.array([1.0, 0.1]), np.array([4.0, 2.0]),
    ...              np.array([2.0, 1.0])).tolist()
    [[2.5, 0.0]]
    """
    z_speech = (speech - speech_mean) / speech_std
    z_text = (text - text_mean) / text_std
    return weighted_scores(z_speech, z_text, weight)


def logreg_scores(speech, text, coef, intercept):
    """The ``logreg`` fusion: log-posteriors of a multinomial logistic regression on the
    concatenated scores, ``log_softmax([speech, text] @ coef.T + intercept)``.

    Example
    -------
    >>> coef = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
    >>> out = logreg_scores(np.log([[0.9, 0.1]]), np.log([[0.5, 0.5]]), coef, np.zeros(2))
    >>> np.exp(out).round(3).tolist()
    [[0.9, 0.1]]
    """
    features = np.concatenate([speech, text], axis=1)
    return log_softmax(features @ coef.T + intercept)


_FORMULAS = {"weighted": weighted_scores, "znorm": znorm_scores, "logreg": logreg_scores}


class LateFusion:
    """A fitted fusion, rebuilt and checked from its parameter dict (``ScoreFusion.to_dict()``).

    Arguments
    ---------
    params : dict
        ``method`` (``weighted``, ``znorm`` or ``logreg``), ``classes`` (list of class names)
        and the method's parameters: ``weight`` in [0, 1] (``weighted``; ``znorm``, where it
        defaults to 0.5); ``speech_mean``, ``speech_std``, ``text_mean``, ``text_std`` of
        ``n`` values each, standard deviations positive (``znorm``); ``coef`` of shape
        ``(n, 2 n)`` and ``intercept`` of ``n`` values (``logreg``). Other keys (fitting
        options, hold-out records) are ignored.

    Attributes
    ----------
    method : str
    classes : list of str
    parameters : dict
        The arguments of the method's formula (:func:`weighted_scores`,
        :func:`znorm_scores` or :func:`logreg_scores`): floats and float64 arrays.

    Example
    -------
    >>> params = {"method": "logreg", "classes": ["a", "b"], "coef": [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]], "intercept": [0.0, 0.0]}
    >>> fusion = LateFusion(params)
    >>> fusion.method, fusion.classes
    ('logreg', ['a', 'b'])
    >>> np.exp(fusion.log_posteriors(np.log([[0.9, 0.1]]), np.log([[0.5, 0.5]]))).round(3).tolist()
    [[0.9, 0.1]]
    >>> LateFusion({"method": "weighted", "classes": ["a", "b"], "weight": 1.5})
    Traceback (most recent call last):
    ...
    mmer_lobes.fusion_rules.FusionParamsError: the fusion weight must lie in [0, 1], got 1.5
    """

    def __init__(self, params):
        if not isinstance(params, dict):
            raise FusionParamsError(f"fusion parameters must be a dict, got {type(params).__name__}")
        method = params.get("method")
        if method not in _FORMULAS:
            raise FusionParamsError(
                f"unknown fusion method '{method}' in fusion parameters, "
                f"choose one of {list(_FORMULAS)}"
            )
        classes = params.get("classes")
        if not isinstance(classes, (list, tuple)) or not classes:
            raise FusionParamsError(f"the {method} fusion parameters need 'classes', a list of class names")
        self.method = method
        self.classes = list(classes)
        n = len(self.classes)
        self.parameters = {}
        if method in ("weighted", "znorm"):
            self.parameters["weight"] = _weight(params, method)
        if method == "znorm":
            for key in _ZNORM_KEYS:
                value = _array(params, key, method)
                if value.shape != (n,):
                    raise FusionParamsError(f"{key} must hold {n} values, got shape {value.shape}")
                if key.endswith("std") and not (value > 0).all():
                    raise FusionParamsError(f"{key} must be positive")
                self.parameters[key] = _finite(value, key)
        elif method == "logreg":
            coef, intercept = _array(params, "coef", method), _array(params, "intercept", method)
            if coef.shape != (n, 2 * n) or intercept.shape != (n,):
                raise FusionParamsError(
                    f"logreg parameters for {n} classes need coef ({n}, {2 * n}) and intercept "
                    f"({n},), got {coef.shape} and {intercept.shape}"
                )
            self.parameters["coef"] = _finite(coef, "coef")
            self.parameters["intercept"] = _finite(intercept, "intercept")

    def scores(self, speech, text):
        """Fused ``(N, C)`` scores of two ``(N, C)`` score arrays whose rows correspond.

        Example
        -------
        >>> fusion = LateFusion({"method": "weighted", "classes": ["a", "b"], "weight": 0.5})
        >>> fusion.scores([[-1.0, -3.0]], [[-3.0, -1.0]]).tolist()
        [[-2.0, -2.0]]
        >>> fusion.scores([[-1.0, -3.0]], [[-3.0, -1.0], [0.0, 0.0]])
        Traceback (most recent call last):
        ...
        mmer_lobes.fusion_rules.FusionParamsError: expected two (N, 2) score arrays, got (1, 2) and (2, 2)
        """
        speech, text = _score_arrays(speech, text, len(self.classes))
        return _FORMULAS[self.method](speech, text, **self.parameters)

    def log_posteriors(self, speech, text):
        """``log_softmax`` of the fused scores: per row, the log-posterior of every class.

        Example
        -------
        >>> fusion = LateFusion({"method": "weighted", "classes": ["a", "b"], "weight": 0.5})
        >>> np.exp(fusion.log_posteriors([[-1.0, -3.0]], [[-3.0, -1.0]])).tolist()
        [[0.5, 0.5]]
        """
        return log_softmax(self.scores(speech, text))


def _weight(params, method):
    """The weight of ``weighted`` (required) or ``znorm`` (an option, 0.5 by default) fusion
    parameters, checked."""
    if method == "weighted" and "weight" not in params:
        raise FusionParamsError("the weighted fusion parameters lack 'weight'")
    name = "the z-norm fusion weight" if method == "znorm" else "the fusion weight"
    raw = params.get("weight", 0.5)
    try:
        weight = float(raw)
    except (TypeError, ValueError):
        raise FusionParamsError(f"{name} must be a number, got {raw!r}") from None
    if not 0.0 <= weight <= 1.0:
        raise FusionParamsError(f"{name} must lie in [0, 1], got {weight}")
    return weight


def _array(params, key, method):
    """One array parameter as float64."""
    if key not in params:
        raise FusionParamsError(f"the {method} fusion parameters lack '{key}'")
    try:
        return np.asarray(params[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise FusionParamsError(f"{key} must be an array of numbers") from None


def _finite(value, key):
    """``value``, checked to be finite."""
    if not np.isfinite(value).all():
        raise FusionParamsError(f"{key} must be finite")
    return value


def _score_arrays(speech, text, n_classes):
    """Two ``(N, n_classes)`` finite float64 arrays, or :class:`FusionParamsError`."""
    speech = np.asarray(speech, dtype=np.float64)
    text = np.asarray(text, dtype=np.float64)
    if speech.ndim != 2 or speech.shape != text.shape or speech.shape[1] != n_classes:
        raise FusionParamsError(
            f"expected two (N, {n_classes}) score arrays, got {speech.shape} and {text.shape}"
        )
    if not (np.isfinite(speech).all() and np.isfinite(text).all()):
        raise FusionParamsError("scores must be finite")
    return speech, text
