"""The machinery shared by every late-fusion method: :class:`ScoreFusion`.

A method (see :mod:`mmer_lobes.fusion_methods`) is a subclass that names itself in
``method`` and provides the arithmetic; :class:`ScoreFusion` does the rest: it aligns the
speech and text score sets by utterance id, records and warns about the classes missing from
the hold-out, checks the classes and shapes of the scores to fuse, and turns the learned
parameters into a dict of plain JSON types and back (checked by
:class:`~mmer_lobes.fusion_rules.LateFusion`). The registry of the methods is
:mod:`mmer_lobes.fusion`, which re-exports every name defined here.

Example
-------
>>> from mmer_lobes.fusion_methods import WeightedFusion
>>> speech = ScoreSet(["u1", "u2"], ["a", "b"], np.log([[0.9, 0.1], [0.4, 0.6]]), ["a", "b"])
>>> text = ScoreSet(["u2", "u1"], ["b", "a"], np.log([[0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
>>> fusion = WeightedFusion(step=0.5).fit(speech, text)
>>> isinstance(fusion, ScoreFusion), fusion.to_dict()["classes"]
(True, ['a', 'b'])
"""
import contextlib
import inspect
import logging

import numpy as np

from mmer_lobes.fusion_rules import FusionParamsError, LateFusion, _score_arrays
from mmer_lobes.fusion_search import FusionError, align_score_sets, missing_classes
from mmer_lobes.scores import ScoreSet

# Not __name__: the fusion warnings have always been logged on "mmer_lobes.fusion" (the
# module that defined every fusion class before the split), and recipes/fuse.py and the
# tests capture that logger.
logger = logging.getLogger("mmer_lobes.fusion")


@contextlib.contextmanager
def _as_fusion_error():
    """Re-raises a :class:`~mmer_lobes.fusion_rules.FusionParamsError` as :class:`FusionError`
    (same message), so that ``except FusionError`` catches every error of a fusion."""
    try:
        yield
    except FusionParamsError as error:
        raise FusionError(str(error)) from None


class ScoreFusion:
    """Base of the fusion methods: fit on hold-out score sets, apply to any score sets.

    ``fit`` takes two :class:`~mmer_lobes.scores.ScoreSet` (aligned by utterance id, see
    :func:`~mmer_lobes.fusion_search.align_score_sets`). ``apply`` takes two ScoreSets
    (returned rows follow the first one's ids) or two ``(N, C)`` arrays whose rows already
    correspond, and returns the fused ``(N, C)`` scores.

    A subclass sets ``method`` (a name :class:`~mmer_lobes.fusion_rules.LateFusion` knows),
    takes its options as keyword arguments of ``__init__`` and defines ``_fit(speech, text,
    labels)`` (float64 hold-out arrays and label indices), ``_apply(speech, text)`` (checked
    ``(N, C)`` arrays) and ``_params()`` (its entries of :meth:`to_dict`); it may define
    ``_missing_note()`` and ``_load(params)``.

    Example
    -------
    >>> from mmer_lobes.fusion_methods import WeightedFusion
    >>> issubclass(WeightedFusion, ScoreFusion), WeightedFusion.method, WeightedFusion().fitted
    (True, 'weighted', False)
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
        >>> from mmer_lobes.fusion_methods import ZNormFusion
        >>> ZNormFusion().fitted
        False
        """
        return self.classes is not None

    def fit(self, speech, text):
        """Learns the parameters on the hold-out score sets; returns ``self``.

        Example
        -------
        >>> from mmer_lobes.fusion_methods import WeightedFusion
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
        >>> from mmer_lobes.fusion_methods import WeightedFusion
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
        with _as_fusion_error():
            speech, text = _score_arrays(speech, text, len(self.classes))
        return self._apply(speech, text)

    def to_dict(self):
        """The learned parameters as plain JSON types (``method`` and ``classes`` included).

        Example
        -------
        >>> from mmer_lobes.fusion_methods import ZNormFusion
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
        >>> from mmer_lobes.fusion_methods import ZNormFusion
        >>> s = ScoreSet(["u1", "u2"], ["a", "b"], np.array([[0.0, 1.0], [2.0, 1.0]]), ["a", "b"])
        >>> fitted = ZNormFusion().fit(s, s)
        >>> ZNormFusion.from_dict(fitted.to_dict()).apply(s, s).tolist() == fitted.apply(s, s).tolist()
        True
        """
        if params.get("method") != cls.method:
            raise FusionError(f"parameters of a '{params.get('method')}' fusion, not '{cls.method}'")
        fusion = cls(**{k: params[k] for k in cls._options() if k in params})
        with _as_fusion_error():
            rule = LateFusion(params)  # checks the parameters
        fusion.classes = list(rule.classes)
        # absent from parameters saved before it was recorded
        fusion.holdout_missing_classes = list(params.get("holdout_missing_classes") or [])
        for key, value in rule.parameters.items():
            setattr(fusion, key, value)
        fusion._load(params)
        return fusion

    def _load(self, params):
        """Reads what a subclass keeps from :meth:`to_dict`'s output beyond the parameters
        :class:`~mmer_lobes.fusion_rules.LateFusion` checks (set by :meth:`from_dict`)."""

    @classmethod
    def _options(cls):
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
