"""Named non-neural baselines, run on the same folds as the neural systems (recipes/train_baseline.py):
openSMILE's eGeMAPS functionals with a linear classifier for speech, TF-IDF with logistic
regression for text. The feature extractor is openSMILE's (PyPI ``opensmile``) and the
classifiers are scikit-learn pipelines built in the baseline's YAML, their settings chosen
on the fold's hold-out set with scikit-learn's grid search; what is written here is only the
glue: one feature vector per clip, the fixed hold-out split, and log-posteriors over every
class.
"""
import warnings

import numpy as np
from sklearn.base import clone

from mmer_lobes.errors import ProjectError


class BaselineError(ProjectError, ValueError):
    """A baseline that cannot be built or fitted as asked."""


class EgemapsFunctionals:
    """openSMILE functionals of a whole clip: eGeMAPS v02 (88 values) by default.

    Arguments
    ---------
    feature_set : str
        A name of ``opensmile.FeatureSet`` (eGeMAPSv02, ComParE_2016, ...).
    sample_rate : int
        The rate of the signals given to :meth:`__call__`.

    Example
    -------
    >>> import torch
    >>> extract = EgemapsFunctionals()
    >>> features = extract(0.1 * torch.sin(torch.arange(16000) * 0.05))
    >>> features.shape, features.dtype, len(extract.feature_names)
    ((88,), dtype('float32'), 88)
    >>> EgemapsFunctionals("GeMAPSv99")
    Traceback (most recent call last):
    ...
    mmer_lobes.baselines.BaselineError: no openSMILE feature set 'GeMAPSv99'; known: ...
    """

    def __init__(self, feature_set="eGeMAPSv02", sample_rate=16000):
        import opensmile

        known = [member.name for member in opensmile.FeatureSet]
        if feature_set not in known:
            raise BaselineError(f"no openSMILE feature set {feature_set!r}; known: {', '.join(known)}")
        self.sample_rate = sample_rate
        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                                     feature_level=opensmile.FeatureLevel.Functionals)
        self.feature_names = list(self.smile.feature_names)

    def __call__(self, signal):
        """The functionals of one mono clip (a 1-D tensor or array) as a float32 vector."""
        signal = np.asarray(signal, dtype=np.float32).reshape(-1)
        return self.smile.process_signal(signal, self.sample_rate).to_numpy(dtype=np.float32)[0]


# The selection metrics as scikit-learn scorers: balanced accuracy is UA (the mean recall of
# the classes present), accuracy is WA, f1_weighted is weighted F1.
SCORERS = {"UA": "balanced_accuracy", "WA": "accuracy", "wF1": "f1_weighted"}


def fit_on_holdout(pipeline, grid, train, holdout, metric="UA"):
    """Scores ``pipeline`` fitted on the training set at every point of ``grid`` on the
    hold-out set (scikit-learn's ``GridSearchCV`` over the one ``PredefinedSplit``), and
    returns it fitted on the training set at the best point (the first of equals).

    Arguments
    ---------
    pipeline : sklearn estimator
        Unfitted; a pipeline whose last step has ``predict_proba``.
    grid : dict
        ``{parameter: [values]}`` in scikit-learn's ``set_params`` names
        (``logisticregression__C``); ``{}`` fits the pipeline as it is.
    train, holdout : tuple
        ``(inputs, class indices)``; inputs are an array of feature rows or a list of texts,
        whatever the pipeline's first step takes.
    metric : str
        ``UA``, ``WA`` or ``wF1`` (:data:`SCORERS`).

    Returns
    -------
    tuple
        The fitted estimator and ``[(parameters, hold-out metric in percent)]`` of every
        grid point.

    Example
    -------
    >>> from sklearn.linear_model import LogisticRegression
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> holdout = (np.array([[0.5], [2.5]]), np.array([0, 1]))
    >>> model, tried = fit_on_holdout(LogisticRegression(), {"fit_intercept": [False, True]},
    ...                               (x, y), holdout)  # without, every x > 0 is class 1
    >>> model.fit_intercept, [round(score) for _, score in tried]
    (True, [50, 100])
    """
    from sklearn.model_selection import GridSearchCV, ParameterGrid, PredefinedSplit

    if metric not in SCORERS:
        raise BaselineError(f"selection metric must be one of {', '.join(SCORERS)}, got {metric!r}")
    if len(np.unique(train[1])) < 2:
        raise BaselineError("the training set holds fewer than two classes: nothing to learn")
    for parameters in ParameterGrid(grid or {}):  # a grid that does not fit, before any fitting
        try:
            clone(pipeline).set_params(**parameters)
        except ValueError as error:
            raise BaselineError(f"the classifier refuses the selection grid: {error}") from error
    if isinstance(train[0], np.ndarray):
        inputs = np.concatenate([train[0], holdout[0]])
    else:
        inputs = list(train[0]) + list(holdout[0])
    labels = np.concatenate([train[1], holdout[1]])
    split = PredefinedSplit(np.r_[np.full(len(train[1]), -1), np.zeros(len(holdout[1]), dtype=int)])
    search = GridSearchCV(pipeline, grid or {}, scoring=SCORERS[metric], cv=split, refit=False,
                          error_score="raise")
    with warnings.catch_warnings():  # a class the hold-out lacks: UA and F1 leave it out, as ours do
        warnings.filterwarnings("ignore", message=".*(y_pred contains classes not in y_true|ill-defined).*")
        search.fit(inputs, labels)
    tried = [(parameters, 100.0 * float(score)) for parameters, score
             in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])]
    return clone(pipeline).set_params(**search.best_params_).fit(*train), tried


def log_posteriors(model, inputs, n_classes, floor=1e-12):
    """``(N, n_classes)`` log-posteriors of a fitted classifier over every class: a class
    that was absent from its training set gets probability ``floor``.

    Example
    -------
    >>> from sklearn.linear_model import LogisticRegression
    >>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 2])  # class 1 never seen
    >>> scores = log_posteriors(model, [[0.0]], 3)
    >>> scores.shape, bool(scores[0, 1] < -27), round(float(np.exp(scores).sum()), 6)
    ((1, 3), True, 1.0)
    """
    probabilities = np.full((len(inputs), n_classes), floor)
    probabilities[:, model.classes_] = np.maximum(model.predict_proba(inputs), floor)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return np.log(probabilities)
