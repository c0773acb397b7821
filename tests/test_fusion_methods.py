"""The three score-fusion methods (mmer_lobes.fusion_methods) on hand-computed cases:
weighted (grid search and tie rule), z-norm (statistics and floor), logistic regression, and a
class missing from the hold-out. The registry, the score-set checks and recipes/fuse.py are in
test_fusion.py, which imports the helpers defined here."""
import json
import logging

import numpy as np
import pytest

from mmer_lobes.fusion import (
    FusionError,
    LogRegFusion,
    WeightedFusion,
    ZNormFusion,
    fusion_from_dict,
    log_softmax,
    missing_classes,
    select_weight,
    weight_grid,
)
from mmer_lobes.scores import ScoreSet

CLASSES = ["ang", "hap", "neu", "sad"]


def _ua_present(scores, labels):
    """UA (percent) of the argmax decisions, written out: the mean recall over the classes
    that have utterances (independent of mmer_lobes.metrics)."""
    predicted = np.asarray(scores).argmax(axis=1)
    labels = np.asarray(labels)
    return 100.0 * np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)])


def _best_weight(grid, values):
    """The documented tie rule, written out: best value, then closest to 0.5, then smaller."""
    best = max(values)
    tied = [w for w, v in zip(grid, values) if v >= best - 1e-9]
    return min(tied, key=lambda w: (round(abs(w - 0.5), 12), w))


def _synthetic(n, rng, noise=1.0, classes=CLASSES):
    """Two noisy modalities: each sees the true class with a margin, plus noise."""
    labels = rng.integers(0, len(classes), n)
    sets = []
    for _ in range(2):
        logits = rng.normal(0.0, noise, (n, len(classes)))
        logits[np.arange(n), labels] += 2.0
        sets.append(log_softmax(logits))
    ids = [f"utt{i:04d}" for i in range(n)]
    names = [classes[i] for i in labels]
    return (ScoreSet(ids, names, sets[0], list(classes)), ScoreSet(list(ids), list(names), sets[1], list(classes)))


def _two_class_set(groups):
    """Builds a (speech, text) pair of 2-class score sets from (count, truth, speech margin,
    text margin) groups: the margin is score[truth] - score[other]; positive means right."""
    ids, labels, speech, text = [], [], [], []
    for group, (count, truth, speech_margin, text_margin) in enumerate(groups):
        for i in range(count):
            ids.append(f"g{group}_{i}")
            labels.append(["a", "b"][truth])
            for rows, margin in ((speech, speech_margin), (text, text_margin)):
                row = [0.0, 0.0]
                row[truth] = margin
                rows.append(row)
    return (
        ScoreSet(ids, labels, np.array(speech), ["a", "b"]),
        ScoreSet(list(ids), list(labels), np.array(text), ["a", "b"]),
    )


# ----------------------------------------------------------------------------- weighted


def test_weighted_combination_value():
    fusion = WeightedFusion.from_dict({"method": "weighted", "classes": ["a", "b"], "weight": 0.3})
    speech = np.array([[-0.1, -2.3], [-1.0, -0.5]])
    text = np.array([[-1.2, -0.4], [-3.0, -0.1]])
    fused = fusion.apply(speech, text)
    # 0.3 * -0.1 + 0.7 * -1.2 = -0.87; 0.3 * -2.3 + 0.7 * -0.4 = -0.97; ...
    np.testing.assert_allclose(fused, [[-0.87, -0.97], [-2.4, -0.22]], atol=1e-12)


def test_weighted_extremes_return_one_modality():
    speech = np.log([[0.9, 0.1], [0.3, 0.7]])
    text = np.log([[0.2, 0.8], [0.6, 0.4]])
    for weight, expected in ((1.0, speech), (0.0, text)):
        fusion = fusion_from_dict({"method": "weighted", "classes": ["a", "b"], "weight": weight})
        np.testing.assert_allclose(fusion.apply(speech, text), expected)


