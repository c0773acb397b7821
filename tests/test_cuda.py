"""The classifying recipes on a CUDA device with mixed precision (SpeechBrain's ``--device``,
``--precision`` and ``--eval_precision`` run options): one speech fold and one text fold, at
tiny scale, must write score files with a finite log-posterior row for every utterance.
Skipped where torch sees no CUDA device."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmer_lobes.scores import read_scores

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason=f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, "
               f"built with CUDA {torch.version.cuda or 'none'})",
    ),
]
DEVICE = "cuda:0"
SPLITS = ("holdout", "test")


def _half_precision():
    """bf16 where the device supports it, else fp16."""
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"


def _run(command, timeout=900):
    result = subprocess.run([sys.executable, *command], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"command failed ({result.returncode}): {' '.join(command)}\n"
                    f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-8000:]}")
    return result


def _check_fold(output_folder, precision, eval_precision):
    """The run used the device and precisions asked for, and each split's score file holds
    every utterance of the fold once, with finite log-posteriors that sum to 1."""
    with open(os.path.join(output_folder, "log.txt"), encoding="utf-8") as handle:
        log = handle.read()
    assert f"--precision={precision}`" in log and f"--eval_precision={eval_precision}`" in log
    assert f"Gradscaler enabled: `{precision == 'fp16'}`" in log
    for split in SPLITS:
        scores = read_scores(os.path.join(output_folder, "scores", f"{split}.csv"))
        with open(os.path.join(output_folder, "fold", f"{split}.json"), encoding="utf-8") as handle:
            expected = set(json.load(handle))
        assert len(scores.ids) == len(set(scores.ids)) and set(scores.ids) == expected
        assert np.all(np.isfinite(scores.scores)), f"non-finite log-posteriors in {split}"
        np.testing.assert_allclose(np.exp(scores.scores).sum(axis=1), 1.0, atol=1e-2)
        assert os.path.exists(os.path.join(output_folder, f"metrics_{split}.json"))


def test_speech_fold_on_cuda_in_fp16(iemocap_manifests, tmp_path):
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path / "ser_cuda")
    _run(["recipes/train.py", "hparams/resnet_ser.yaml", f"--data_folder={data_folder}",
          f"--manifest_folder={manifest_folder}", "--skip_prep=True", "--test_fold=5", "--mode=scratch",
          f"--output_folder={out}", "--number_of_epochs=1", "--channels=[4, 8, 16, 32]", "--n_mels=32",
          "--embedding_size=32", "--chunk_frames=[100]", "--num_workers=0", "--batch_size=32",
          "--augment_copies=1", f"--device={DEVICE}", "--precision=fp16", "--eval_precision=fp16",
          "--noprogressbar"])
    _check_fold(out, "fp16", "fp16")
    with open(os.path.join(out, "log.txt"), encoding="utf-8") as handle:
        assert f"on {DEVICE}" in handle.read()  # the evaluation batches of the device


def test_text_fold_on_cuda_in_half_precision(iemocap_manifests, tmp_path):
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path / "text_cuda")
    precision = _half_precision()
    _run(["recipes/train_text.py", "hparams/bert_text.yaml", f"--data_folder={data_folder}",
          f"--manifest_folder={manifest_folder}", "--skip_prep=True", "--test_fold=5",
          f"--output_folder={out}", "--number_of_epochs=1", "--lr=1e-4", f"--device={DEVICE}",
          f"--precision={precision}", f"--eval_precision={precision}", "--noprogressbar"])
    _check_fold(out, precision, precision)
