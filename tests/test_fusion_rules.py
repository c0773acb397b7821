"""Applying fitted fusion parameters (mmer_lobes.fusion_rules) exactly as the fitting classes
of mmer_lobes.fusion do, and the checks of a parameter dict."""
import ast
import json
import sys

import numpy as np
import pytest

from mmer_lobes import fusion, fusion_rules
from mmer_lobes.errors import ProjectError
from mmer_lobes.fusion import FusionError, ZNormFusion, fusion_from_dict, make_fusion
from mmer_lobes.fusion_rules import (
    FusionParamsError,
    LateFusion,
    log_softmax,
    logreg_scores,
    weighted_scores,
    znorm_scores,
)
from mmer_lobes.scores import ScoreSet

CLASSES = ["ang", "hap", "neu", "sad"]


def _score_sets(n, rng, classes=CLASSES, absent=None, permute=True):
    """Random (speech, text) score sets of the same utterances, the text rows permuted;
    ``absent``: a class index that no utterance has."""
    labels = rng.integers(0, len(classes), n)
    if absent is not None:
        labels[labels == absent] = (absent + 1) % len(classes)
    ids = [f"utt{i:04d}" for i in range(n)]
    names = [classes[i] for i in labels]
    sets = []
    for _ in range(2):
        logits = rng.normal(0.0, 1.5, (n, len(classes)))
        logits[np.arange(n), labels] += 2.0
        sets.append(log_softmax(logits))
    order = rng.permutation(n) if permute else np.arange(n)
    return (ScoreSet(ids, names, sets[0], list(classes)),
            ScoreSet([ids[i] for i in order], [names[i] for i in order], sets[1][order], list(classes)))


CASES = [
    ("weighted", {}, None),
    ("weighted", {"objective": "WA", "step": 0.05}, None),
    ("weighted", {}, 2),
    ("znorm", {}, None),
    ("znorm", {"weight": 0.8, "std_floor": 0.5}, None),  # floors some columns
    ("logreg", {}, None),
    ("logreg", {"C": 0.2}, 1),  # a class absent from the hold-out
]


@pytest.mark.parametrize("method, options, absent", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_late_fusion_equals_the_fitted_fusion_exactly(method, options, absent, seed):
    rng = np.random.default_rng(seed)
    holdout = _score_sets(90, rng, absent=absent)
    test_speech, test_text = _score_sets(50, rng)
    fitted = make_fusion(method, **options).fit(*holdout)
    late = LateFusion(json.loads(json.dumps(fitted.to_dict())))
    assert late.method == method and late.classes == CLASSES
    speech, text = fusion.align_score_sets(test_speech, test_text)
    reference = fitted.apply(test_speech, test_text)
    assert np.array_equal(late.scores(speech.scores, text.scores), reference)
    assert np.array_equal(late.log_posteriors(speech.scores, text.scores), log_softmax(reference))
    # and on the hold-out it was fitted on
    h_speech, h_text = fusion.align_score_sets(*holdout)
    assert np.array_equal(late.log_posteriors(h_speech.scores, h_text.scores),
                          log_softmax(fitted.apply(*holdout)))


def test_two_class_logreg_and_lists_as_input():
    rng = np.random.default_rng(5)
    holdout = _score_sets(80, rng, classes=["a", "b"], permute=False)
    fitted = make_fusion("logreg").fit(*holdout)
    late = LateFusion(fitted.to_dict())
    speech, text = holdout[0].scores, holdout[1].scores
    assert np.array_equal(late.log_posteriors(speech.tolist(), text.tolist()),
                          log_softmax(fitted.apply(speech, text)))


def test_formulas_by_hand():
    speech = np.array([[-0.5, -1.0, -3.0]])
    text = np.array([[-2.0, -0.25, -1.5]])
    np.testing.assert_allclose(weighted_scores(speech, text, 0.25),
                               [[0.25 * -0.5 + 0.75 * -2.0, 0.25 * -1.0 + 0.75 * -0.25,
                                 0.25 * -3.0 + 0.75 * -1.5]], rtol=0, atol=1e-15)
    mean, std = np.array([-1.0, -1.0, -2.0]), np.array([0.5, 2.0, 1.0])
    z_speech, z_text = (speech - mean) / std, (text - 2 * mean) / (3 * std)
    np.testing.assert_allclose(znorm_scores(speech, text, 0.6, mean, std, 2 * mean, 3 * std),
                               0.6 * z_speech + 0.4 * z_text, rtol=0, atol=1e-15)
    coef = np.arange(18, dtype=np.float64).reshape(3, 6) / 10.0
    intercept = np.array([0.5, -0.5, 0.0])
    logits = np.concatenate([speech, text], axis=1) @ coef.T + intercept
    expected = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(logreg_scores(speech, text, coef, intercept), expected, atol=1e-12)


def test_fusion_reexports_the_rules():
    assert fusion.log_softmax is fusion_rules.log_softmax
    assert issubclass(FusionParamsError, ProjectError) and issubclass(FusionParamsError, ValueError)


def test_old_znorm_parameters_still_load():
    # saved before the relative floor: 'epsilon', no 'std_floor', 'floored_columns' or
    # 'holdout_missing_classes'
    old = {"method": "znorm", "classes": ["a", "b"], "weight": 0.5, "epsilon": 1e-8,
           "speech_mean": [2.0, 0.0], "speech_std": [1.0, 1e-8],
           "text_mean": [4.0, 2.0], "text_std": [2.0, 1.0]}
    late = LateFusion(old)
    speech, text = np.array([[5.0, 0.0], [1.0, 1e-8]]), np.array([[8.0, 2.0], [2.0, 3.0]])
    np.testing.assert_allclose(late.scores(speech, text)[0], [2.5, 0.0])
    assert np.array_equal(late.scores(speech, text), ZNormFusion.from_dict(old).apply(speech, text))
    # the z-norm weight is an option of the fit, 0.5 when absent
    no_weight = {k: v for k, v in old.items() if k != "weight"}
    assert np.array_equal(LateFusion(no_weight).scores(speech, text), late.scores(speech, text))


# ----------------------------------------------------------------------------- bad parameters

WEIGHTED = {"method": "weighted", "classes": ["a", "b"], "weight": 0.5}
ZNORM = {"method": "znorm", "classes": ["a", "b"], "weight": 0.5, "speech_mean": [0.0, 1.0],
         "speech_std": [1.0, 2.0], "text_mean": [0.0, 0.5], "text_std": [0.5, 1.0]}
LOGREG = {"method": "logreg", "classes": ["a", "b"], "coef": [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]],
          "intercept": [0.0, 0.0]}

