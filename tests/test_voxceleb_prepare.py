"""Tests of data_prep/voxceleb_prepare.py on small hand-made VoxCeleb trees."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from data_prep.voxceleb_prepare import VoxcelebPrepError, prepare_voxceleb, segment_bounds, split_utterances

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_RATE = 16000
TRAIN_SPEAKERS = ["id00012", "id10001", "id10002"]
TRIAL_SPEAKERS = ["id10270", "id10271"]
FILES_PER_TRAIN_SPEAKER = 10
TRIALS = [
    "1 id10270/vidA/00001.wav id10270/vidB/00001.wav",
    "0 id10270/vidA/00001.wav id10271/vidA/00001.wav",
    "1 id10271/vidA/00001.wav id10271/vidA/00002.wav",
]


def write_wav(path, seconds):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * SAMPLE_RATE), dtype="float32"), SAMPLE_RATE)


@pytest.fixture
def corpus(tmp_path):
    """Three training speakers (10 files each over two videos), two trial speakers, veri_test2.txt."""
    root = tmp_path / "voxceleb"
    for speaker in TRAIN_SPEAKERS:
        for index in range(FILES_PER_TRAIN_SPEAKER):
            video = "vidA" if index < 5 else "vidB"
            write_wav(str(root / "wav" / speaker / video / f"{index + 1:05d}.wav"), 1.0 + 0.25 * index)
    for relative_path in ("id10270/vidA/00001.wav", "id10270/vidB/00001.wav", "id10271/vidA/00001.wav",
                          "id10271/vidA/00002.wav", "id10271/vidC/00009.wav"):
        write_wav(str(root / "wav" / relative_path), 1.5)
    (root / "veri_test2.txt").write_text("\n".join(TRIALS) + "\n")
    return str(root)


def prepare(corpus, tmp_path, **kwargs):
    save_folder = str(tmp_path / "manifests")
    return save_folder, prepare_voxceleb(corpus, save_folder, **kwargs)


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_train_valid_trials_written(corpus, tmp_path):
    save_folder, paths = prepare(corpus, tmp_path)
    train, valid, test = load(paths["train"]), load(paths["valid"]), load(paths["test"])
    assert len(train) == 27 and len(valid) == 3  # 90 / 10 per speaker
    for speaker in TRAIN_SPEAKERS:
        assert sum(entry["spk_id"] == speaker for entry in valid.values()) == 1
    assert set(train).isdisjoint(valid)
    entry = train.get("id10001--vidA--00001") or valid["id10001--vidA--00001"]
    assert entry == {"wav": "{data_root}/wav/id10001/vidA/00001.wav", "duration": 1.0, "spk_id": "id10001"}
    for utterance_id, entry in {**train, **valid}.items():
        assert entry["wav"] == "{data_root}/wav/" + utterance_id.replace("--", "/") + ".wav"
        assert os.path.isfile(entry["wav"].replace("{data_root}", corpus))

    with open(paths["trials"]) as handle:
        assert handle.read().splitlines() == TRIALS
    assert sorted(test) == [
        "id10270/vidA/00001.wav", "id10270/vidB/00001.wav", "id10271/vidA/00001.wav", "id10271/vidA/00002.wav"
    ]
    assert test["id10271/vidA/00002.wav"] == {
        "wav": "{data_root}/wav/id10271/vidA/00002.wav", "duration": 1.5, "spk_id": "id10271"
    }
    assert os.path.isfile(os.path.join(save_folder, "prepare_opts.json"))


def test_trial_speakers_never_in_train_or_valid(corpus, tmp_path):
    _, paths = prepare(corpus, tmp_path)
    speakers = {entry["spk_id"] for path in (paths["train"], paths["valid"]) for entry in load(path).values()}
    assert speakers == set(TRAIN_SPEAKERS)
    # id10271/vidC/00009.wav is in no trial, but its speaker is: it stays out too.
    assert not any(key.startswith("id10271") for key in load(paths["train"]))


def test_split_is_seeded(corpus, tmp_path):
    _, paths = prepare(corpus, tmp_path, seed=7)
    first = sorted(load(paths["valid"]))
    _, paths = prepare(corpus, tmp_path / "again", seed=7)
    assert sorted(load(paths["valid"])) == first
    _, paths = prepare(corpus, tmp_path / "other", seed=8)
    assert sorted(load(paths["valid"])) != first  # the seed, not a fixed rule, picks valid
    ids = [f"u{i}" for i in range(20)]
    train, valid = split_utterances(ids, (80, 20), seed=3)
    assert (len(train), len(valid)) == (16, 4)
    assert sorted(train + valid) == sorted(ids)  # a partition of the input
    # the same seed on the ids in another order gives the same split (the input order does not
    # leak into it), another seed another one
    assert split_utterances(ids[::-1], (80, 20), seed=3) == (train, valid)
    assert split_utterances(ids, (80, 20), seed=4)[1] != valid


def test_seg_dur_segments_cover_each_file(corpus, tmp_path):
    _, paths = prepare(corpus, tmp_path, seg_dur=0.5)
    entries = {**load(paths["train"]), **load(paths["valid"])}
    by_file = {}
    for entry in entries.values():
        assert entry["stop"] - entry["start"] == SAMPLE_RATE // 2
        assert entry["duration"] == 0.5
        by_file.setdefault(entry["wav"], []).append((entry["start"], entry["stop"]))
    assert len(by_file) == len(TRAIN_SPEAKERS) * FILES_PER_TRAIN_SPEAKER
    for wav, bounds in by_file.items():
        n_samples = soundfile.info(wav.replace("{data_root}", corpus)).frames
        covered = np.zeros(n_samples, dtype=bool)
        for start, stop in bounds:
            covered[start:stop] = True
        assert covered.all() and max(stop for _, stop in bounds) == n_samples, wav
    # 1.25 s = 20000 samples in 0.5 s segments: 0-8000, 8000-16000, 12000-20000.
    file_segments = sorted(key for key in entries if key.startswith("id10001--vidA--00002--"))
    assert file_segments == ["id10001--vidA--00002--0_8000", "id10001--vidA--00002--12000_20000",
                             "id10001--vidA--00002--8000_16000"]
    # Segments of one file stay in one split.
    valid_files = {entry["wav"] for entry in load(paths["valid"]).values()}
    assert not valid_files & {entry["wav"] for entry in load(paths["train"]).values()}


def test_segment_bounds_short_file():
    assert segment_bounds(100, 400) == [(0, 100)]
    assert segment_bounds(1000, 400) == [(0, 400), (400, 800), (600, 1000)]


def test_no_trial_list_means_all_speakers_train(corpus, tmp_path):
    os.remove(os.path.join(corpus, "veri_test2.txt"))
    _, paths = prepare(corpus, tmp_path)
    assert "trials" not in paths
    speakers = {entry["spk_id"] for path in (paths["train"], paths["valid"]) for entry in load(path).values()}
    assert speakers == set(TRAIN_SPEAKERS + TRIAL_SPEAKERS)


def test_explicit_trial_list(corpus, tmp_path):
    trials = tmp_path / "my_trials.txt"
    trials.write_text("1 id10001/vidA/00001.wav id10001/vidB/00006.wav\n")
    _, paths = prepare(corpus, tmp_path, verification_pairs_file=str(trials))
    speakers = {entry["spk_id"] for entry in load(paths["train"]).values()}
    assert "id10001" not in speakers and "id10270" in speakers


def test_m4a_only_tree_is_a_clear_error(tmp_path):
    root = tmp_path / "vox2"
    (root / "aac" / "id00012" / "vidA").mkdir(parents=True)
    (root / "aac" / "id00012" / "vidA" / "00001.m4a").write_bytes(b"\x00" * 16)
    with pytest.raises(VoxcelebPrepError, match=r"\.m4a.*ffmpeg") as error:
        prepare(str(root), tmp_path)
    assert str(root) in str(error.value)


def test_wrong_data_folder(tmp_path):
    with pytest.raises(VoxcelebPrepError, match="does not exist"):
        prepare(str(tmp_path / "nowhere"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VoxcelebPrepError, match="no wav/ folder"):
        prepare(str(tmp_path / "empty"), tmp_path)


def test_trial_list_naming_a_missing_file(corpus, tmp_path):
    missing = os.path.join(corpus, "wav", "id10270", "vidB", "00001.wav")
    os.remove(missing)
    with pytest.raises(VoxcelebPrepError) as error:
        prepare(corpus, tmp_path)
    assert missing in str(error.value) and "veri_test2.txt" in str(error.value)
    assert not os.path.exists(tmp_path / "manifests" / "train.json")


def test_malformed_trial_line_names_file_and_line(corpus, tmp_path):
    with open(os.path.join(corpus, "veri_test2.txt"), "a") as handle:
        handle.write("1 id10270/vidA/00001.wav\n")
    with pytest.raises(VoxcelebPrepError, match=r"veri_test2\.txt, line 4"):
        prepare(corpus, tmp_path)


def test_missing_explicit_trial_list(corpus, tmp_path):
    with pytest.raises(VoxcelebPrepError, match="verification pairs file does not exist"):
        prepare(corpus, tmp_path, verification_pairs_file=str(tmp_path / "nope.txt"))


@pytest.mark.parametrize("content", [b"", b"RIFF\x24\x7d\x00\x00WAVEfmt ", "header_only"])
def test_corrupt_or_empty_wav_names_it(corpus, tmp_path, content):
    broken = os.path.join(corpus, "wav", "id10002", "vidB", "00007.wav")
    if content == "header_only":
        with open(broken, "rb") as handle:
            content = handle.read()[:44]
    with open(broken, "wb") as handle:
        handle.write(content)
    with pytest.raises(VoxcelebPrepError) as error:
        prepare(corpus, tmp_path)
    assert broken in str(error.value)


def test_second_run_skips_and_changed_options_rerun(corpus, tmp_path, capsys):
    save_folder, paths = prepare(corpus, tmp_path)
    first_mtime = os.stat(paths["train"]).st_mtime_ns
    capsys.readouterr()
    prepare(corpus, tmp_path)
    assert "skipping preparation" in capsys.readouterr().out
    assert os.stat(paths["train"]).st_mtime_ns == first_mtime

    prepare(corpus, tmp_path, seg_dur=0.5)
    assert "skipping preparation" not in capsys.readouterr().out
    assert all("start" in entry for entry in load(paths["train"]).values())

    os.remove(os.path.join(corpus, "veri_test2.txt"))  # no trial list now: stale trials go
    prepare(corpus, tmp_path, seg_dur=0.5)
    assert not os.path.exists(os.path.join(save_folder, "trials.txt"))
    assert not os.path.exists(os.path.join(save_folder, "test.json"))


def test_cli_bad_input_exits_2(tmp_path):
    result = run_cli("--data_folder", str(tmp_path / "nowhere"), "--save_folder", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("voxceleb_prepare.py: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "nowhere") in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_writes_segments(corpus, tmp_path):
    save_folder = tmp_path / "out"
    result = run_cli("--data_folder", corpus, "--save_folder", str(save_folder), "--seg_dur", "0.5")
    assert result.returncode == 0, result.stderr
    assert "training speakers: 3" in result.stdout
    assert (save_folder / "trials.txt").read_text().splitlines() == TRIALS
    assert all("stop" in entry for entry in load(save_folder / "train.json").values())


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "data_prep", "voxceleb_prepare.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
