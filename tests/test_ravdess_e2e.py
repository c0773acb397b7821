"""End to end on a RAVDESS-layout miniature (48 kHz, the real file names and Actor_XX folders):
`python recipes/experiment.py hparams/ravdess.yaml` as a user types it, with speech trained from
scratch at a tiny scale: preparation, speaker-independent folds, training, the report."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from mmer_lobes.jobs import yaml_flow
from mmer_lobes.scores import read_scores

pytestmark = pytest.mark.slow

SAMPLE_RATE = 48000
N_ACTORS = 8
# emotion code -> pitch (Hz) of the synthetic voice, so that the classes can be told apart
PITCH = {"01": 140.0, "02": 160.0, "03": 260.0, "04": 110.0, "05": 210.0}
TINY_SPEECH = {"channels": [4, 8, 16, 32], "n_mels": 32, "embedding_size": 32, "chunk_frames": [100],
               "num_workers": 0, "number_of_epochs": 2, "augment_copies": 1, "scratch_lr": 0.01}


def _write_miniature(root):
    """Per actor: neutral (normal intensity only), calm (dropped by the label map), happy, sad
    and angry (both intensities), 2 statements x 2 repetitions, 0.8 s each at 48 kHz."""
    rng = np.random.default_rng(0)
    names = []
    for actor in range(1, N_ACTORS + 1):
        folder = os.path.join(root, f"Actor_{actor:02d}")
        os.makedirs(folder)
        for emotion, pitch in PITCH.items():
            for intensity in (("01",) if emotion == "01" else ("01", "02")):
                for statement in ("01", "02"):
                    for repetition in ("01", "02"):
                        name = f"03-01-{emotion}-{intensity}-{statement}-{repetition}-{actor:02d}.wav"
                        t = np.arange(int(0.8 * SAMPLE_RATE)) / SAMPLE_RATE
                        voice = 0.3 * np.sin(2 * np.pi * pitch * (1 + 0.02 * actor) * t)
                        soundfile.write(os.path.join(folder, name),
                                        (voice + 0.01 * rng.standard_normal(t.size)).astype("float32"), SAMPLE_RATE)
                        names.append(name)
    return names


@pytest.fixture(scope="module")
def ravdess_run(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("ravdess")
    data, out = str(root / "RAVDESS"), str(root / "results")
    names = _write_miniature(data)
    command = [sys.executable, "recipes/experiment.py", "hparams/ravdess.yaml", f"--data_folder={data}",
               f"--output_folder={out}", "--speech_modes=[scratch]", "--holdout_share=0.25",
               f"--speech_overrides={yaml_flow(TINY_SPEECH)}", "--device=cpu"]
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return {"data": data, "out": out, "names": names, "command": command, "stdout": result.stdout}


def test_groups_manifests_and_corpus(ravdess_run):
    manifests = os.path.join(ravdess_run["out"], "manifests")
    corpus = json.load(open(os.path.join(manifests, "corpus.json")))
    assert corpus["corpus"] == "RAVDESS speech" and corpus["protocol"] == {"name": "leave_one_group_out"}
    assert corpus["groups"] == {"actors01-04": "actors01-04.json", "actors05-08": "actors05-08.json"}
    assert corpus["text_carries_emotion"] is False
    # 4 actors x (neutral 4 + calm, happy, sad, angry 8 each) per group
    assert corpus["counts"]["actors01-04"] == {"angry": 32, "calm": 32, "happy": 32, "neutral": 16, "sad": 32}
    entry = json.load(open(os.path.join(manifests, "actors05-08.json")))["03-01-05-02-01-02-06"]
    assert entry["wav"] == "{data_root}/Actor_06/03-01-05-02-01-02-06.wav"
    assert entry["duration"] == 0.8 and entry["speaker"] == "actor06" and entry["intensity"] == "strong"


def test_folds_are_speaker_independent_and_every_kept_clip_is_tested_once(ravdess_run):
    out, tested = ravdess_run["out"], []
    for fold, actors in (("actors01-04", {1, 2, 3, 4}), ("actors05-08", {5, 6, 7, 8})):
        splits = {split: json.load(open(os.path.join(out, "speech_scratch", f"fold{fold}", "fold", f"{split}.json")))
                  for split in ("train", "holdout", "test")}
        speakers = {split: {int(e["speaker"][-2:]) for e in entries.values()} for split, entries in splits.items()}
        assert speakers["test"] == actors
        assert len(speakers["holdout"]) == 1 and not speakers["holdout"] & speakers["train"]
        assert speakers["holdout"] | speakers["train"] == {1, 2, 3, 4, 5, 6, 7, 8} - actors
        for entries in splits.values():  # calm dropped, the others mapped to the 4 classes
            assert {e["emo"] for e in entries.values()} == {"ang", "hap", "neu", "sad"}
            assert all(e["emo_native"] != "calm" for e in entries.values())
        tested += list(splits["test"])
    kept = [n[:-4] for n in ravdess_run["names"] if n.split("-")[2] != "02"]
    assert sorted(tested) == sorted(kept)


def test_report_names_the_corpus_and_matches_the_score_files(ravdess_run):
    out = ravdess_run["out"]
    results = json.load(open(os.path.join(out, "results.json")))
    # the speech baseline first; no text branch, no text baseline, no fusion
    assert list(results["systems"]) == ["baseline_egemaps", "speech_scratch"]
    assert results["corpus"] == "RAVDESS speech, leave one actor group out (2 folds)"
    for system in results["systems"]:
        entry = results["systems"][system]
        pooled = np.zeros((4, 4), dtype=int)
        for fold in ("actors01-04", "actors05-08"):
            folder = os.path.join(out, system, f"fold{fold}")
            scores = read_scores(os.path.join(folder, "scores", "test.csv"))
            assert sorted(scores.ids) == sorted(json.load(open(os.path.join(folder, "fold", "test.json"))))
            truth, predicted = scores.label_indices(), scores.scores.argmax(axis=1)
            recalls = [np.mean(predicted[truth == c] == c) for c in range(4)]
            assert entry["folds"][fold]["UA"] == pytest.approx(100 * np.mean(recalls))
            assert entry["folds"][fold]["WA"] == pytest.approx(100 * np.mean(truth == predicted))
            np.add.at(pooled, (truth, predicted), 1)
        assert entry["pooled"]["confusion"] == pooled.tolist()
    # the baseline's pitch features tell these synthetic emotions apart well above chance (25),
    # though each actor's voice shifts the pitch of every emotion (72 UA when written)
    assert results["systems"]["baseline_egemaps"]["mean"]["UA"] > 50
    report = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert "Corpus and protocol: RAVDESS speech, leave one actor group out (2 folds)." in report
    assert "| system | actor group actors01-04 | actor group actors05-08 |" in report
    assert "| system | UA (%) | WA (%) |" in report and "paper" not in report  # the paper is IEMOCAP only
    assert os.path.getsize(os.path.join(out, "confusion_speech_scratch.png")) > 0
    assert "Mean over folds" in ravdess_run["stdout"]


def test_the_text_branch_is_refused_on_fixed_sentences(ravdess_run, repo_root):
    command = [c for c in ravdess_run["command"] if not c.startswith("--output_folder")]
    command += [f"--output_folder={ravdess_run['out']}_text", "--modalities=[speech, text]"]
    result = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "experiment.py: error: RAVDESS speech: its text is the same sentences read in every emotion, so a text "
        "branch would learn nothing about emotion; run the speech branch only (modalities: [speech])")
