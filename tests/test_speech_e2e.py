"""End to end: speaker pretraining on mini-VoxCeleb, then SER transfer on mini-IEMOCAP,
through the same commands a user types, at tiny scale (small channels, few epochs)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
import torch
import yaml

from mmer_lobes.encoder_folders import load_encoder_definition
from mmer_lobes.resnet import ResNetEncoder
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


def _trial_scores(speaker_run, wav_folder):
    """Cosine scores of the run's trial list, computed here without the recipe's code: the
    exported encoder and the embedding layer of the checkpoint it came from, on log-mels of
    each whole file (one at a time, as the recipe scores them). Returns (labels, scores)."""
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    from mmer_lobes.resnet import EmbeddingClassifier

    exported = torch.load(os.path.join(speaker_run, "encoder", "encoder.ckpt"), weights_only=True)
    save = os.path.join(speaker_run, "save")
    sources = []
    for name in sorted(os.listdir(save)):
        if name.startswith("CKPT+"):
            state = torch.load(os.path.join(save, name, "encoder.ckpt"), weights_only=True)
            if all(torch.equal(state[key], value) for key, value in exported.items()):
                sources.append(name)
    assert sources, "the exported encoder is the encoder of no kept checkpoint"
    head_state = torch.load(os.path.join(save, sources[0], "classifier.ckpt"), weights_only=True)
    encoder = ResNetEncoder(n_mels=32, channels=[4, 8, 16, 32])
    encoder.load_state_dict(exported)
    head = EmbeddingClassifier(encoder.output_size, head_state["output.weight"].shape[0],
                               embedding_size=32, cosine=True)
    head.load_state_dict(head_state)
    encoder.eval(), head.eval()
    fbank = Fbank(sample_rate=16000, n_mels=32, win_length=25, hop_length=10)
    norm = InputNormalization(norm_type="sentence", std_norm=True)
    cache, labels, scores = {}, [], []

    def embedding(relative):
        if relative not in cache:
            signal, rate = soundfile.read(os.path.join(wav_folder, relative), dtype="float32")
            assert rate == 16000
            feats = fbank(torch.from_numpy(signal).unsqueeze(0))
            feats = norm(feats, torch.ones(1))
            cache[relative] = head.embed(encoder(feats, torch.ones(1)))[0]
        return cache[relative]

    with torch.no_grad(), open(os.path.join(speaker_run, "manifests", "trials.txt")) as handle:
        for line in handle:
            if line.strip():
                label, enrol, test = line.split()
                labels.append(int(label))
                scores.append(float(torch.nn.functional.cosine_similarity(embedding(enrol), embedding(test), dim=0)))
    return np.array(labels), np.array(scores)


def _threshold_sweep(labels, scores):
    """(FRR, FAR) pairs of accepting ``score > t`` for every threshold t between and at the
    sorted distinct scores, and below all of them."""
    distinct = np.unique(scores)
    thresholds = np.concatenate([[distinct[0] - 1.0], distinct, (distinct[:-1] + distinct[1:]) / 2])
    target, nontarget = scores[labels == 1], scores[labels == 0]
    return [(np.mean(target <= t), np.mean(nontarget > t)) for t in thresholds]


def test_speaker_pretraining_writes_encoder_and_verification(speaker_run, mini_corpora):
    with open(os.path.join(speaker_run, "verification.json")) as handle:
        verification = json.load(handle)
    labels, scores = _trial_scores(speaker_run, os.path.join(mini_corpora, "VoxCeleb1", "wav"))
    assert verification["target_trials"] == int(np.sum(labels == 1)) > 0
    assert verification["nontarget_trials"] == int(np.sum(labels == 0)) > 0
    # The EER is where the miss and false-alarm rates cross: (FRR + FAR) / 2 at a threshold of
    # the sweep where |FAR - FRR| is smallest (several such thresholds may give several values).
    sweep = _threshold_sweep(labels, scores)
    gap = min(abs(far - frr) for frr, far in sweep)
    candidates = sorted({round(100.0 * (frr + far) / 2, 6) for frr, far in sweep if abs(far - frr) <= gap + 1e-6})
    assert any(verification["EER"] == pytest.approx(value, abs=1e-4) for value in candidates), (
        verification["EER"], candidates)
    state = torch.load(os.path.join(speaker_run, "encoder", "encoder.ckpt"), weights_only=True)
    assert "trunk.stem.0.weight" in state and state["trunk.stem.0.weight"].shape[0] == 4
    # the encoder folder says how it was built: the run's features and architecture
    definition = load_encoder_definition(os.path.join(speaker_run, "encoder"))
    assert definition["n_mels"] == 32 and definition["channels"] == [4, 8, 16, 32]
    assert definition["compute_features"].compute_fbanks.n_mels == 32
    definition["encoder"].load_state_dict(state, strict=True)
    log = open(os.path.join(speaker_run, "train_log.txt")).read()
    assert "epoch: 2" in log and "EER" in log


def _ser_command(data_folder, out, mode, encoder, epochs, *extra):
    command = ["recipes/train.py", "hparams/resnet_ser.yaml", f"--data_folder={data_folder}",
               "--test_fold=5", f"--mode={mode}", f"--output_folder={out}",
               f"--number_of_epochs={epochs}", "--augment_copies=1", *TINY, *extra]
    if encoder:
        command.append(f"--pretrained_encoder={encoder}")
    return command


@pytest.fixture(scope="module", params=["linear_probe", "finetune"])
def ser_run(request, speaker_run, iemocap_manifests, tmp_path_factory, run_command):
    """A 1-epoch SER transfer run per mode; returns (mode, output folder)."""
    mode = request.param
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path_factory.mktemp(f"ser_{mode}"))
    run_command(_ser_command(data_folder, out, mode, os.path.join(speaker_run, "encoder"), 1,
                             f"--manifest_folder={manifest_folder}", "--skip_prep=True"))
    return mode, out


def _expected_metrics(scores):
    """WA, UA, per-class recall and confusion counts of a score file, recomputed with numpy."""
    truth, predicted = scores.label_indices(), scores.scores.argmax(axis=1)
    n_classes = len(scores.classes)
    confusion = np.array([[np.sum((truth == t) & (predicted == p)) for p in range(n_classes)]
                          for t in range(n_classes)])
    recall = {name: 100.0 * np.mean(predicted[truth == k] == k) if np.any(truth == k) else None
              for k, name in enumerate(scores.classes)}
    present = [value for value in recall.values() if value is not None]
    return {"WA": 100.0 * np.mean(predicted == truth), "UA": float(np.mean(present)),
            "recall": recall, "confusion": confusion.tolist(), "n": len(truth)}


def _check_metrics_file(path, scores):
    metrics = json.load(open(path))
    expected = _expected_metrics(scores)
    assert metrics["WA"] == pytest.approx(expected["WA"], abs=1e-9)
    assert metrics["UA"] == pytest.approx(expected["UA"], abs=1e-9)
    assert metrics["recall"] == pytest.approx(expected["recall"], abs=1e-9)
    assert metrics["confusion"] == expected["confusion"] and metrics["n"] == expected["n"]
    assert metrics["classes"] == scores.classes


def _train_log(out):
    """The valid stats of every epoch line, and the evaluation lines by split, as strings."""
    epochs, evaluations = {}, {}
    for line in open(os.path.join(out, "train_log.txt")).read().splitlines():
        fields = dict(re.findall(r"([a-zA-Z][\w ]*?): (\S+?)(?:,|$| -)", line))
        if line.startswith("epoch:"):
            epochs[int(fields["epoch"])] = fields
        elif line.startswith("split:"):
            evaluations[fields["split"]] = fields
    return epochs, evaluations


def _checkpoints(out):
    """{checkpoint folder: (epoch, CKPT.yaml meta)} of the run's kept checkpoints."""
    save = os.path.join(out, "save")
    found = {}
    for name in os.listdir(save):
        if name.startswith("CKPT+"):
            with open(os.path.join(save, name, "CKPT.yaml")) as handle:
                meta = yaml.safe_load(handle)
            with open(os.path.join(save, name, "counter.ckpt")) as handle:
                found[name] = (int(handle.read().strip()), meta)
    assert found
    return found


