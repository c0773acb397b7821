"""The named baselines: openSMILE eGeMAPS functionals, the hold-out's choice of settings, and
recipes/train_baseline.py on one fold of the built-in mini-IEMOCAP through the command a user
types (speech and text), cutting the fold the neural recipes cut."""
import json
import os

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score

from mmer_lobes.baselines import BaselineError, EgemapsFunctionals, fit_on_holdout
from mmer_lobes.scores import read_scores

CLASSES = ["ang", "hap", "neu", "sad"]


def _harmonic_tone(frequency, seconds=1.5, sample_rate=16000, amplitude=0.3):
    time = torch.arange(int(seconds * sample_rate)) / sample_rate
    return amplitude * sum(torch.sin(2 * np.pi * k * frequency * time) / k for k in range(1, 6))


@pytest.mark.parametrize("frequency", [110.0, 220.0])
def test_egemaps_measures_the_pitch_and_loudness_of_a_tone(frequency):
    extract = EgemapsFunctionals()
    features = dict(zip(extract.feature_names, extract(_harmonic_tone(frequency))))
    # eGeMAPS gives F0 in semitones above 27.5 Hz
    assert features["F0semitoneFrom27.5Hz_sma3nz_amean"] == pytest.approx(12 * np.log2(frequency / 27.5), abs=0.5)
    quiet = dict(zip(extract.feature_names, extract(_harmonic_tone(frequency, amplitude=0.03))))
    assert features["loudness_sma3_amean"] > 2 * quiet["loudness_sma3_amean"]


def test_the_hold_out_chooses_the_settings():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 10))

    def draw(n):
        labels = rng.integers(0, 4, n)
        return centres[labels] + 2.0 * rng.normal(size=(n, 10)), labels

    train, holdout = draw(60), draw(200)
    grid = {"C": [1e-4, 1e-2, 1.0, 100.0], "class_weight": ["balanced", None]}
    model, tried = fit_on_holdout(LogisticRegression(max_iter=2000), grid, train, holdout, "UA")
    expected = []  # an independent search: scikit-learn's balanced accuracy is UA
    for parameters, _ in tried:
        fitted = LogisticRegression(max_iter=2000, **parameters).fit(*train)
        expected.append(100 * balanced_accuracy_score(holdout[1], fitted.predict(holdout[0])))
    assert [score for _, score in tried] == pytest.approx(expected, abs=1e-9)
    best = tried[int(np.argmax(expected))][0]
    assert {key: model.get_params()[key] for key in grid} == best and len(tried) == 8
    with pytest.raises(BaselineError, match="selection metric must be one of UA, WA, wF1, got 'F1'"):
        fit_on_holdout(LogisticRegression(), {}, train, holdout, "F1")
    with pytest.raises(BaselineError, match="fewer than two classes"):
        fit_on_holdout(LogisticRegression(), {}, (train[0], np.zeros(60, int)), holdout)


@pytest.mark.parametrize("baseline", ["egemaps", "tfidf"])
def test_the_baseline_recipe_scores_the_fold_the_neural_recipes_cut(iemocap_manifests, run_command, tmp_path,
                                                                  baseline):
    data_folder, manifest_folder = iemocap_manifests
    out = tmp_path / baseline
    run_command(["recipes/train_baseline.py", f"hparams/baseline_{baseline}.yaml", "--data_folder", data_folder,
                 "--manifest_folder", manifest_folder, "--skip_prep", "True", "--test_fold", "5",
                 "--output_folder", str(out), "--selection_metric", "wF1"])
    with open(out / "fold" / "test.json", encoding="utf-8") as handle:
        test_ids = list(json.load(handle))
    with open(out / "fold" / "fold.json", encoding="utf-8") as handle:
        assert json.load(handle)["held_out"] == "session 5"
    for split in ("holdout", "test"):
        scores = read_scores(str(out / "scores" / f"{split}.csv"))
        assert scores.classes == CLASSES and np.allclose(np.exp(scores.scores).sum(axis=1), 1.0, atol=1e-6)
        truth, predicted = scores.label_indices(), scores.scores.argmax(axis=1)
        with open(out / f"metrics_{split}.json", encoding="utf-8") as handle:
            metrics = json.load(handle)
        assert metrics["UA"] == pytest.approx(100 * balanced_accuracy_score(truth, predicted), abs=1e-9)
        assert metrics["wF1"] == pytest.approx(100 * f1_score(truth, predicted, average="weighted"), abs=1e-9)
        assert os.path.getsize(out / f"confusion_{split}.png") > 0
    assert sorted(read_scores(str(out / "scores" / "test.csv")).ids) == sorted(test_ids)
    log = (out / "train_log.txt").read_text(encoding="utf-8")
    n_points = 10 if baseline == "egemaps" else 8
    assert log.count("valid wF1: ") == n_points and "split: test" in log
    # the hold-out figure written is the best of the grid points logged (the project's wF1)
    logged = [float(line.rsplit("valid wF1: ", 1)[1]) for line in log.splitlines() if "valid wF1: " in line]
    with open(out / "metrics_holdout.json", encoding="utf-8") as handle:
        assert json.load(handle)["wF1"] == pytest.approx(max(logged), abs=0.01)


def test_a_grid_the_pipeline_lacks_is_one_line(iemocap_manifests, repo_root, tmp_path):
    import subprocess
    import sys

    data_folder, manifest_folder = iemocap_manifests
    result = subprocess.run(
        [sys.executable, "recipes/train_baseline.py", "hparams/baseline_tfidf.yaml", "--data_folder", data_folder,
         "--manifest_folder", manifest_folder, "--skip_prep", "True", "--test_fold", "5",
         "--output_folder", str(tmp_path / "out"), "--selection_grid", "{svc__C: [1.0]}"],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    # (SpeechBrain's own warning that torchvision is missing may come before it)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        "train_baseline.py: error: hparams/baseline_tfidf.yaml: the classifier refuses the selection grid: "
        "Invalid parameter 'svc'")