BAD = [
    ({"method": "mean", "classes": ["a", "b"]},
     r"unknown fusion method 'mean' in fusion parameters, choose one of \['weighted', 'znorm', 'logreg'\]"),
    ({"classes": ["a", "b"], "weight": 0.5}, "unknown fusion method 'None'"),
    ({**WEIGHTED, "classes": "ab"}, "need 'classes', a list of class names"),
    ({**WEIGHTED, "classes": []}, "need 'classes'"),
    ({k: v for k, v in WEIGHTED.items() if k != "weight"}, "the weighted fusion parameters lack 'weight'"),
    ({**WEIGHTED, "weight": 1.5}, r"the fusion weight must lie in \[0, 1\], got 1.5"),
    ({**WEIGHTED, "weight": -0.01}, r"the fusion weight must lie in \[0, 1\], got -0.01"),
    ({**WEIGHTED, "weight": float("nan")}, r"must lie in \[0, 1\], got nan"),
    ({**WEIGHTED, "weight": "heavy"}, "the fusion weight must be a number, got 'heavy'"),
    ({**ZNORM, "weight": 2.0}, r"the z-norm fusion weight must lie in \[0, 1\], got 2.0"),
    ({**ZNORM, "speech_mean": [0.0, 1.0, 2.0]}, r"speech_mean must hold 2 values, got shape \(3,\)"),
    ({**ZNORM, "text_std": [[1.0, 1.0]]}, r"text_std must hold 2 values, got shape \(1, 2\)"),
    ({**ZNORM, "speech_std": [1.0, -0.5]}, "speech_std must be positive"),
    ({**ZNORM, "text_std": [0.0, 1.0]}, "text_std must be positive"),
    ({**ZNORM, "text_mean": [0.0, float("inf")]}, "text_mean must be finite"),
    ({**ZNORM, "speech_mean": [0.0, "x"]}, "speech_mean must be an array of numbers"),
    ({k: v for k, v in ZNORM.items() if k != "text_mean"}, "the znorm fusion parameters lack 'text_mean'"),
    ({**LOGREG, "coef": [[1.0, 0.0], [0.0, 1.0]]},
     r"logreg parameters for 2 classes need coef \(2, 4\) and intercept \(2,\), got \(2, 2\) and \(2,\)"),
    ({**LOGREG, "intercept": [0.0, 0.0, 0.0]}, r"got \(2, 4\) and \(3,\)"),
    ({**LOGREG, "coef": [[1.0, 0.0, 1.0, float("nan")], [0.0, 1.0, 0.0, 1.0]]}, "coef must be finite"),
    ({k: v for k, v in LOGREG.items() if k != "intercept"}, "the logreg fusion parameters lack 'intercept'"),
]


@pytest.mark.parametrize("params, message", BAD)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(FusionParamsError, match=message):
        LateFusion(params)
    # the fitting classes check the same way, and raise FusionError
    if params.get("method") in fusion.FUSION_METHODS:
        with pytest.raises(FusionError, match=message):
            fusion_from_dict(params)


def test_parameters_must_be_a_dict():
    with pytest.raises(FusionParamsError, match="fusion parameters must be a dict, got list"):
        LateFusion([("method", "weighted")])


@pytest.mark.parametrize("params", [WEIGHTED, ZNORM, LOGREG])
def test_bad_scores_are_named(params):
    late = LateFusion(params)
    fitted = fusion_from_dict(params)
    cases = [
        ((np.zeros((3, 2)), np.zeros((2, 2))), r"expected two \(N, 2\) score arrays, got \(3, 2\) and \(2, 2\)"),
        ((np.zeros((3, 3)), np.zeros((3, 3))), r"expected two \(N, 2\) score arrays, got \(3, 3\)"),
        ((np.zeros(2), np.zeros(2)), r"expected two \(N, 2\) score arrays, got \(2,\)"),
        ((np.array([[0.0, np.nan]]), np.zeros((1, 2))), "scores must be finite"),
        ((np.zeros((1, 2)), np.array([[-np.inf, 0.0]])), "scores must be finite"),
    ]
    for (speech, text), message in cases:
        with pytest.raises(FusionParamsError, match=message):
            late.log_posteriors(speech, text)
        with pytest.raises(FusionError, match=message):
            fitted.apply(speech, text)


def test_rules_module_is_self_contained():
    """fusion_rules is copied into exported models: it imports only the standard library,
    numpy and mmer_lobes.errors.ProjectError, all at the top level."""
    with open(fusion_rules.__file__, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module)
            if node.module == "mmer_lobes.errors":
                assert [alias.name for alias in node.names] == ["ProjectError"]
    allowed = set(sys.stdlib_module_names) | {"numpy", "mmer_lobes.errors"}
    assert top <= allowed, top - allowed
    nested = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
              and node not in tree.body]
    assert not nested
