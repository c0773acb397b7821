"""End to end: the exact `make demo` path at a tiny scale (the mini-corpus command line,
`recipes/loso.py hparams/loso_demo.yaml` with its merge keys, `recipes/export.py
--overwrite=True`), one test session instead of five; then reruns: unchanged (every job
reused), with changed speech overrides (speech folds and fusion rerun), a failing job
(--jobs 1 and 2), and a run killed mid-training that resumes."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mmer_lobes.jobs import yaml_flow
from mmer_lobes.scores import read_scores

pytestmark = pytest.mark.slow

# The TF-IDF baseline only (seconds; tests/test_ravdess_e2e.py runs the eGeMAPS one).
BASELINES = "--baselines=[hparams/baseline_tfidf.yaml]"
SYSTEMS = ["baseline_tfidf", "speech_linear_probe", "speech_finetune", "text",
           "fusion_weighted", "fusion_znorm", "fusion_logreg"]
# The speech folds take the features and the architecture from the demo's speaker encoder.
TINY_SPEECH = {"embedding_size": 32, "chunk_frames": [100], "num_workers": 0, "number_of_epochs": 1,
               "augment_copies": 1, "head_lr": 0.02}


def _speech_overrides(**changes):
    """``--speech_overrides=...``: the tiny speech settings with ``changes``."""
    return f"--speech_overrides={yaml_flow({**TINY_SPEECH, **changes})}"


def _run(command, cwd, timeout=1500):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _system_folder(out, system, fold):
    if system.startswith("fusion_"):
        return os.path.join(out, "fusion", f"fold{fold}", system.removeprefix("fusion_"))
    return os.path.join(out, system, f"fold{fold}")


def _ua_wa(truth, predicted, n_classes):
    """UA over the classes present and WA, in percent, computed here from scratch."""
    recalls = [np.mean(predicted[truth == c] == c) for c in range(n_classes) if np.any(truth == c)]
    return 100.0 * float(np.mean(recalls)), 100.0 * float(np.mean(truth == predicted))


@pytest.fixture(scope="module")
def demo(tmp_path_factory, repo_root):
    """`make demo`'s three commands, with the demo YAML as it is but one test session."""
    root = tmp_path_factory.mktemp("demo")
    mini, out = str(root / "mini"), str(root / "results")
    _ok(_run([sys.executable, "data_prep/mini_corpora.py", "--out", mini], repo_root))
    command = [
        sys.executable, "recipes/loso.py", "hparams/loso_demo.yaml",
        f"--data_folder={mini}/IEMOCAP_full_release", f"--speaker_data_folder={mini}/VoxCeleb1",
        f"--output_folder={out}", "--test_sessions=[5]", BASELINES, "--device=cpu",
    ]
    first = _ok(_run(command, repo_root))
    interface = os.path.join(out, "interface")
    export = [sys.executable, "recipes/export.py", "hparams/export.yaml", "--overwrite=True",
              f"--speech_folder={out}/speech_finetune/fold5", f"--text_folder={out}/text/fold5",
              f"--fusion_folder={out}/fusion/fold5/weighted"]
    _ok(_run(export + [f"--output_folder={interface}"], repo_root))
    return {"mini": mini, "out": out, "command": command, "first": first, "export": export,
            "interface": interface, "root": root}


def test_every_job_gets_the_run_options(demo):
    out = demo["out"]
    log = open(os.path.join(out, "log.txt"), encoding="utf-8").read()
    job_lines = [line for line in log.splitlines() if "recipes/" in line and ".py hparams/" in line]
    # speaker, baseline, 2 speech modes, text, fusion: listed once in the job list and once when run
    assert len(job_lines) == 12
    assert all(line.rstrip().endswith("--device=cpu") for line in job_lines)
    records = glob.glob(os.path.join(out, "**", "job.json"), recursive=True)
    assert len(records) == 6
    for path in records:
        record = json.load(open(path))
        assert record["finished"] is True
        assert record["command"][-1] == "--device=cpu"
        # where a job runs does not define it (a CPU result is reused on a GPU rerun)
        assert record["definition"]["run_options"] == []


