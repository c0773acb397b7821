"""Emotion folds from imported speaker encoders, end to end through the commands a user types:
mmer-import-encoder, recipes/train.py (linear_probe and finetune, with no architecture flag),
recipes/export.py and mmer-predict. The published models are written here with random weights
(tests/test_import_encoder.py checks them against their own code)."""
import csv
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from mmer_lobes.hparams_files import read_yaml_file
from test_import_encoder import run_import, write_speechbrain_folder, write_wespeaker_folder

pytestmark = pytest.mark.slow

PREDICT = os.path.join(os.path.dirname(sys.executable), "mmer-predict")
TRAINING_VIEW = ["--chunk_frames=[100]", "--num_workers=0", "--augment_copies=1", "--number_of_epochs=1"]
# what the exported hyperparams.yaml builds as the front end, and the network the model card names
FRONT_ENDS = {"wespeaker": "!new:custom_interface.KaldiFbank", "speechbrain": "!new:speechbrain.lobes.features.Fbank"}
NETWORKS = {"wespeaker": "ResNetEncoder", "speechbrain": "ECAPA_TDNN"}


@pytest.fixture(scope="module", params=["wespeaker", "speechbrain"])
def imported_encoder(request, tmp_path_factory):
    """An encoder folder imported from a small published-layout model of each kind."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"imported_{kind}")
    if kind == "wespeaker":
        write_wespeaker_folder(request.getfixturevalue("wespeaker_resnet"), "small", root / "published")
    else:
        write_speechbrain_folder(root / "published", "small")
    result = run_import(f"--{kind}", str(root / "published"), "--output", str(root / "encoder"))
    assert result.returncode == 0, result.stderr[-3000:]
    return kind, str(root / "encoder")


@pytest.fixture(scope="module", params=["linear_probe", "finetune"])
def imported_fold(request, imported_encoder, iemocap_manifests, tmp_path_factory, run_command):
    """One fold (test session 5) trained from the imported encoder; returns (kind, mode, folder)."""
    kind, encoder = imported_encoder
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path_factory.mktemp(f"fold_{kind}_{request.param}"))
    run_command(["recipes/train.py", "hparams/resnet_ser.yaml", f"--data_folder={data_folder}",
                 f"--manifest_folder={manifest_folder}", "--skip_prep=True", "--test_fold=5",
                 f"--mode={request.param}", f"--pretrained_encoder={encoder}", f"--output_folder={out}",
                 *TRAINING_VIEW])
    return kind, request.param, out


def test_fold_trains_on_the_imported_encoder(imported_fold, imported_encoder):
    kind, mode, out = imported_fold
    with open(os.path.join(out, "metrics_test.json")) as handle:
        metrics = json.load(handle)
    print(f"{kind} {mode}: test UA {metrics['UA']:.2f} WA {metrics['WA']:.2f} (1 epoch, random speaker weights)")
    assert 0 <= metrics["UA"] <= 100 and sum(map(sum, metrics["confusion"])) > 0
    # the fold records the encoder definition it used: the folder's, unchanged
    with open(os.path.join(out, "encoder.yaml")) as used, open(os.path.join(imported_encoder[1], "encoder.yaml")) as folder:
        assert used.read() == folder.read()
    # linear probing leaves the imported weights as they were; fine-tuning changes them
    imported = torch.load(os.path.join(imported_encoder[1], "encoder.ckpt"), weights_only=True)
    save = os.path.join(out, "save")
    checkpoint = next(os.path.join(save, name) for name in sorted(os.listdir(save)) if name.startswith("CKPT+"))
    trained = torch.load(os.path.join(checkpoint, "encoder.ckpt"), weights_only=True)
    assert trained.keys() == imported.keys()
    unchanged = all(torch.equal(trained[key], imported[key]) for key in imported)
    assert unchanged == (mode == "linear_probe")


def test_exported_fold_predicts_what_the_recipe_scored(imported_fold, iemocap_manifests, tmp_path):
    """mmer-predict on the exported fold gives each test clip the posteriors that the recipe
    wrote for it (both score one clip at a time)."""
    kind, mode, out = imported_fold
    result = subprocess.run([sys.executable, "recipes/export.py", "hparams/export.yaml", f"--speech_folder={out}",
                             f"--output_folder={tmp_path / 'model'}"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr[-3000:]
    exported = read_yaml_file(str(tmp_path / "model" / "hyperparams.yaml"))
    assert exported["encoder_definition"]["compute_features"].tag.value == FRONT_ENDS[kind]
    card = open(tmp_path / "model" / "README.md").read()
    assert NETWORKS[kind] in card

    data_folder, _ = iemocap_manifests
    with open(os.path.join(out, "scores", "test.csv")) as handle:
        rows = list(csv.DictReader(handle))[:3]
    with open(os.path.join(out, "fold", "test.json")) as handle:
        manifest = json.load(handle)
    for row in rows:
        wav = manifest[row["id"]]["wav"].replace("{data_root}", data_folder)
        result = subprocess.run([PREDICT, "--model", str(tmp_path / "model"), "--json", wav],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        predicted = json.loads(result.stdout)
        for label, probability in predicted["probabilities"].items():
            assert probability == pytest.approx(math.exp(float(row[label])), abs=1e-4), (row["id"], label)
