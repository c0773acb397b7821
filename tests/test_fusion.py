"""Score fusion (mmer_lobes.fusion): the registry on every method, the checks of two score
sets, and recipes/fuse.py end to end. The per-method cases are in test_fusion_methods.py."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mmer_lobes.fusion import (
    FusionError,
    WeightedFusion,
    ZNormFusion,
    align_score_sets,
    fusion_from_dict,
    log_softmax,
    make_fusion,
)
from mmer_lobes.scores import ScoreFileError, ScoreSet, read_scores, write_scores
from test_fusion_methods import CLASSES, _best_weight, _synthetic, _ua_present


# ----------------------------------------------------------------------------- all methods


@pytest.mark.parametrize("method", ["weighted", "znorm", "logreg"])
def test_round_trip_and_row_order(method):
    rng = np.random.default_rng(3)
    holdout, test = _synthetic(80, rng), _synthetic(40, rng)
    fusion = make_fusion(method).fit(*holdout)
    reference = fusion.apply(*test)
    # permuting the text rows changes nothing: rows are matched by id
    order = rng.permutation(40)
    speech, text = test
    permuted = ScoreSet([text.ids[i] for i in order], [text.labels[i] for i in order],
                        text.scores[order], text.classes)
    np.testing.assert_array_equal(fusion.apply(speech, permuted), reference)
    # ... also when fitting
    h_speech, h_text = holdout
    order = rng.permutation(80)
    h_permuted = ScoreSet([h_text.ids[i] for i in order], [h_text.labels[i] for i in order],
                          h_text.scores[order], h_text.classes)
    np.testing.assert_allclose(make_fusion(method).fit(h_speech, h_permuted).apply(*test), reference)
    # to_dict is plain JSON and from_dict reproduces the outputs exactly
    params = json.loads(json.dumps(fusion.to_dict()))
    np.testing.assert_array_equal(fusion_from_dict(params).apply(*test), reference)
    np.testing.assert_array_equal(type(fusion).from_dict(params).apply(*test), reference)


def test_factory_and_misuse():
    assert isinstance(make_fusion("weighted", step=0.05, objective="WA"), WeightedFusion)
    assert isinstance(make_fusion("znorm"), ZNormFusion)
    assert make_fusion("logreg", C=0.5).C == 0.5
    with pytest.raises(FusionError, match="unknown fusion method 'mean'"):
        make_fusion("mean")
    with pytest.raises(FusionError, match=r"\['C'\].*weighted"):
        make_fusion("weighted", C=1.0)
    with pytest.raises(FusionError, match="fitted"):
        ZNormFusion().apply(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(FusionError, match="not 'znorm'"):
        ZNormFusion.from_dict({"method": "weighted", "classes": ["a"], "weight": 0.5})
    with pytest.raises(FusionError, match="unknown fusion method"):
        fusion_from_dict({"weight": 0.5})
    fusion = fusion_from_dict({"method": "weighted", "classes": ["a", "b"], "weight": 0.5})
    with pytest.raises(FusionError, match=r"\(N, 2\)"):
        fusion.apply(np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(FusionError, match="finite"):
        fusion.apply(np.array([[0.0, np.nan]]), np.zeros((1, 2)))
    other = ScoreSet(["u"], ["x"], np.zeros((1, 2)), ["x", "y"])
    with pytest.raises(FusionError, match=r"fitted on \['a', 'b'\]"):
        fusion.apply(other, other)


# ----------------------------------------------------------------------------- mismatches


def _pair(n=20):
    rng = np.random.default_rng(4)
    return _synthetic(n, rng)


def test_mismatched_ids_are_named():
    speech, text = _pair()
    text = ScoreSet(text.ids[:17] + ["extra1", "extra2"], text.labels[:19], text.scores[:19], text.classes)
    with pytest.raises(FusionError) as info:
        align_score_sets(speech, text)
    assert str(info.value) == "3 ids only in speech (first: utt0017), 2 only in text (first: extra1)"
    assert isinstance(info.value, ScoreFileError)


def test_mismatched_labels_are_named():
    speech, text = _pair()
    labels = list(text.labels)
    original = labels[5]
    labels[5] = "sad" if original != "sad" else "ang"
    labels[9] = "sad" if labels[9] != "sad" else "ang"
    with pytest.raises(FusionError) as info:
        align_score_sets(speech, ScoreSet(text.ids, labels, text.scores, text.classes))
    message = str(info.value)
    assert message.startswith(f"utterance utt0005: label {original} in speech, {labels[5]} in text")
    assert message.endswith("(1 more utterance differs)")


def test_mismatched_classes_are_named():
    speech, text = _pair()
    reordered = ScoreSet(text.ids, text.labels, text.scores, ["hap", "ang", "neu", "sad"])
    with pytest.raises(FusionError, match=r"class order differs: speech has \['ang', 'hap', 'neu', 'sad'\], "
                                          r"text has \['hap', 'ang', 'neu', 'sad'\]"):
        align_score_sets(speech, reordered)
    other = ScoreSet(text.ids, text.labels, text.scores, ["ang", "hap", "neu", "fru"])
    with pytest.raises(FusionError, match="classes differ"):
        align_score_sets(speech, other)
    with pytest.raises(FusionError, match="class order differs: A has"):
        align_score_sets(speech, reordered, names=("A", "B"))


def test_malformed_score_sets():
    speech, text = _pair()
    duplicate = ScoreSet(text.ids[:-1] + [text.ids[0]], text.labels, text.scores, text.classes)
    with pytest.raises(FusionError, match="text: duplicate"):
        align_score_sets(speech, duplicate)
    unknown = ScoreSet(text.ids, ["fru"] + text.labels[1:], text.scores, text.classes)
    with pytest.raises(FusionError, match=r"text: labels \['fru'\]"):
        align_score_sets(speech, unknown)
    bad_shape = ScoreSet(text.ids, text.labels, text.scores[:, :3], text.classes)
    with pytest.raises(FusionError, match="shape"):
        align_score_sets(speech, bad_shape)


# ----------------------------------------------------------------------------- recipes/fuse.py

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _modality(labels, accuracy, rng, n_classes=4):
    """Log-posteriors right with a clear margin on a random share of utterances, and wrong
    with a small margin elsewhere (errors independent between two calls)."""
    n = len(labels)
    probs = np.full((n, n_classes), 0.1)
    right = rng.random(n) < accuracy
    for i, truth in enumerate(labels):
        if right[i]:
            probs[i, truth] = 0.7
        else:
            wrong = rng.choice([k for k in range(n_classes) if k != truth])
            probs[i] = 0.15
            probs[i, wrong], probs[i, truth] = 0.4, 0.3
    probs *= np.exp(rng.normal(0.0, 0.1, probs.shape))
    return np.log(probs / probs.sum(axis=1, keepdims=True))


def _write_fold(root, seed=0):
    rng = np.random.default_rng(seed)
    for split, n in (("holdout", 160), ("test", 200)):
        labels = rng.integers(0, 4, n)
        ids = [f"Ses05F_{split}_{i:03d}" for i in range(n)]
        names = [CLASSES[i] for i in labels]
        order = rng.permutation(n)  # the text recipe wrote its rows in another order
        speech = _modality(labels, 0.6, rng)
        text = _modality(labels, 0.65, rng)
        write_scores(os.path.join(root, "speech", "scores", f"{split}.csv"), ids, names, speech, CLASSES)
        write_scores(os.path.join(root, "text", "scores", f"{split}.csv"),
                     [ids[i] for i in order], [names[i] for i in order], text[order], CLASSES)
    return os.path.join(root, "speech"), os.path.join(root, "text")


def _fuse(speech, text, output, *extra):
    return subprocess.run(
        [sys.executable, "recipes/fuse.py", "hparams/fusion.yaml", "--speech_folder", speech,
         "--text_folder", text, "--output_folder", output, *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def fused_fold(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuse")
    speech, text = _write_fold(str(root))
    output = str(root / "out")
    result = _fuse(speech, text, output)
    assert result.returncode == 0, result.stdout + result.stderr
    return speech, text, output, result


def test_fuse_script_output_tree(fused_fold):
    speech, text, output, result = fused_fold
    assert os.path.isfile(os.path.join(output, "hyperparams.yaml"))
    assert os.path.isfile(os.path.join(output, "summary.json"))
    test_speech = read_scores(os.path.join(speech, "scores", "test.csv"))
    for method in ("weighted", "znorm", "logreg"):
        folder = os.path.join(output, method)
        for name in ("scores/holdout.csv", "scores/test.csv", "metrics_test.json",
                     "confusion_test.png", "fusion_params.json"):
            assert os.path.isfile(os.path.join(folder, name)), (method, name)
        with open(os.path.join(folder, "confusion_test.png"), "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
        fused = read_scores(os.path.join(folder, "scores", "test.csv"))
        assert fused.ids == test_speech.ids and fused.labels == test_speech.labels
        assert fused.classes == CLASSES
        np.testing.assert_allclose(np.exp(fused.scores).sum(axis=1), 1.0, atol=1e-4)
        with open(os.path.join(folder, "metrics_test.json")) as handle:
            metrics = json.load(handle)
        assert set(metrics) >= {"WA", "UA", "recall", "confusion", "n", "classes"}
        assert metrics["n"] == 200 and metrics["classes"] == CLASSES
        # the metrics are those of the written scores
        truth = fused.label_indices()
        assert metrics["WA"] == pytest.approx(100 * (fused.scores.argmax(axis=1) == truth).mean())
        assert metrics["UA"] == pytest.approx(_ua_present(fused.scores, truth))
        with open(os.path.join(folder, "fusion_params.json")) as handle:
            params = json.load(handle)
        assert params["method"] == method and params["objective"] == "UA"
        assert params["params"]["method"] == method
        assert params["holdout_missing_classes"] == []
        # the objective value is the hold-out UA of the written fused hold-out scores
        fused_holdout = read_scores(os.path.join(folder, "scores", "holdout.csv"))
        assert params["objective_value"] == pytest.approx(
            _ua_present(fused_holdout.scores, fused_holdout.label_indices()))
        # the stored parameters reproduce the written scores
        pairs = align_score_sets(test_speech, read_scores(os.path.join(text, "scores", "test.csv")))
        np.testing.assert_allclose(
            log_softmax(fusion_from_dict(params["params"]).apply(*pairs)), fused.scores, atol=1e-5
        )
    for name in ("speech", "text", "weighted", "znorm", "logreg"):
        assert name in result.stdout


def test_fuse_script_beats_single_modalities(fused_fold):
    speech, text, output, _ = fused_fold
    with open(os.path.join(output, "summary.json")) as handle:
        summary = json.load(handle)
    results = summary["results"]
    assert summary["holdout_missing_classes"] == []
    # the single-modality rows are the UAs of the input score files
    pairs = {split: align_score_sets(read_scores(os.path.join(speech, "scores", f"{split}.csv")),
                                     read_scores(os.path.join(text, "scores", f"{split}.csv")))
             for split in ("holdout", "test")}
    for index, modality in enumerate(("speech", "text")):
        for split, pair in pairs.items():
            assert results[modality][f"{split}_UA"] == pytest.approx(
                _ua_present(pair[index].scores, pair[index].label_indices()))
    single = max(results["speech"]["test_UA"], results["text"]["test_UA"])
    best = max(results[m]["test_UA"] for m in ("weighted", "znorm", "logreg"))
    assert best >= single
    assert results["weighted"]["test_UA"] > single + 10  # independent errors: a big gain
    assert results["znorm"]["w1"] == 0.5
    # w1 is the grid search on the hold-out files, redone here
    h_speech, h_text = pairs["holdout"]
    grid = [round(0.01 * i, 10) for i in range(101)]
    curve = [_ua_present(w * h_speech.scores + (1 - w) * h_text.scores, h_speech.label_indices())
             for w in grid]
    assert results["weighted"]["w1"] == _best_weight(grid, curve)
    with open(os.path.join(output, "weighted", "fusion_params.json")) as handle:
        params = json.load(handle)
    np.testing.assert_allclose(params["holdout_curve"]["UA"], curve, atol=1e-9)
    assert params["objective_value"] == pytest.approx(max(curve))


def test_fuse_script_missing_class_and_constant_column(fused_fold, tmp_path):
    """A hold-out without 'neu', whose text scores give 'sad' the same log-posterior on
    every utterance: every method runs, the UAs are over the present classes, and both
    events are reported in the outputs."""
    speech, text, _, _ = fused_fold
    folders = {}
    for modality, source in (("speech", speech), ("text", text)):
        folders[modality] = tmp_path / modality
        holdout = read_scores(os.path.join(source, "scores", "holdout.csv"))
        keep = [i for i, label in enumerate(holdout.labels) if label != "neu"]
        scores = holdout.scores[keep]
        if modality == "text":
            probs = np.exp(scores)
            probs[:, :3] *= 0.85 / probs[:, :3].sum(axis=1, keepdims=True)
            probs[:, 3] = 0.15
            scores = np.log(probs)
        write_scores(str(folders[modality] / "scores" / "holdout.csv"), [holdout.ids[i] for i in keep],
                     [holdout.labels[i] for i in keep], scores, CLASSES)
        test = read_scores(os.path.join(source, "scores", "test.csv"))
        write_scores(str(folders[modality] / "scores" / "test.csv"), test.ids, test.labels, test.scores, CLASSES)
    output = tmp_path / "out"
    result = _fuse(str(folders["speech"]), str(folders["text"]), str(output))
    assert result.returncode == 0, result.stderr
    assert "['neu']" in result.stderr and "text hold-out scores of class sad" in result.stderr
    with open(output / "summary.json") as handle:
        summary = json.load(handle)
    assert summary["holdout_missing_classes"] == ["neu"]
    h_speech, h_text = align_score_sets(read_scores(str(folders["speech"] / "scores" / "holdout.csv")),
                                        read_scores(str(folders["text"] / "scores" / "holdout.csv")))
    labels = h_speech.label_indices()
    assert summary["results"]["speech"]["holdout_UA"] == pytest.approx(_ua_present(h_speech.scores, labels))
    for method in ("weighted", "znorm", "logreg"):
        with open(output / method / "fusion_params.json") as handle:
            params = json.load(handle)
        assert params["holdout_missing_classes"] == ["neu"]
        assert params["params"]["holdout_missing_classes"] == ["neu"]
        fused = read_scores(str(output / method / "scores" / "holdout.csv"))
        assert params["objective_value"] == pytest.approx(_ua_present(fused.scores, labels))
        test_fused = read_scores(str(output / method / "scores" / "test.csv"))
        assert test_fused.classes == CLASSES and np.isfinite(test_fused.scores).all()
    with open(output / "znorm" / "fusion_params.json") as handle:
        znorm = json.load(handle)["params"]
    assert znorm["floored_columns"] == {"speech": [], "text": ["sad"]}
    text_std = h_text.scores.std(axis=0)
    floor = 0.1 * np.median(text_std[text_std > 1e-6])
    np.testing.assert_allclose(znorm["text_std"], np.maximum(text_std, floor), rtol=1e-9)
    weighted = read_scores(str(output / "weighted" / "scores" / "holdout.csv"))
    grid = [round(0.01 * i, 10) for i in range(101)]
    curve = [_ua_present(w * h_speech.scores + (1 - w) * h_text.scores, labels) for w in grid]
    assert _ua_present(weighted.scores, labels) == pytest.approx(max(curve))


def test_fuse_script_overrides(fused_fold, tmp_path):
    speech, text, _, _ = fused_fold
    result = _fuse(speech, text, str(tmp_path), "--methods", "[weighted]", "--objective", "WA",
                   "--grid_step", "0.1")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["hyperparams.yaml", "summary.json", "weighted"]
    with open(tmp_path / "weighted" / "fusion_params.json") as handle:
        params = json.load(handle)
    assert params["objective"] == "WA" and params["params"]["step"] == 0.1
    assert len(params["holdout_curve"]["w1"]) == 11


def test_fuse_script_mismatched_inputs(fused_fold, tmp_path):
    speech, text, _, _ = fused_fold
    bad_text = tmp_path / "text"
    scores = read_scores(os.path.join(text, "scores", "holdout.csv"))
    write_scores(str(bad_text / "scores" / "holdout.csv"), scores.ids, scores.labels, scores.scores, CLASSES)
    test = read_scores(os.path.join(text, "scores", "test.csv"))
    write_scores(str(bad_text / "scores" / "test.csv"), test.ids[:-4], test.labels[:-4], test.scores[:-4], CLASSES)
    result = _fuse(speech, str(bad_text), str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "4 ids only in speech" in result.stderr and "test.csv" in result.stderr
    assert not os.path.exists(tmp_path / "out")
    # a missing score file
    os.remove(bad_text / "scores" / "test.csv")
    result = _fuse(speech, str(bad_text), str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "test.csv" in result.stderr and "No such file" in result.stderr


def test_fuse_script_takes_speechbrain_flags_and_numeric_folders(fused_fold, tmp_path):
    """SpeechBrain's run options are accepted (loso.py forwards them to every job), and an
    output folder named like a number stays a folder name."""
    speech, text, _, _ = fused_fold
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "recipes", "fuse.py"),
         os.path.join(REPO_ROOT, "hparams", "fusion.yaml"), "--speech_folder", speech,
         "--text_folder", text, "--output_folder", "2024", "--device", "cpu", "--methods", "[weighted]"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(tmp_path / "2024" / "weighted" / "metrics_test.json")
