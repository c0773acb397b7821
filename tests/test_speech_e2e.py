"""End to end: speaker pretraining on mini-VoxCeleb, then SER transfer on mini-IEMOCAP,
through the same commands a user types, at tiny scale (small channels, few epochs)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mmer_lobes.scores import read_scores

pytestmark = pytest.mark.slow

TINY = ["--channels=[4, 8, 16, 32]", "--n_mels=32", "--embedding_size=32",
        "--chunk_frames=[100]", "--num_workers=0", "--batch_size=32"]


@pytest.fixture(scope="module")
def speaker_run(mini_corpora, tmp_path_factory, run_command):
    """A 2-epoch speaker pretraining run; returns its output folder."""
    out = str(tmp_path_factory.mktemp("speaker"))
    run_command(["recipes/train_speaker.py", "hparams/resnet_speaker.yaml",
                 f"--data_folder={os.path.join(mini_corpora, 'VoxCeleb1')}",
                 f"--output_folder={out}", "--number_of_epochs=2", *TINY])
    return out


def test_speaker_pretraining_writes_encoder_and_verification(speaker_run):
    with open(os.path.join(speaker_run, "verification.json")) as handle:
        verification = json.load(handle)
    assert 0.0 <= verification["EER"] <= 100.0
    assert verification["target_trials"] > 0 and verification["nontarget_trials"] > 0
    state = torch.load(os.path.join(speaker_run, "encoder", "encoder.ckpt"), weights_only=True)
    assert "trunk.stem.0.weight" in state and state["trunk.stem.0.weight"].shape[0] == 4
    log = open(os.path.join(speaker_run, "train_log.txt")).read()
    assert "epoch: 2" in log and "EER" in log


def _ser_command(data_folder, out, mode, encoder, epochs, *extra):
    command = ["recipes/train.py", "hparams/resnet_ser.yaml", f"--data_folder={data_folder}",
               "--test_session=5", f"--mode={mode}", f"--output_folder={out}",
               f"--number_of_epochs={epochs}", "--augment_copies=1", *TINY, *extra]
    if encoder:
        command.append(f"--pretrained_encoder={encoder}")
    return command


@pytest.mark.parametrize("mode", ["linear_probe", "finetune"])
def test_ser_transfer_writes_scores_and_metrics(mode, speaker_run, iemocap_manifests, tmp_path, run_command):
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path / mode)
    run_command(_ser_command(data_folder, out, mode, os.path.join(speaker_run, "encoder"), 1,
                             f"--manifest_folder={manifest_folder}", "--skip_prep=True"))
    test_manifest = json.load(open(os.path.join(manifest_folder, "Session5.json")))
    for split in ("holdout", "test"):
        scores = read_scores(os.path.join(out, "scores", f"{split}.csv"))
        assert scores.classes == ["ang", "hap", "neu", "sad"]
        np.testing.assert_allclose(np.exp(scores.scores).sum(axis=1), 1.0, atol=1e-4)
        metrics = json.load(open(os.path.join(out, f"metrics_{split}.json")))
        predicted = scores.scores.argmax(axis=1)
        expected_wa = 100.0 * np.mean(predicted == scores.label_indices())
        assert metrics["WA"] == pytest.approx(expected_wa)
        assert np.sum(metrics["confusion"]) == len(scores.ids)
        assert os.path.getsize(os.path.join(out, f"confusion_{split}.png")) > 0
    test_scores = read_scores(os.path.join(out, "scores", "test.csv"))
    assert sorted(test_scores.ids) == sorted(test_manifest)
    assert [test_manifest[u]["emo"] for u in test_scores.ids] == test_scores.labels
    if mode == "linear_probe":
        # The frozen encoder leaves training exactly as it was loaded.
        ckpt = [d for d in os.listdir(os.path.join(out, "save")) if d.startswith("CKPT")][0]
        trained = torch.load(os.path.join(out, "save", ckpt, "encoder.ckpt"), weights_only=True)
        pretrained = torch.load(os.path.join(speaker_run, "encoder", "encoder.ckpt"), weights_only=True)
        for key, value in pretrained.items():
            assert torch.equal(trained[key], value), key


def test_killed_run_resumes_from_its_checkpoint(iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path / "resume")
    command = [sys.executable, *_ser_command(data_folder, out, "scratch", None, 3,
                                             f"--manifest_folder={manifest_folder}", "--skip_prep=True")]
    process = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    save = os.path.join(out, "save")
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if os.path.isdir(save) and any(
            os.path.isfile(os.path.join(save, d, "CKPT.yaml")) for d in os.listdir(save) if d.startswith("CKPT")
        ):
            break
        time.sleep(0.5)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    log = open(os.path.join(out, "train_log.txt")).read()
    assert "epoch: 1," in log and "epoch: 3," not in log

    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    log_lines = open(os.path.join(out, "train_log.txt")).read().splitlines()
    epochs = [line.split(",")[0] for line in log_lines if line.startswith("epoch:")]
    # Epoch 1 was trained once, before the kill; the restart went on from there.
    assert epochs.count("epoch: 1") == 1 and "epoch: 3" in epochs
    assert "Loading a checkpoint" in result.stdout + result.stderr
    assert os.path.isfile(os.path.join(out, "metrics_test.json"))


def test_mismatched_encoder_checkpoint_names_the_keys(speaker_run, iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    command = _ser_command(data_folder, str(tmp_path / "bad"), "finetune", os.path.join(speaker_run, "encoder"), 1,
                           f"--manifest_folder={manifest_folder}", "--skip_prep=True")
    command = [c for c in command if not c.startswith("--channels")] + ["--channels=[8, 16, 32, 64]"]
    result = subprocess.run([sys.executable, *command], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("train.py: error: encoder checkpoint")
    assert "shape mismatch" in last_line and "trunk.stem.0.weight" in last_line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("override, message", [
    ("--test_session=7", "test session 7 is not one of the sessions"),
    ("--sessions=[1, 2, 3, 4, 5, 6]", "Session6.json"),
])
def test_missing_fold_is_a_clear_error(override, message, iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    command = _ser_command(data_folder, str(tmp_path / "x"), "scratch", None, 1,
                           f"--manifest_folder={manifest_folder}", "--skip_prep=True")
    command = [c for c in command if not c.startswith("--test_session")] + [override]
    if not override.startswith("--test_session"):
        command.append("--test_session=5")
    result = subprocess.run([sys.executable, *command], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_empty_manifest_is_a_clear_error(iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    broken = tmp_path / "manifests"
    broken.mkdir()
    for k in range(1, 6):
        text = open(os.path.join(manifest_folder, f"Session{k}.json")).read() if k != 2 else "{}"
        (broken / f"Session{k}.json").write_text(text)
    command = _ser_command(data_folder, str(tmp_path / "x"), "scratch", None, 1,
                           f"--manifest_folder={broken}", "--skip_prep=True")
    result = subprocess.run([sys.executable, *command], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode != 0
    assert "Session2.json is empty" in result.stderr and "Traceback" not in result.stderr