def test_results_match_the_score_files(demo):
    out = demo["out"]
    results = json.load(open(os.path.join(out, "results.json")))
    assert list(results["systems"]) == SYSTEMS  # the baseline first
    manifest = json.load(open(os.path.join(out, "text", "fold5", "fold", "test.json")))
    for name in SYSTEMS:
        scores = read_scores(os.path.join(_system_folder(out, name, 5), "scores", "test.csv"))
        assert sorted(scores.ids) == sorted(manifest)
        truth, predicted = scores.label_indices(), scores.scores.argmax(axis=1)
        ua, wa = _ua_wa(truth, predicted, len(scores.classes))
        entry = results["systems"][name]
        assert entry["folds"]["5"]["UA"] == pytest.approx(ua)
        assert entry["folds"]["5"]["WA"] == pytest.approx(wa)
        improvised = np.array([manifest[u]["improvised"] for u in scores.ids])
        for subset, keep in (("improvised", improvised), ("scripted", ~improvised)):
            ua, wa = _ua_wa(truth[keep], predicted[keep], len(scores.classes))
            assert entry["subsets"][subset]["folds"]["5"]["UA"] == pytest.approx(ua)
            assert entry["subsets"][subset]["folds"]["5"]["WA"] == pytest.approx(wa)
            assert entry["subsets"][subset]["pooled"]["n"] == int(keep.sum())
        assert os.path.getsize(os.path.join(out, f"confusion_{name}.png")) > 0
    report = open(os.path.join(out, "report.md")).read()
    assert "## Improvised and scripted test utterances" in report
    assert "65.97" in report  # the paper's fine-tuned speech UA, in its own column
    assert "Mean over folds" in demo["first"].stdout


def test_manifests_and_dialogue_disjoint_holdout(demo):
    out = demo["out"]
    session = json.load(open(os.path.join(out, "manifests", "Session1.json")))
    for utt_id, entry in session.items():
        assert entry["dialogue"] == utt_id.rsplit("_", 1)[0]
        assert entry["improvised"] == ("_impro" in entry["dialogue"])
        assert len(entry["vad"]) == 3 and all(1.0 <= v <= 5.0 for v in entry["vad"])
    assert {e["improvised"] for e in session.values()} == {True, False}
    splits = {}
    for system in ("speech_finetune", "speech_linear_probe", "text"):
        splits[system] = {s: json.load(open(os.path.join(out, system, "fold5", "fold", f"{s}.json")))
                          for s in ("train", "holdout", "test")}
    # Both modalities cut the fold the same way, or fusion could not be trained.
    assert splits["speech_finetune"] == splits["text"] == splits["speech_linear_probe"]
    train, holdout = splits["text"]["train"], splits["text"]["holdout"]
    assert not {e["dialogue"] for e in train.values()} & {e["dialogue"] for e in holdout.values()}
    # The demo's share, 0.25: one of 4 group folds of the 16 training dialogues.
    assert len({e["dialogue"] for e in holdout.values()}) == 4
    assert {e["emo"] for e in holdout.values()} == {"ang", "hap", "neu", "sad"}


def test_export_overwrites_an_interface_but_not_another_folder(demo, repo_root):
    assert os.path.isfile(os.path.join(demo["interface"], "hyperparams.yaml"))
    _ok(_run(demo["export"] + [f"--output_folder={demo['interface']}"], repo_root))
    other = demo["root"] / "not_an_interface"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    refused = _run(demo["export"] + [f"--output_folder={other}"], repo_root)
    assert refused.returncode == 2
    assert "exists and is not an interface folder" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (other / "notes.txt").read_text() == "mine"


def test_rerun_reuses_then_reruns_what_changed(demo, repo_root):
    out, command = demo["out"], demo["command"]
    markers = {name: os.path.join(_system_folder(out, name, 5), "metrics_test.json") for name in SYSTEMS}
    before = {name: os.path.getmtime(path) for name, path in markers.items()}
    second = _ok(_run(command, repo_root, timeout=600))
    assert {name: os.path.getmtime(path) for name, path in markers.items()} == before
    assert "already finished with the same definition, reused" in second.stderr + second.stdout
    old_results = json.load(open(os.path.join(out, "results.json")))

    third = _ok(_run(command + [_speech_overrides()], repo_root))
    after = {name: os.path.getmtime(path) for name, path in markers.items()}
    rerun = sorted(name for name in SYSTEMS if after[name] != before[name])
    assert rerun == sorted(["speech_linear_probe", "speech_finetune",
                            "fusion_weighted", "fusion_znorm", "fusion_logreg"])
    log = open(os.path.join(out, "log.txt"), encoding="utf-8").read()
    assert "speech_finetune fold 5: its definition changed (overrides" in log
    assert "fusion fold 5: its definition changed (depends_on)" in log
    record = json.load(open(os.path.join(out, "speech_finetune", "fold5", "job.json")))
    assert record["definition"]["overrides"]["number_of_epochs"] == 1
    # Old checkpoints were removed, not resumed: one epoch was trained, once.
    train_log = open(os.path.join(out, "speech_finetune", "fold5", "train_log.txt")).read()
    assert train_log.count("epoch: 1,") == 1 and "epoch: 2," not in train_log
    # The report shows the new figures, read from the rerun folds.
    results = json.load(open(os.path.join(out, "results.json")))
    for name in SYSTEMS:
        metrics = json.load(open(markers[name]))
        assert results["systems"][name]["folds"]["5"]["UA"] == pytest.approx(metrics["UA"])
    assert results["systems"]["text"] == old_results["systems"]["text"]
    assert "Report written" in third.stderr + third.stdout