def test_weight_grid():
    grid = weight_grid(0.01)
    assert len(grid) == 101 and grid[0] == 0.0 and grid[-1] == 1.0
    assert 0.94 in grid.tolist() and 0.51 in grid.tolist()
    assert weight_grid(0.3).tolist() == [0.0, 0.3, 0.6, 0.9, 1.0]
    for step in (0, -0.1, 1.5):
        with pytest.raises(FusionError, match="step"):
            weight_grid(step)


def test_grid_search_finds_the_band_and_breaks_ties_towards_half():
    # group 0: speech right (+1), text wrong (-1.1): right iff w1 > 1.1 / 2.1 = 0.524
    # group 1: speech wrong (-1), text right (+2.9): right iff w1 < 2.9 / 3.9 = 0.744
    speech, text = _two_class_set([(3, 0, 1.0, -1.1), (3, 1, -1.0, 2.9), (4, 0, 1.0, 1.0)])
    fusion = WeightedFusion(step=0.01).fit(speech, text)
    assert 0.524 < fusion.weight < 0.744
    assert fusion.weight == 0.53  # the optimal w1 closest to 0.5
    assert fusion.holdout_objective == 100.0
    optimal = [w for w, v in zip(fusion.grid, fusion.curve) if v == 100.0]
    assert min(optimal) == 0.53 and max(optimal) == 0.74
    assert fusion.apply(speech, text).argmax(axis=1).tolist() == speech.label_indices().tolist()
    # a coarser grid: 0.55 is the first grid point in the band
    assert WeightedFusion(step=0.05).fit(speech, text).weight == 0.55


def test_grid_search_tie_break_from_below():
    # mirrored: the band is [0.26, 0.47]; the optimal w1 closest to 0.5 is its top
    # speech wrong (-1.1), text right (+1): right iff w1 < 1 / 2.1 = 0.476
    # speech right (+2.9), text wrong (-1): right iff w1 > 1 / 3.9 = 0.256
    speech, text = _two_class_set([(3, 0, -1.1, 1.0), (3, 1, 2.9, -1.0)])
    fusion = WeightedFusion(step=0.01).fit(speech, text)
    assert fusion.weight == 0.47


def test_select_weight_rule():
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert select_weight(grid, [1, 2, 3, 2, 1]) == 0.5
    assert select_weight(grid, [3, 1, 1, 1, 3]) == 0.0  # equally far from 0.5: the smaller
    assert select_weight(grid, [1, 3, 1, 3, 3]) == 0.25
    assert select_weight(grid, [1, 1, 1, 1, 3]) == 1.0


def test_objective_ua_and_wa_pick_different_weights():
    # class a: 15 easy + 5 right iff w1 > 1.4 / 2.4 = 0.583; class b: 1 easy + 1 right iff
    # w1 < 1 / 2.4 = 0.417. WA prefers the 5 (21/22), UA the class-b utterance (87.5 vs 75).
    groups = [(15, 0, 1.0, 1.0), (5, 0, 1.0, -1.4), (1, 1, 1.0, 1.0), (1, 1, -1.4, 1.0)]
    speech, text = _two_class_set(groups)
    ua = WeightedFusion(objective="UA").fit(speech, text)
    wa = WeightedFusion(objective="wa").fit(speech, text)
    assert (ua.weight, ua.holdout_objective) == (0.41, 87.5)
    assert wa.weight == 0.59 and wa.holdout_objective == pytest.approx(100 * 21 / 22)
    with pytest.raises(FusionError, match="objective"):
        WeightedFusion(objective="F1")


# ----------------------------------------------------------------------------- z-norm


