"""MELD preparation on a miniature of the release (real CSV names and header, clip folders,
tiny mp4 clips made with ffmpeg)."""
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
import soundfile

from data_prep import meld_prepare
from data_prep.meld_prepare import FULL_CORPUS_COUNTS, MeldPrepError, prepare_meld

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
# split -> rows (Dialogue_ID, Utterance_ID, Utterance, Speaker, Emotion, Sentiment)
ROWS = {
    "train": [(0, 0, "also I was the point person on my company\u2019s transition.", "Chandler", "neutral", "neutral"),
              (0, 1, "You must\u2019ve had your hands full.", "The Interviewer", "neutral", "neutral"),
              (1, 0, "  Oh my God!  ", "Monica", "joy", "positive"),
              (1, 2, "You\x92re kidding.", "Ross", "surprise", "positive")],
    "dev": [(0, 0, "Oh, he\u2019s lost it.", "Phoebe", "sadness", "negative"),
            (0, 1, "What?", "Monica", "surprise", "negative"),
            (3, 0, "Get out!", "Rachel", "anger", "negative")],
    "test": [(0, 0, "Why?", "Mark", "surprise", "positive"),
             (0, 1, "Y'know what?", "Rachel", "disgust", "negative"),
             (2, 0, "No.", "Joey", "fear", "negative")],
}
CLIP_FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}


def csv_row(number, row):
    dialogue, utterance, text, speaker, emotion, sentiment = row
    text = '"' + text.replace('"', '""') + '"'
    return f'{number},{text},{speaker},{emotion},{sentiment},{dialogue},{utterance},4,7,"00:20:57,256","00:21:00,049"'


def make_csvs(folder, rows=ROWS, header=HEADER):
    os.makedirs(folder, exist_ok=True)
    for split, split_rows in rows.items():
        lines = [header] + [csv_row(number, row) for number, row in enumerate(split_rows, 1)]
        with open(os.path.join(folder, f"{split}_sent_emo.csv"), "w", encoding="utf-8", newline="") as handle:
            handle.write("\r\n".join(lines) + "\r\n")
    return str(folder)


def load(save_folder, name):
    with open(os.path.join(save_folder, name), encoding="utf-8") as handle:
        return json.load(handle)


def test_full_corpus_counts_are_the_release_sizes():
    assert {split: sum(counts.values()) for split, counts in FULL_CORPUS_COUNTS.items()} == {
        "train": 9989, "dev": 1109, "test": 2610}


def test_text_only_manifests_corpus_json_and_skip(tmp_path, capsys, caplog):
    data_folder = make_csvs(tmp_path / "MELD.Raw")
    save_folder = str(tmp_path / "out")
    with caplog.at_level(logging.INFO, logger="data_prep.meld_prepare"):
        paths = prepare_meld(data_folder, save_folder)
    assert "not the full release, counts not checked" in caplog.text
    assert paths == {split: os.path.join(save_folder, f"{split}.json") for split in ("train", "dev", "test")}
    train = load(save_folder, "train.json")
    assert train["train_dia1_utt0"] == {"emo": "joy", "sentiment": "positive", "speaker": "Monica",
                                        "transcript": "Oh my God!", "dialogue": "train_dia1", "group": "train"}
    assert train["train_dia1_utt2"]["transcript"] == "You\x92re kidding."  # mojibake kept as read
    assert train["train_dia0_utt0"]["transcript"] == "also I was the point person on my company\u2019s transition."
    assert train["train_dia0_utt1"]["speaker"] == "The Interviewer"
    labels = {split: {utt: entry["emo"] for utt, entry in load(save_folder, f"{split}.json").items()}
              for split in paths}
    assert labels == {
        "train": {"train_dia0_utt0": "neutral", "train_dia0_utt1": "neutral", "train_dia1_utt0": "joy",
                  "train_dia1_utt2": "surprise"},
        "dev": {"dev_dia0_utt0": "sadness", "dev_dia0_utt1": "surprise", "dev_dia3_utt0": "anger"},
        "test": {"test_dia0_utt0": "surprise", "test_dia0_utt1": "disgust", "test_dia2_utt0": "fear"},
    }
    assert {utt: entry["dialogue"] for utt, entry in load(save_folder, "dev.json").items()} == {
        "dev_dia0_utt0": "dev_dia0", "dev_dia0_utt1": "dev_dia0", "dev_dia3_utt0": "dev_dia3"}
    corpus = load(save_folder, "corpus.json")
    assert corpus["corpus"] == "MELD" and corpus["group_kind"] == "partition"
    assert corpus["groups"] == {"train": "train.json", "dev": "dev.json", "test": "test.json"}
    assert corpus["protocol"] == {"name": "official", "train": ["train"], "holdout": ["dev"], "test": ["test"]}
    assert corpus["modalities"] == ["text"] and corpus["text_carries_emotion"] is True
    assert corpus["labels"] == ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
    assert corpus["counts"] == {"train": {"joy": 1, "neutral": 2, "surprise": 1},
                                "dev": {"anger": 1, "sadness": 1, "surprise": 1},
                                "test": {"disgust": 1, "fear": 1, "surprise": 1}}
    out = capsys.readouterr().out
    assert "MELD: 10 utterances in 3 groups" in out and "dropped: none" in out
    assert prepare_meld(data_folder, save_folder, audio="no") == paths
    assert "up to date (same options): skipping preparation" in capsys.readouterr().out