@pytest.mark.parametrize("jobs", [1, 2])
def test_failing_job_stops_with_one_line(demo, repo_root, tmp_path, jobs):
    out = str(tmp_path / "failing")
    command = [
        sys.executable, "recipes/loso.py", "hparams/loso_demo.yaml",
        f"--data_folder={demo['mini']}/IEMOCAP_full_release", f"--output_folder={out}",
        f"--pretrained_encoder={demo['out']}/speaker/encoder", "--test_sessions=[5]", f"--jobs={jobs}",
        "--baselines=[]", _speech_overrides(pretrained_encoder=f"{tmp_path}/no_encoder"),
    ]
    result = _run(command, repo_root, timeout=600)
    assert result.returncode == 1  # a job failed (recipes/loso.py EXIT_JOB_FAILED; bad input is 2)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("loso.py: error: speech_") and " failed with exit code " in last
    assert result.stderr.count("loso.py: error: ") == 1
    assert last in open(os.path.join(out, "log.txt"), encoding="utf-8").read()  # recorded there too
    log_path = last.split("its log: ")[1]
    assert os.path.isfile(log_path) and "no_encoder" in open(log_path).read()
    assert "Traceback" not in result.stderr
    assert not os.path.exists(os.path.join(out, "report.md"))


def test_killed_fold_resumes(demo, repo_root, tmp_path):
    out = str(tmp_path / "killed")
    command = [
        sys.executable, "recipes/loso.py", "hparams/loso_demo.yaml",
        f"--data_folder={demo['mini']}/IEMOCAP_full_release", f"--output_folder={out}",
        f"--pretrained_encoder={demo['out']}/speaker/encoder", "--test_sessions=[5]", "--jobs=1",
        "--speech_modes=[finetune]", "--baselines=[]", _speech_overrides(number_of_epochs=3),
    ]
    fold = os.path.join(out, "speech_finetune", "fold5")
    process = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not _saved_epochs(fold):
        assert process.poll() is None and time.time() < deadline, "the fold never saved a checkpoint"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # loso.py and its recipe, as a crash would
    process.wait()
    assert not os.path.exists(os.path.join(fold, "metrics_test.json"))
    assert json.load(open(os.path.join(fold, "job.json")))["finished"] is False
    # What the kill left: the epochs trained (logged) and the last one saved whole.
    logged, saved = _logged_epochs(fold), max(_saved_epochs(fold))

    _ok(_run(command, repo_root, timeout=900))
    log = open(os.path.join(out, "log.txt"), encoding="utf-8").read()
    assert "speech_finetune fold 5: resuming an unfinished run" in log
    # Epochs saved whole before the kill are not trained again; any later one is.
    expected = [1 if epoch <= saved or epoch > logged else 2 for epoch in (1, 2, 3)]
    assert saved >= 1 and [_logged_epochs(fold, epoch) for epoch in (1, 2, 3)] == expected
    assert os.path.isfile(os.path.join(out, "report.md"))


def _saved_epochs(fold):
    """The epochs of the fold's checkpoints whose saving finished (mmer_lobes.checkpoints)."""
    epochs = []
    for path in glob.glob(os.path.join(fold, "save", "CKPT+*", "counter.ckpt")):
        try:
            if not os.path.exists(os.path.join(os.path.dirname(path), "SAVING")):
                epochs.append(int(open(path).read().strip()))
        except (OSError, ValueError):  # removed (keep-only) or being written just now
            pass
    return epochs


def _logged_epochs(fold, epoch=None):
    """The number of epochs in the fold's train log, or how often ``epoch`` appears there."""
    path = os.path.join(fold, "train_log.txt")
    lines = open(path).read().splitlines() if os.path.isfile(path) else []
    if epoch is None:
        return sum(line.startswith("epoch: ") for line in lines)
    return sum(line.startswith(f"epoch: {epoch},") for line in lines)