def _check_selected_checkpoint(out, loaded_key="epoch loaded"):
    """Checkpoint metas are fractions; the checkpoint the recipe evaluated (the least
    error_rate) holds 1 - WA/100 of the hold-out, both as recomputed from scores/holdout.csv
    and as train_log.txt logged it for that checkpoint's epoch."""
    checkpoints = _checkpoints(out)
    for epoch, meta in checkpoints.values():
        assert isinstance(meta["error_rate"], float) and 0.0 <= meta["error_rate"] <= 1.0, meta
    epochs, evaluations = _train_log(out)
    selected = int(evaluations["holdout"][loaded_key])
    assert int(evaluations["test"][loaded_key]) == selected
    metas = {epoch: meta for epoch, meta in checkpoints.values()}
    assert selected in metas, (selected, sorted(metas))
    error = metas[selected]["error_rate"]
    assert error == min(meta["error_rate"] for meta in metas.values())
    holdout = read_scores(os.path.join(out, "scores", "holdout.csv"))
    recomputed_wa = 100.0 * np.mean(holdout.scores.argmax(axis=1) == holdout.label_indices())
    # MetricStats averages in float32: exact to 1e-6, far below one utterance in a hold-out
    assert error == pytest.approx(1.0 - recomputed_wa / 100.0, abs=1e-6)
    # the hold-out evaluation logged the WA that the validation of that epoch logged ...
    assert evaluations["holdout"]["test WA"] == epochs[selected]["valid WA"]
    assert float(epochs[selected]["valid WA"]) == pytest.approx(100.0 * (1.0 - error), abs=5.1e-3)
    # ... and no logged epoch had a lower hold-out error (rounding keeps the order)
    logged_errors = {epoch: 1.0 - float(fields["valid WA"]) / 100.0 for epoch, fields in epochs.items()}
    assert logged_errors[selected] == min(logged_errors.values())
    return selected, error