def test_csvs_in_data_meld_of_a_repository_clone(tmp_path):
    root = tmp_path / "MELD"
    make_csvs(root / "data" / "MELD")
    paths = prepare_meld(str(root), str(tmp_path / "out"), audio="no")
    assert len(load(str(tmp_path / "out"), "test.json")) == 3 and list(paths) == ["train", "dev", "test"]


def test_count_check_warns_on_a_mismatch(tmp_path, caplog):
    data_folder = make_csvs(tmp_path / "MELD.Raw")
    with caplog.at_level(logging.WARNING, logger="data_prep.group_manifests"):
        prepare_meld(data_folder, str(tmp_path / "out"), audio="no", expect_full_corpus=True)
    assert "MELD COUNTS DO NOT MATCH THE FULL TRAIN PARTITION" in caplog.text
    assert "expected: neutral 4710 / joy 1743" in caplog.text


def error_of(tmp_path, data_folder, **options):
    with pytest.raises(MeldPrepError) as error:
        prepare_meld(data_folder, str(tmp_path / "out"), **options)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_csvs_name_the_file(tmp_path):
    data_folder = make_csvs(tmp_path / "a", header=HEADER.replace("Emotion", "Emo"))
    message = error_of(tmp_path, data_folder)
    assert os.path.join(data_folder, "train_sent_emo.csv") + " lacks the column Emotion" in message
    data_folder = make_csvs(tmp_path / "b", rows={**ROWS, "dev": ROWS["dev"] + [(4, 0, "Hm.", "Ross", "happy",
                                                                                  "positive")]})
    message = error_of(tmp_path, data_folder)
    assert os.path.join(data_folder, "dev_sent_emo.csv") + " line 5: unknown Emotion 'happy'" in message
    data_folder = make_csvs(tmp_path / "c")
    with open(os.path.join(data_folder, "test_sent_emo.csv"), "ab") as handle:
        handle.write(b'9,"caf\xe9",Joey,joy,positive,5,0,1,1,"0:0:1,0","0:0:2,0"\r\n')  # latin-1 byte
    assert os.path.join(data_folder, "test_sent_emo.csv") + " is not UTF-8 text" in error_of(tmp_path, data_folder)
    data_folder = make_csvs(tmp_path / "d")
    os.remove(os.path.join(data_folder, "dev_sent_emo.csv"))
    assert f"{data_folder} lacks dev_sent_emo.csv" in error_of(tmp_path, data_folder)


def test_audio_options_need_the_clip_folders(tmp_path):
    data_folder = make_csvs(tmp_path / "MELD.Raw")
    assert "lacks the clip folders train_splits, dev_splits_complete, output_repeated_splits_test" in error_of(
        tmp_path, data_folder, audio="yes")
    os.makedirs(os.path.join(data_folder, "train_splits"))
    message = error_of(tmp_path, data_folder)  # auto with one folder of three
    assert "lacks the clip folders dev_splits_complete, output_repeated_splits_test" in message
    assert "--audio no" in message
    assert "audio must be one of auto, yes, no" in error_of(tmp_path, data_folder, audio="maybe")