def test_znorm_known_statistics():
    # speech hold-out columns: [1, 3] -> mean 2, std 1; [0, 0] -> mean 0, std 0, floored at
    # 0.1 x the median std of the non-constant speech columns (1) = 0.1
    # text hold-out columns: [2, 6] -> mean 4, std 2; [1, 3] -> mean 2, std 1 (floor 0.15)
    speech = ScoreSet(["u1", "u2"], ["a", "b"], np.array([[1.0, 0.0], [3.0, 0.0]]), ["a", "b"])
    text = ScoreSet(["u1", "u2"], ["a", "b"], np.array([[2.0, 1.0], [6.0, 3.0]]), ["a", "b"])
    fusion = ZNormFusion(std_floor=0.1).fit(speech, text)
    np.testing.assert_allclose(fusion.speech_mean, [2.0, 0.0])
    np.testing.assert_allclose(fusion.speech_std, [1.0, 0.1])
    np.testing.assert_allclose(fusion.text_mean, [4.0, 2.0])
    np.testing.assert_allclose(fusion.text_std, [2.0, 1.0])
    assert fusion.floored_columns == {"speech": ["b"], "text": []}
    fused = fusion.apply(np.array([[5.0, 0.002]]), np.array([[8.0, 0.0]]))
    # z_speech = [3, 0.02], z_text = [2, -2] -> 0.5 * both = [2.5, -0.99]
    np.testing.assert_allclose(fused, [[2.5, -0.99]], atol=1e-9)
    weighted = ZNormFusion(weight=0.8).fit(speech, text)
    np.testing.assert_allclose(weighted.apply(np.array([[5.0, 0.002]]), np.array([[8.0, 0.0]])),
                               [[0.8 * 3 + 0.2 * 2, 0.8 * 0.02 + 0.2 * -2]], atol=1e-9)
    with pytest.raises(FusionError, match="std_floor"):
        ZNormFusion(std_floor=0.0)


def _znorm_reference(holdout, test, floor_fraction, weight=0.5):
    """Z-norm fusion written out with numpy: per-column hold-out mean and std, the std
    floored at floor_fraction x the median std of the modality's non-constant columns."""
    z = []
    for h, t in zip(holdout, test):
        std = h.std(axis=0)
        floor = floor_fraction * np.median(std[std > 1e-6])
        z.append((t - h.mean(axis=0)) / np.maximum(std, floor))
    return weight * z[0] + (1.0 - weight) * z[1]


@pytest.mark.parametrize("spread", [0.0, 1e-5])  # exactly constant, and near-constant
def test_znorm_zero_variance_column_is_floored(spread, caplog):
    rng = np.random.default_rng(7)
    holdout, test = _synthetic(60, rng), _synthetic(30, rng)
    # the speech model gives class 'sad' (nearly) the same log-posterior on every hold-out
    # utterance; on the test split it moves by a few tenths of a nat
    h_speech = holdout[0].scores.copy()
    h_speech[:, 3] = np.log(0.2) + spread * rng.standard_normal(60)
    holdout = (ScoreSet(holdout[0].ids, holdout[0].labels, h_speech, CLASSES), holdout[1])
    t_speech = test[0].scores
    with caplog.at_level(logging.WARNING, logger="mmer_lobes.fusion"):
        fusion = ZNormFusion(std_floor=0.1).fit(*holdout)
    fused = fusion.apply(t_speech, test[1].scores)
    expected = _znorm_reference((h_speech, holdout[1].scores), (t_speech, test[1].scores), 0.1)
    np.testing.assert_allclose(fused, expected, rtol=1e-10, atol=1e-10)
    # bounded: a 1e-8 floor gave |z| ~ 1e7 in the 'sad' column and 'sad' won every utterance
    assert np.abs(fused).max() < 100
    assert fusion.floored_columns == {"speech": ["sad"], "text": []}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("speech" in m and "class sad" in m and "floored" in m for m in warnings), warnings
    params = json.loads(json.dumps(fusion.to_dict()))
    assert params["std_floor"] == 0.1 and params["floored_columns"]["speech"] == ["sad"]
    loaded = fusion_from_dict(params)
    assert loaded.floored_columns == {"speech": ["sad"], "text": []}
    np.testing.assert_array_equal(loaded.apply(t_speech, test[1].scores), fused)


@pytest.mark.parametrize("spread", [0.0, 1e-7])  # constant, and constant up to file rounding
def test_znorm_refuses_an_all_constant_modality(spread):
    rng = np.random.default_rng(8)
    speech, text = _synthetic(40, rng)
    flat = np.log([0.1, 0.2, 0.3, 0.4]) + spread * rng.standard_normal((40, 4))
    text = ScoreSet(text.ids, text.labels, flat, CLASSES)
    with pytest.raises(FusionError, match=r"every class column of the text hold-out scores is constant"):
        ZNormFusion().fit(speech, text)
    with pytest.raises(FusionError, match=r"speech hold-out scores is constant"):
        ZNormFusion().fit(ScoreSet(speech.ids, speech.labels, flat, CLASSES), speech)