def test_ser_transfer_writes_scores_and_metrics(ser_run, speaker_run, iemocap_manifests):
    mode, out = ser_run
    _, manifest_folder = iemocap_manifests
    test_manifest = json.load(open(os.path.join(manifest_folder, "Session5.json")))
    for split in ("holdout", "test"):
        scores = read_scores(os.path.join(out, "scores", f"{split}.csv"))
        assert scores.classes == ["ang", "hap", "neu", "sad"]
        np.testing.assert_allclose(np.exp(scores.scores).sum(axis=1), 1.0, atol=1e-4)
        _check_metrics_file(os.path.join(out, f"metrics_{split}.json"), scores)
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


def test_batched_evaluation_gives_the_one_at_a_time_scores(ser_run, speaker_run, iemocap_manifests, tmp_path,
                                                           run_command):
    """The same trained fold evaluated again in padded batches of 32 clips of mixed
    durations (the GPU setting, forced on the CPU) writes the scores it wrote one clip at a
    time (the CPU setting), for every utterance."""
    mode, out = ser_run
    data_folder, manifest_folder = iemocap_manifests
    batched = str(tmp_path / "batched")
    shutil.copytree(out, batched, ignore=shutil.ignore_patterns("scores", "metrics_*", "confusion_*"))
    run_command(_ser_command(data_folder, batched, mode, os.path.join(speaker_run, "encoder"), 1,
                             f"--manifest_folder={manifest_folder}", "--skip_prep=True",
                             "--cpu_eval_batch_size=32"))
    assert "Evaluation batches of 32 clips" in open(os.path.join(batched, "log.txt")).read()
    assert len(read_scores(os.path.join(out, "scores", "test.csv")).ids) > 32  # test: several batches
    for split in ("holdout", "test"):
        alone = read_scores(os.path.join(out, "scores", f"{split}.csv"))
        together = read_scores(os.path.join(batched, "scores", f"{split}.csv"))
        assert sorted(together.ids) == sorted(alone.ids)
        rows = {utt: row for utt, row in zip(together.ids, together.scores)}
        # 1e-5, or float32's own resolution where a log-posterior is far below 0 (4e-6 at -45)
        np.testing.assert_allclose(np.stack([rows[utt] for utt in alone.ids]), alone.scores, atol=1e-5, rtol=1e-6)


def test_ser_checkpoint_error_rate_is_the_holdout_error_fraction(ser_run):
    _, out = ser_run
    selected, _ = _check_selected_checkpoint(out)
    assert selected == 1  # a 1-epoch run


