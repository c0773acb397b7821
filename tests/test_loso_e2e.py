"""End to end: recipes/loso.py on mini-IEMOCAP at the smallest scale, then a resumed run.

Two test sessions instead of five keep the suite inside its time budget; `make demo` runs
all five with the same code."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SYSTEMS = ["speech_linear_probe", "speech_finetune", "text",
           "fusion_weighted", "fusion_znorm", "fusion_logreg"]
TINY = "{channels: [4, 8, 16, 32], n_mels: 32, embedding_size: 32, chunk_frames: [100], num_workers: 0, number_of_epochs: 1}"


@pytest.fixture(scope="module")
def loso_run(mini_corpora, tmp_path_factory, repo_root):
    out = str(tmp_path_factory.mktemp("loso"))
    command = [
        sys.executable, "recipes/loso.py", "hparams/loso.yaml",
        f"--data_folder={os.path.join(mini_corpora, 'IEMOCAP_full_release')}",
        f"--speaker_data_folder={os.path.join(mini_corpora, 'VoxCeleb1')}",
        f"--output_folder={out}", "--test_sessions=[4, 5]", "--jobs=2",
        f"--speaker_overrides={TINY}",
        f"--speech_overrides={TINY[:-1]}, augment_copies: 1, head_lr: 0.01}}",
        "--text_overrides={number_of_epochs: 1, lr: 0.0001}",
    ]
    first = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    return out, command, first


def test_results_json_has_every_system_and_fold(loso_run):
    out, _, _ = loso_run
    results = json.load(open(os.path.join(out, "results.json")))
    assert sorted(results["systems"]) == sorted(SYSTEMS)
    for name in SYSTEMS:
        entry = results["systems"][name]
        assert sorted(entry["folds"]) == ["4", "5"]
        fold_values = [entry["folds"][f]["UA"] for f in ("4", "5")]
        assert all(0.0 <= v <= 100.0 for v in fold_values)
        assert entry["mean"]["UA"] == pytest.approx(sum(fold_values) / 2)
        # Each fold's figure is the one the fold's recipe wrote.
        folder = {"speech_linear_probe": "speech_linear_probe/fold5", "speech_finetune": "speech_finetune/fold5",
                  "text": "text/fold5"}.get(name, f"fusion/fold5/{name.removeprefix('fusion_')}")
        fold_metrics = json.load(open(os.path.join(out, folder, "metrics_test.json")))
        assert entry["folds"]["5"]["WA"] == pytest.approx(fold_metrics["WA"])
        assert os.path.getsize(os.path.join(out, f"confusion_{name}.png")) > 0
    assert os.path.isfile(os.path.join(out, "speaker", "encoder", "encoder.ckpt"))


def test_report_has_table_and_paper_column(loso_run):
    out, _, first = loso_run
    report = open(os.path.join(out, "report.md")).read()
    assert "paper UA (IEMOCAP)" in report and "| speech_finetune |" in report
    assert "65.97" in report  # the paper's fine-tuned speech UA, in its own column
    assert "## Pooled confusion matrices" in report
    assert "Mean over folds" in first.stdout


def test_second_run_reuses_finished_folds(loso_run, repo_root):
    out, command, _ = loso_run
    markers = [os.path.join(out, "text", "fold5", "metrics_test.json"),
               os.path.join(out, "speech_finetune", "fold4", "stdout.log")]
    before = [os.path.getmtime(m) for m in markers]
    second = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    # No fold was run again: neither its results nor its recipe log were rewritten.
    assert [os.path.getmtime(m) for m in markers] == before
    assert "already finished, not run again" in second.stdout + second.stderr