def test_znorm_loads_parameters_saved_with_epsilon():
    # the format written before the relative floor: 'epsilon', no 'std_floor' / 'floored_columns'
    old = {"method": "znorm", "classes": ["a", "b"], "weight": 0.5, "epsilon": 1e-8,
           "speech_mean": [2.0, 0.0], "speech_std": [1.0, 1e-8],
           "text_mean": [4.0, 2.0], "text_std": [2.0, 1.0]}
    fusion = fusion_from_dict(old)
    assert isinstance(fusion, ZNormFusion) and fusion.floored_columns == {"speech": [], "text": []}
    assert fusion.holdout_missing_classes == []
    # the stored statistics are used as they are: z_speech = [3, 0], z_text = [2, 0]
    np.testing.assert_allclose(fusion.apply(np.array([[5.0, 0.0]]), np.array([[8.0, 2.0]])),
                               [[2.5, 0.0]])


def test_znorm_scale_invariance():
    # multiplying one modality's scores by 100 changes nothing after z-normalisation
    rng = np.random.default_rng(1)
    s = rng.normal(size=(20, 4))
    t = rng.normal(size=(20, 4))
    ids = [f"u{i}" for i in range(20)]
    labels = [CLASSES[i % 4] for i in range(20)]
    plain = ZNormFusion().fit(ScoreSet(ids, labels, s, CLASSES), ScoreSet(ids, labels, t, CLASSES))
    scaled = ZNormFusion().fit(ScoreSet(ids, labels, s, CLASSES), ScoreSet(ids, labels, 100 * t, CLASSES))
    np.testing.assert_allclose(plain.apply(s, t), scaled.apply(s, 100 * t))


# ----------------------------------------------------------------------------- logreg


def test_logreg_beats_chance_and_round_trips():
    rng = np.random.default_rng(0)
    holdout, test = _synthetic(200, rng), _synthetic(200, rng)
    fusion = LogRegFusion(C=1.0).fit(*holdout)
    out = fusion.apply(*test)
    assert out.shape == (200, 4)
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0)  # proper log-posteriors
    accuracy = (out.argmax(axis=1) == test[0].label_indices()).mean()
    assert accuracy > 0.8  # chance is 0.25
    params = json.loads(json.dumps(fusion.to_dict()))
    assert params["method"] == "logreg" and np.array(params["coef"]).shape == (4, 8)
    loaded = fusion_from_dict(params)
    assert isinstance(loaded, LogRegFusion)
    np.testing.assert_array_equal(loaded.apply(*test), out)


def test_logreg_equals_scikit_learn_on_standardised_features():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    speech, text = _synthetic(150, rng)
    text = ScoreSet(text.ids, text.labels, 30.0 * text.scores - 7.0, text.classes)  # other scale
    fusion = LogRegFusion(C=0.5).fit(speech, text)
    features = np.concatenate([speech.scores, text.scores], axis=1)
    mean, std = features.mean(axis=0), features.std(axis=0)
    model = LogisticRegression(C=0.5, max_iter=1000).fit((features - mean) / std, speech.label_indices())
    test_speech, test_text = _synthetic(50, rng)
    test_features = np.concatenate([test_speech.scores, 30.0 * test_text.scores - 7.0], axis=1)
    np.testing.assert_allclose(
        fusion.apply(test_speech.scores, 30.0 * test_text.scores - 7.0),
        model.predict_log_proba((test_features - mean) / std), atol=1e-8,
    )


