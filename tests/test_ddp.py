"""The recipes on two processes (DDP) on the CPU: ``torchrun --nproc_per_node=2 --standalone``
with the gloo backend, on the built-in corpora, at tiny scale (the ``slow`` tests); and the
score collector's merge of two processes' rows.

Two processes train on other batches than one process, so their weights differ; what must
be equal is the evaluation. Each classifying recipe (speech, text) is run from scratch on two
processes (one epoch), then the same checkpoint is evaluated by one process in a copy of the
output folder (the epoch counter is done, so the recipe only evaluates): both score files
must hold the same rows, in the same order, with the same scores, and the same metrics.
SpeechBrain 1.1.2 does not shard the hold-out and test loaders (``Brain.make_dataloader``
gives a DistributedSampler to the TRAIN loader only), so every process scores every
utterance; mmer_lobes.evaluation.ScoreCollector merges the processes' rows and rank 0 alone
writes.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmer_lobes.encoder_folders import load_encoder_definition
from mmer_lobes.evaluation import ScoreCollector
from mmer_lobes.scores import read_scores

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available",
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# torchrun's variables: a one-process run must not look like one of its processes.
DDP_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                 "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
CPU = ["--device=cpu", "--noprogressbar"]
SPEAKER_TINY = ["--channels=[4, 8, 16, 32]", "--n_mels=32", "--embedding_size=32",
                "--chunk_frames=[100]", "--num_workers=0", "--batch_size=32"]
# The SER run takes the architecture and features from the speaker run's encoder folder.
SER_TINY = ["--chunk_frames=[100]", "--num_workers=0", "--batch_size=32", "--augment_policy=none"]
SPLITS = ("holdout", "test")
DISAGREEMENT = "got other scores on another process"  # mmer_lobes.evaluation's warning


def _run(command, timeout=600):
    """Runs ``command`` from the repository root, with one thread per process (what torchrun
    gives each of its processes, unless OMP_NUM_THREADS is set); fails the test with its
    output unless it exits with 0."""
    env = {key: value for key, value in os.environ.items() if key not in DDP_VARIABLES}
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:  # a process waiting on a collective forever
        pytest.fail(f"command timed out after {timeout} s: {' '.join(command)}\n{str(error.stderr)[-6000:]}")
    if result.returncode != 0:
        pytest.fail(f"command failed ({result.returncode}): {' '.join(command)}\n"
                    f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-8000:]}")
    return result


def _two_processes(script, *args):
    return _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                 script, *args, "--distributed_backend=gloo", *CPU])


def _one_process(script, *args):
    return _run([sys.executable, script, *args, *CPU])


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _fold_ids(output_folder, split):
    with open(os.path.join(output_folder, "fold", f"{split}.json"), encoding="utf-8") as handle:
        return set(json.load(handle))


def _no_leftovers(folder):
    """No temporary file of an interrupted or concurrent atomic write (mmer_lobes.files)."""
    leftovers = [os.path.join(root, name) for root, _, names in os.walk(folder)
                 for name in names if name.endswith(".tmp")]
    assert not leftovers, leftovers


def _check_two_process_run(output_folder):
    """A two-process run ran as two processes, and its score files hold every utterance of
    the fold's split once, with finite log-posteriors and the metrics of those rows."""
    log = _read(os.path.join(output_folder, "log.txt"))
    assert "Distributed run: 2 processes, gloo backend" in log
    assert DISAGREEMENT not in log  # both processes scored every utterance alike
    for split in SPLITS:
        scores = read_scores(os.path.join(output_folder, "scores", f"{split}.csv"))
        assert len(scores.ids) == len(set(scores.ids)), "an utterance is scored twice"
        assert set(scores.ids) == _fold_ids(output_folder, split)
        assert np.all(np.isfinite(scores.scores))
        with open(os.path.join(output_folder, f"metrics_{split}.json"), encoding="utf-8") as handle:
            metrics = json.load(handle)
        assert metrics["n"] == len(scores.ids)
        assert metrics["WA"] == pytest.approx(
            100.0 * np.mean(scores.scores.argmax(axis=1) == scores.label_indices()), abs=1e-9)
        assert os.path.getsize(os.path.join(output_folder, f"confusion_{split}.png")) > 0
    _no_leftovers(output_folder)