def test_no_ffmpeg_is_one_line_saying_how_to_install_it(tmp_path, monkeypatch):
    data_folder = make_csvs(tmp_path / "MELD.Raw")
    for split, folder in CLIP_FOLDERS.items():
        os.makedirs(os.path.join(data_folder, folder))
        with open(os.path.join(data_folder, folder, "dia0_utt0.mp4"), "wb") as handle:
            handle.write(b"\0" * 64)
    monkeypatch.setattr(meld_prepare.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # importing it fails
    assert "pip install imageio-ffmpeg" in error_of(tmp_path, data_folder)


@pytest.fixture(scope="module")
def ffmpeg():
    try:
        return meld_prepare.find_ffmpeg()
    except MeldPrepError:
        pytest.skip("neither an ffmpeg executable nor the imageio-ffmpeg package is installed "
                    "(pip install imageio-ffmpeg) to make the test's mp4 clips")


def make_clip(ffmpeg, path, seconds):
    """A tiny mp4 like MELD's: a video stream and a 44.1 kHz stereo AAC audio stream."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run([ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-f", "lavfi", "-i", f"color=c=black:s=16x16:d={seconds}",
                    "-ac", "2", "-ar", "44100", "-c:v", "mpeg4", "-shortest", path], check=True, timeout=60)


def test_audio_decoded_broken_and_missing_clips_dropped_and_resumed(tmp_path, ffmpeg, capsys, caplog, monkeypatch):
    rows = {"train": ROWS["train"][:2], "dev": ROWS["dev"][:2], "test": ROWS["test"][:2]}
    data_folder = make_csvs(tmp_path / "MELD.Raw", rows=rows)
    make_clip(ffmpeg, os.path.join(data_folder, "train_splits", "dia0_utt0.mp4"), 0.3)
    shutil.copy(os.path.join(data_folder, "train_splits", "dia0_utt0.mp4"),
                os.path.join(data_folder, "train_splits", "dia0_utt1.mp4"))
    make_clip(ffmpeg, os.path.join(data_folder, "dev_splits_complete", "dia0_utt0.mp4"), 0.5)
    with open(os.path.join(data_folder, "dev_splits_complete", "dia0_utt1.mp4"), "wb") as handle:
        handle.write(os.urandom(2048))  # a broken clip
    make_clip(ffmpeg, os.path.join(data_folder, "output_repeated_splits_test", "dia0_utt1.mp4"), 0.2)
    # test_dia0_utt0's clip is missing
    save_folder = str(tmp_path / "out")
    with caplog.at_level(logging.WARNING, logger="data_prep.meld_prepare"):
        paths = prepare_meld(data_folder, save_folder)
    assert "2 clips are missing or could not be decoded and were dropped (dev 1, test 1)" in caplog.text
    assert os.path.join(data_folder, "dev_splits_complete", "dia0_utt1.mp4") + ": ffmpeg failed" in caplog.text
    train, dev, test = (load(save_folder, f"{split}.json") for split in ("train", "dev", "test"))
    assert sorted(train) == ["train_dia0_utt0", "train_dia0_utt1"] and list(dev) == ["dev_dia0_utt0"]
    assert list(test) == ["test_dia0_utt1"] and abs(test["test_dia0_utt1"]["duration"] - 0.2) < 0.03
    wav = os.path.join(os.path.abspath(save_folder), "wav", "dev", "dia0_utt0.wav")
    assert dev["dev_dia0_utt0"] == {"wav": wav, "duration": dev["dev_dia0_utt0"]["duration"], "emo": "sadness",
                                    "sentiment": "negative", "speaker": "Phoebe", "transcript": "Oh, he\u2019s lost it.",
                                    "dialogue": "dev_dia0", "group": "dev"}
    info = soundfile.info(wav)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert abs(info.frames / 16000 - 0.5) < 0.03 and dev["dev_dia0_utt0"]["duration"] == round(info.frames / 16000, 3)
    assert abs(train["train_dia0_utt1"]["duration"] - 0.3) < 0.03
    assert sorted(os.listdir(os.path.join(save_folder, "wav", "dev"))) == ["dia0_utt0.wav"]  # no temporary left
    corpus = load(save_folder, "corpus.json")
    assert corpus["modalities"] == ["speech", "text"]
    assert corpus["counts"] == {"train": {"neutral": 2}, "dev": {"sadness": 1}, "test": {"disgust": 1}}
    out = capsys.readouterr().out
    assert "MELD: 4 utterances in 3 groups" in out
    assert "dropped: dev: broken clip 1, test: missing clip 1" in out

    # Same options: skipped. After a kill before corpus.json (options file gone), the decoded
    # wavs are reused: only the broken clip is tried again.
    assert prepare_meld(data_folder, save_folder, audio="yes") == paths
    assert "skipping preparation" in capsys.readouterr().out
    os.remove(os.path.join(save_folder, "prepare_opts.json"))
    decoded = []
    original = meld_prepare.decode_clip
    monkeypatch.setattr(meld_prepare, "decode_clip", lambda exe, clip, path: decoded.append(clip) or original(
        exe, clip, path))
    assert prepare_meld(data_folder, save_folder) == paths
    assert decoded == [os.path.join(data_folder, "dev_splits_complete", "dia0_utt1.mp4")]
    assert load(save_folder, "dev.json") == dev

    # Text only, from the same tree: no wav field, text modality.
    prepare_meld(data_folder, str(tmp_path / "text"), audio="no")
    assert load(str(tmp_path / "text"), "corpus.json")["modalities"] == ["text"]
    assert "wav" not in load(str(tmp_path / "text"), "test.json")["test_dia0_utt0"]

    # No usable clip in a partition (a wrong folder, most likely): an error naming the folder.
    os.remove(os.path.join(data_folder, "output_repeated_splits_test", "dia0_utt1.mp4"))
    with pytest.raises(MeldPrepError) as error:
        prepare_meld(data_folder, str(tmp_path / "out2"))
    message = str(error.value)
    assert ("none of the 2 clips of test_sent_emo.csv could be used from "
            + os.path.join(data_folder, "output_repeated_splits_test")) in message


def test_cli_bad_input_exits_2_with_one_line(tmp_path, script_error):
    data_folder = make_csvs(tmp_path / "MELD.Raw", header=HEADER.replace("Utterance_ID", "Utt_ID"))
    line = script_error("data_prep/meld_prepare.py", "--data_folder", data_folder, "--save_folder", tmp_path / "out",
                        "--audio", "no")
    assert "train_sent_emo.csv lacks the column Utterance_ID" in line