def test_reused_label_encoder_in_another_order_is_refused(ser_run, speaker_run, iemocap_manifests,
                                                          tmp_path, repo_root):
    """The trained folder again with the classes reordered: refused before any training, with
    one line naming label_encoder.txt, and the run's results are left alone."""
    mode, trained = ser_run
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path / "rerun")
    shutil.copytree(trained, out)  # the module's folder stays as its other tests expect it
    checkpoints = sorted(_checkpoints(out))
    kept = ["save/label_encoder.txt", "train_log.txt", "scores/test.csv", "scores/holdout.csv",
            "metrics_test.json"] + [os.path.join("save", name, "CKPT.yaml") for name in checkpoints]
    before = {name: open(os.path.join(out, name)).read() for name in kept}
    command = _ser_command(data_folder, out, mode, os.path.join(speaker_run, "encoder"), 1,
                           f"--manifest_folder={manifest_folder}", "--skip_prep=True",
                           "--emotions=[sad, neu, hap, ang]")
    result = subprocess.run([sys.executable, *command], cwd=repo_root, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 2  # bad input (mmer_lobes.errors.run_script)
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    encoder_file = os.path.join(out, "save", "label_encoder.txt")
    assert last_line.startswith(f"train.py: error: {encoder_file} holds the classes ")
    assert "['ang', 'hap', 'neu', 'sad']" in last_line and "emotions: ['sad', 'neu', 'hap', 'ang']" in last_line
    assert last_line.endswith("remove the file or use another output_folder")
    assert result.stderr.count("holds the classes") == 1  # one message, on that one line
    # refused before training: no epoch logged, no checkpoint written, no result rewritten
    assert {name: open(os.path.join(out, name)).read() for name in kept} == before
    assert sorted(_checkpoints(out)) == checkpoints


def test_killed_run_resumes_from_its_checkpoint(iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path / "resume")
    command = [sys.executable, *_ser_command(data_folder, out, "scratch", None, 3,
                                             f"--manifest_folder={manifest_folder}", "--skip_prep=True")]
    process = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    # Killed once epoch 1 is saved, so that epoch 1 is trained once (a kill mid-save is safe
    # too: mmer_lobes.checkpoints, tests/test_checkpoints.py).
    run_log = os.path.join(out, "log.txt")
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if os.path.isfile(run_log) and "Saved an end-of-epoch checkpoint" in open(run_log).read():
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
    test_scores = read_scores(os.path.join(out, "scores", "test.csv"))
    _check_metrics_file(os.path.join(out, "metrics_test.json"), test_scores)
    # three epochs: the recipe evaluated the kept checkpoint of the least hold-out error
    _check_selected_checkpoint(out)


def test_mismatched_encoder_checkpoint_names_the_keys(speaker_run, iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    # an encoder folder whose checkpoint is not its definition's network
    folder = tmp_path / "encoder"
    shutil.copytree(os.path.join(speaker_run, "encoder"), folder)
    torch.save(ResNetEncoder(n_mels=32, channels=[8, 16, 32, 64]).state_dict(), folder / "encoder.ckpt")
    command = _ser_command(data_folder, str(tmp_path / "bad"), "finetune", str(folder), 1,
                           f"--manifest_folder={manifest_folder}", "--skip_prep=True")
    result = subprocess.run([sys.executable, *command], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 2  # bad input (mmer_lobes.errors.run_script)
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("train.py: error: encoder checkpoint")
    assert "shape mismatch" in last_line and "trunk.stem.0.weight" in last_line
    assert "Traceback" not in result.stderr


def test_architecture_flag_against_the_encoder_folder_is_refused(speaker_run, iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    command = _ser_command(data_folder, str(tmp_path / "bad"), "finetune", os.path.join(speaker_run, "encoder"), 1,
                           f"--manifest_folder={manifest_folder}", "--skip_prep=True")
    command = [c for c in command if not c.startswith("--channels")] + ["--channels=[8, 16, 32, 64]"]
    result = subprocess.run([sys.executable, *command], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"train.py: error: --channels [8, 16, 32, 64] contradicts the encoder folder {speaker_run}/encoder "
        "(channels: [4, 8, 16, 32]): the folder defines the features and the architecture; drop the override")
    assert not os.path.exists(tmp_path / "bad" / "hyperparams.yaml")  # refused before the run began


@pytest.mark.parametrize("override, message", [
    # the old name of --test_fold still works
    ("--test_session=7", "train.py: error: fold 7 is not one of the folds of IEMOCAP, leave one session out "
                         "(5 folds): ['1', '2', '3', '4', '5']"),
    ("--protocol=official", "train.py: error: protocol official needs the corpus's train, holdout and test groups"),
])
def test_missing_fold_is_a_clear_error(override, message, iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    command = _ser_command(data_folder, str(tmp_path / "x"), "scratch", None, 1,
                           f"--manifest_folder={manifest_folder}", "--skip_prep=True")
    command = [c for c in command if not c.startswith("--test_fold")] + [override]
    result = subprocess.run([sys.executable, *command], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 2  # bad input (mmer_lobes.errors.run_script)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_empty_manifest_is_a_clear_error(iemocap_manifests, tmp_path, repo_root):
    data_folder, manifest_folder = iemocap_manifests
    broken = tmp_path / "manifests"
    broken.mkdir()
    for k in range(1, 6):
        text = open(os.path.join(manifest_folder, f"Session{k}.json")).read() if k != 2 else "{}"
        (broken / f"Session{k}.json").write_text(text)
    (broken / "corpus.json").write_text(open(os.path.join(manifest_folder, "corpus.json")).read())
    command = _ser_command(data_folder, str(tmp_path / "x"), "scratch", None, 1,
                           f"--manifest_folder={broken}", "--skip_prep=True")
    result = subprocess.run([sys.executable, *command], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 2  # bad input (mmer_lobes.errors.run_script)
    assert "Session2.json is empty" in result.stderr and "Traceback" not in result.stderr