def _evaluate_copy_on_one_process(output_folder, copy, script, command):
    """Copies the two-process run's folder without its results, and evaluates its checkpoint
    there with one process. Returns the copy's train_log.txt."""
    shutil.copytree(output_folder, copy)
    shutil.rmtree(os.path.join(copy, "scores"))
    for split in SPLITS:
        for name in (f"metrics_{split}.json", f"confusion_{split}.png"):
            os.remove(os.path.join(copy, name))
    _one_process(script, *[arg.replace(output_folder, copy) for arg in command])
    return _read(os.path.join(copy, "train_log.txt"))


def _same_results(two, one):
    """The score files and metrics of ``two`` (2 processes) and ``one`` (1 process): the
    same rows in the same order, the same scores (within 1e-5), the same metrics."""
    for split in SPLITS:
        a = read_scores(os.path.join(two, "scores", f"{split}.csv"))
        b = read_scores(os.path.join(one, "scores", f"{split}.csv"))
        assert a.ids == b.ids and a.labels == b.labels and a.classes == b.classes
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-5)
        with open(os.path.join(two, f"metrics_{split}.json"), encoding="utf-8") as handle:
            metrics_two = json.load(handle)
        with open(os.path.join(one, f"metrics_{split}.json"), encoding="utf-8") as handle:
            assert json.load(handle) == metrics_two


CLASSES = ["ang", "hap", "neu", "sad"]
N_UTTERANCES = 7  # odd: a DistributedSampler pads the second process's share with a repeat


def _collector_batches():
    """Ids, log-posteriors and labels of a made-up split."""
    ids = [f"utt{i}" for i in range(N_UTTERANCES)]
    logits = torch.sin(torch.arange(N_UTTERANCES * 4, dtype=torch.float32)).reshape(N_UTTERANCES, 4)
    return ids, torch.log_softmax(logits, dim=1), torch.arange(N_UTTERANCES) % 4


def _collector_worker(rank, world_size, init_file, folders):
    """One process of two: for each case (every process scores the whole split; a
    DistributedSampler deals it out), appends its utterances in batches of two, writes the
    results into ``folders[case][rank]`` and records the metrics it got back there."""
    from torch.utils.data import DistributedSampler

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                         world_size=world_size)
    try:
        ids, log_posteriors, labels = _collector_batches()
        for case, case_folders in folders.items():
            indices = list(range(N_UTTERANCES))
            if case == "sharded":
                indices = list(DistributedSampler(indices, num_replicas=world_size, rank=rank, shuffle=False))
            collector = ScoreCollector(CLASSES)
            for start in range(0, len(indices), 2):
                batch = indices[start:start + 2]
                collector.append([ids[i] for i in batch], log_posteriors[batch].half(), labels[batch])
            metrics = collector.write_results(case_folders[rank], "test")
            with open(os.path.join(case_folders[rank], f"returned_{rank}.json"), "w", encoding="utf-8") as handle:
                json.dump(metrics, handle)
    finally:
        torch.distributed.destroy_process_group()


def test_collector_merges_two_processes_and_rank_0_writes(tmp_path):
    folders = {case: [str(tmp_path / case / "rank0"), str(tmp_path / case / "rank1")]
               for case in ("every_process_scores_all", "sharded")}
    for case_folders in folders.values():
        for folder in case_folders:
            os.makedirs(folder)
    torch.multiprocessing.spawn(_collector_worker, args=(2, str(tmp_path / "init"), folders), nprocs=2)

    ids, log_posteriors, labels = _collector_batches()
    alone = ScoreCollector(CLASSES)
    alone.append(ids, log_posteriors.half(), labels)  # half: as under fp16 autocast
    expected = json.loads(json.dumps(alone.write_results(str(tmp_path / "one_process"), "test")))
    for case, (rank0, rank1) in folders.items():
        written = read_scores(os.path.join(rank0, "scores", "test.csv"))
        assert written.ids == ids, case  # each utterance once, in the split's order
        np.testing.assert_allclose(written.scores, alone.log_posteriors(), rtol=0, atol=1e-6)
        for rank, folder in enumerate((rank0, rank1)):  # every process gets the whole split's metrics
            with open(os.path.join(folder, f"returned_{rank}.json"), encoding="utf-8") as handle:
                assert json.load(handle) == expected, (case, rank)
        assert sorted(os.listdir(rank0)) == ["confusion_test.png", "metrics_test.json", "returned_0.json", "scores"]
        assert os.listdir(rank1) == ["returned_1.json"], case  # rank 1 wrote nothing


