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

This module is the registry of the methods (:data:`FUSION_METHODS`, :func:`make_fusion`,
:func:`fusion_from_dict`) and the one place to import fusion names from. The shared fit /
apply / to_dict / from_dict machinery is :class:`~mmer_lobes.fusion_base.ScoreFusion`, the
three methods are in :mod:`mmer_lobes.fusion_methods`, the formulas and the checks of a
parameter dict in :mod:`mmer_lobes.fusion_rules` (all that an exported model needs to apply a
fitted fusion), the score-set alignment and the hold-out search in
:mod:`mmer_lobes.fusion_search`; this module re-exports their names. Every fusion module logs
on the logger named ``mmer_lobes.fusion``.

Example
-------
>>> import numpy as np
>>> classes = ["ang", "sad"]
>>> speech = ScoreSet(["u1", "u2"], ["ang", "sad"], np.log([[0.8, 0.2], [0.6, 0.4]]), classes)
>>> text = ScoreSet(["u2", "u1"], ["sad", "ang"], np.log([[0.1, 0.9], [0.5, 0.5]]), classes)
>>> fusion = make_fusion("weighted", step=0.1).fit(speech, text)
>>> fusion.weight
0.5
>>> fusion.apply(speech, text).argmax(axis=1).tolist()
[0, 1]
"""
import logging

# The names below are re-exported: recipes, tests and users import them from here.
from mmer_lobes.fusion_base import ScoreFusion  # noqa: F401
from mmer_lobes.fusion_methods import (  # noqa: F401
    ABSENT_CLASS_LOGIT,
    CONSTANT_STD,
    LogRegFusion,
    WeightedFusion,
    ZNormFusion,
)
from mmer_lobes.fusion_rules import (  # noqa: F401
    FusionParamsError,
    LateFusion,
    log_softmax,
    logreg_scores,
    weighted_scores,
    znorm_scores,
)
from mmer_lobes.fusion_search import (  # noqa: F401
    OBJECTIVES,
    FusionError,
    align_score_sets,
    missing_classes,
    objective_value,
    select_weight,
    weight_grid,
)
from mmer_lobes.scores import ScoreSet  # noqa: F401

# The logger of every fusion module: fusion_base and fusion_methods log on it by this name.
logger = logging.getLogger(__name__)

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
    mmer_lobes.fusion_search.FusionError: unknown fusion method 'average', choose one of ['weighted', 'znorm', 'logreg']
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