def test_logreg_two_classes_and_absent_class():
    rng = np.random.default_rng(2)
    speech, text = _synthetic(100, rng, classes=["a", "b"])
    out = LogRegFusion().fit(speech, text).apply(speech, text)
    assert (out.argmax(axis=1) == speech.label_indices()).mean() > 0.8
    # hold-out without class 'c': it gets (almost) zero probability, the others still work
    sets = [ScoreSet(s.ids, s.labels, np.concatenate([s.scores, np.full((100, 1), -5.0)], axis=1),
                     ["a", "b", "c"]) for s in (speech, text)]
    fusion = LogRegFusion().fit(*sets)
    out = fusion.apply(*sets)
    assert np.all(np.isfinite(out)) and np.all(out[:, 2] < -100)
    assert (out.argmax(axis=1) == speech.label_indices()).mean() > 0.8
    one_class = [ScoreSet(s.ids, ["a"] * 100, s.scores, s.classes) for s in (speech, text)]
    with pytest.raises(FusionError, match="two classes"):
        LogRegFusion().fit(*one_class)


# ----------------------------------------------------------------------------- missing class


def _without(pair, class_name):
    """The pair without the utterances of one class."""
    keep = [i for i, label in enumerate(pair[0].labels) if label != class_name]
    return tuple(ScoreSet([s.ids[i] for i in keep], [s.labels[i] for i in keep], s.scores[keep], s.classes)
                 for s in pair)


def test_missing_holdout_class_weighted_objective(caplog):
    rng = np.random.default_rng(9)
    speech, text = _without(_synthetic(120, rng, noise=1.5), "neu")
    labels = speech.label_indices()
    assert 2 not in labels
    with caplog.at_level(logging.WARNING, logger="mmer_lobes.fusion"):
        fusion = WeightedFusion(step=0.05).fit(speech, text)
    expected = [_ua_present(w * speech.scores + (1 - w) * text.scores, labels) for w in fusion.grid]
    # 'neu' is still predicted on some hold-out utterances: those are errors of present classes
    assert any(((w * speech.scores + (1 - w) * text.scores).argmax(axis=1) == 2).any() for w in fusion.grid)
    np.testing.assert_allclose(fusion.curve, expected, rtol=0, atol=1e-9)
    assert fusion.holdout_objective == pytest.approx(max(expected), abs=1e-9)
    assert fusion.weight == _best_weight(fusion.grid.tolist(), expected)
    # not the average over 4 classes with 0 for the missing one
    assert fusion.holdout_objective > 0.75 * max(expected) + 1
    assert fusion.holdout_missing_classes == ["neu"]
    assert json.loads(json.dumps(fusion.to_dict()))["holdout_missing_classes"] == ["neu"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("['neu']" in m and "3 present classes" in m for m in warnings), warnings
    assert missing_classes(labels, CLASSES) == ["neu"]


@pytest.mark.parametrize("classes, absent", [(CLASSES, "hap"), (["a", "b", "c"], "b")])
def test_missing_holdout_class_logreg_keeps_every_column(classes, absent, caplog):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(10)
    speech, text = _without(_synthetic(150, rng, classes=classes), absent)
    with caplog.at_level(logging.WARNING, logger="mmer_lobes.fusion"):
        fusion = LogRegFusion().fit(speech, text)
    assert fusion.holdout_missing_classes == [absent]
    assert any(f"['{absent}']" in r.getMessage() and "logit" in r.getMessage() for r in caplog.records)
    test_speech, test_text = _synthetic(60, rng, classes=classes)
    out = fusion.apply(test_speech, test_text)
    assert out.shape == (60, len(classes))
    missing = classes.index(absent)
    present = [i for i in range(len(classes)) if i != missing]
    assert np.all(out[:, missing] < -1000)
    # the present columns, in class order, are scikit-learn's own log-posteriors
    features = np.concatenate([speech.scores, text.scores], axis=1)
    mean, std = features.mean(axis=0), features.std(axis=0)
    model = LogisticRegression(C=1.0, max_iter=1000).fit((features - mean) / std, speech.label_indices())
    assert model.classes_.tolist() == present
    test_features = np.concatenate([test_speech.scores, test_text.scores], axis=1)
    np.testing.assert_allclose(out[:, present], model.predict_log_proba((test_features - mean) / std),
                               atol=1e-8)