@pytest.fixture(scope="module")
def speaker_ddp_run(mini_corpora, tmp_path_factory):
    """A one-epoch speaker pretraining on two processes; returns its output folder."""
    out = str(tmp_path_factory.mktemp("speaker_ddp"))
    _two_processes("recipes/train_speaker.py", "hparams/resnet_speaker.yaml",
                   f"--data_folder={os.path.join(mini_corpora, 'VoxCeleb1')}", f"--output_folder={out}",
                   "--number_of_epochs=1", *SPEAKER_TINY)
    return out


@pytest.mark.slow
def test_speaker_recipe_on_two_processes(speaker_ddp_run):
    out = speaker_ddp_run
    assert "Distributed run: 2 processes, gloo backend" in _read(os.path.join(out, "log.txt"))
    with open(os.path.join(out, "verification.json"), encoding="utf-8") as handle:
        verification = json.load(handle)
    # the trial list of mini-VoxCeleb: every trial scored (by rank 0's embeddings), once
    assert verification["target_trials"] == 150 and verification["nontarget_trials"] == 150
    assert 0.0 <= verification["EER"] <= 100.0 and np.isfinite(verification["minDCF"])
    assert sorted(os.listdir(os.path.join(out, "encoder"))) == ["encoder.ckpt", "encoder.yaml"]
    definition = load_encoder_definition(os.path.join(out, "encoder"))
    state = torch.load(os.path.join(out, "encoder", "encoder.ckpt"), weights_only=True)
    assert not any(key.startswith("module.") for key in state)  # not the DDP wrapper's keys
    definition["encoder"].load_state_dict(state, strict=True)
    log = _read(os.path.join(out, "train_log.txt")).splitlines()
    assert [line.split(",")[0] for line in log if line.startswith("epoch:")] == ["epoch: 1"]
    assert len([line for line in log if line.startswith("verification:")]) == 1
    _no_leftovers(out)


@pytest.mark.slow
def test_speech_recipe_two_processes_score_as_one(speaker_ddp_run, iemocap_manifests, tmp_path):
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path / "ser_ddp")
    command = ["hparams/resnet_ser.yaml", f"--data_folder={data_folder}", f"--manifest_folder={manifest_folder}",
               "--skip_prep=True", "--test_fold=5", "--mode=finetune",
               f"--pretrained_encoder={os.path.join(speaker_ddp_run, 'encoder')}", f"--output_folder={out}",
               "--number_of_epochs=1", *SER_TINY]
    _two_processes("recipes/train.py", *command)
    _check_two_process_run(out)

    copy = str(tmp_path / "ser_one_process")
    train_log = _evaluate_copy_on_one_process(out, copy, "recipes/train.py", command)
    assert len([line for line in train_log.splitlines() if line.startswith("epoch:")]) == 1  # no training
    _same_results(out, copy)


@pytest.mark.slow
def test_text_recipe_two_processes_score_as_one(mini_corpora, iemocap_manifests, tmp_path):
    data_folder, manifest_folder = iemocap_manifests
    out = str(tmp_path / "text_ddp")
    command = ["hparams/bert_text.yaml", f"--data_folder={data_folder}", f"--manifest_folder={manifest_folder}",
               "--skip_prep=True", "--test_fold=5", f"--output_folder={out}", "--number_of_epochs=1",
               "--lr=1e-4"]
    _two_processes("recipes/train_text.py", *command)
    _check_two_process_run(out)

    copy = str(tmp_path / "text_one_process")
    _evaluate_copy_on_one_process(out, copy, "recipes/train_text.py", command)
    assert "training already finished (epoch 1 of 1)" in _read(os.path.join(copy, "log.txt"))
    _same_results(out, copy)
