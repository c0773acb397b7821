"""Tests of data_prep/cremad_prepare.py on miniature CREMA-D trees (the release's file
names, folders and csv headers)."""
import json
import logging
import os
import re

import numpy as np
import pytest
import soundfile

from data_prep import cremad_prepare
from data_prep.cremad_prepare import CremaDPrepError, prepare_cremad

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_RATE = 16000

# clip -> (seconds, VoiceVote in summaryTable.csv, or None for no row).
CLIPS = {
    "1001_DFA_ANG_XX": (0.1, "A"),
    "1001_IEO_SAD_HI": (0.125, "S"),
    "1001_TIE_NEU_XX": (0.15, "S"),      # perceived as sad
    "1001_MTI_HAP_LO": (0.175, "H"),
    "1002_DFA_DIS_MD": (0.2, "D"),
    "1002_IEO_FEA_X": (0.225, "F"),      # a lone X level
    "1002_WSI_ANG_HI": (0.25, "A:N"),    # the raters tied
    "1003_ITS_SAD_XX": (0.275, "S"),
    "1003_TSI_ANG_LO": (0.3, None),      # no row in summaryTable.csv
}
INTENDED = {"1001": {"anger": 1, "happy": 1, "neutral": 1, "sad": 1}, "1002": {"anger": 1, "disgust": 1, "fear": 1},
            "1003": {"anger": 1, "sad": 1}}
RATINGS_HEADER = ",FileName,VoiceVote,VoiceLevel,FaceVote,FaceLevel,MultiModalVote,MultiModalLevel"


def write_wav(path, seconds):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, np.zeros(int(round(seconds * SAMPLE_RATE)), dtype="float32"), SAMPLE_RATE)


def make_cremad(root, demographics=True, ratings=True):
    """A CREMA-D tree: AudioWAV/, processedResults/summaryTable.csv, VideoDemographics.csv."""
    root = str(root)
    for clip, (seconds, _) in CLIPS.items():
        write_wav(os.path.join(root, "AudioWAV", clip + ".wav"), seconds)
    with open(os.path.join(root, "AudioWAV", "README.txt"), "w") as handle:
        handle.write("not a clip\n")
    write_wav(os.path.join(root, "AudioWAV", "1001_DFA_ANG_XX_copy.wav"), 0.1)  # not the pattern: ignored
    if ratings:
        os.makedirs(os.path.join(root, "processedResults"))
        rows = [RATINGS_HEADER] + [f"{i},{clip},{vote},60,{vote},70,{vote},65"
                                   for i, (clip, (_, vote)) in enumerate(CLIPS.items(), 1) if vote]
        with open(os.path.join(root, "processedResults", "summaryTable.csv"), "w") as handle:
            handle.write("\n".join(rows) + "\n")
    if demographics:
        with open(os.path.join(root, "VideoDemographics.csv"), "w") as handle:
            handle.write("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
                         "1002,21,Female,Caucasian,Not Hispanic\n")  # 1003 unknown
    return root


@pytest.fixture
def corpus(tmp_path):
    return make_cremad(tmp_path / "CREMA-D")


def load(save_folder, name):
    with open(os.path.join(save_folder, name), encoding="utf-8") as handle:
        return json.load(handle)


def entries_of(save_folder):
    corpus_json = load(save_folder, "corpus.json")
    return {utt: entry for file in corpus_json["groups"].values() for utt, entry in load(save_folder, file).items()}


def test_intended_manifests_and_corpus_json(corpus, tmp_path, capsys):
    save_folder = str(tmp_path / "out")
    paths = prepare_cremad(corpus, save_folder)
    assert paths == {actor: os.path.join(save_folder, f"{actor}.json") for actor in ("1001", "1002", "1003")}
    out = capsys.readouterr().out
    assert "CREMA-D (intended labels): 9 utterances in 3 groups" in out
    assert "dropped: none" in out

    entries = entries_of(save_folder)
    assert sorted(entries) == sorted(CLIPS)
    assert entries["1001_DFA_ANG_XX"] == {
        "wav": "{data_root}/AudioWAV/1001_DFA_ANG_XX.wav", "duration": 0.1, "emo": "anger", "emo_intended": "anger",
        "intensity": "unspecified", "speaker": "1001", "gender": "M", "transcript": "Don't forget a jacket.",
        "sentence": "DFA", "group": "1001"}
    assert {utt: entry["duration"] for utt, entry in entries.items()} == {utt: s for utt, (s, _) in CLIPS.items()}
    assert entries["1002_IEO_FEA_X"]["intensity"] == "unspecified"
    assert entries["1001_IEO_SAD_HI"]["intensity"] == "high"
    assert entries["1001_MTI_HAP_LO"]["intensity"] == "low"
    assert entries["1002_DFA_DIS_MD"]["intensity"] == "medium"
    assert entries["1002_DFA_DIS_MD"]["gender"] == "F"
    assert "gender" not in entries["1003_ITS_SAD_XX"]  # not in VideoDemographics.csv
    assert entries["1001_TIE_NEU_XX"]["transcript"] == "That is exactly what happened."
    assert entries["1002_WSI_ANG_HI"]["transcript"] == "We'll stop in a couple of minutes."
    assert entries["1003_TSI_ANG_LO"]["transcript"] == "The surface is slick."
    assert entries["1001_MTI_HAP_LO"]["transcript"] == "Maybe tomorrow it will be cold."
    for utt, entry in entries.items():
        assert entry["speaker"] == entry["group"] == utt[:4]
        assert entry["emo"] == entry["emo_intended"]

    description = load(save_folder, "corpus.json")
    assert description["corpus"] == "CREMA-D (intended labels)"
    assert description["groups"] == {"1001": "1001.json", "1002": "1002.json", "1003": "1003.json"}
    assert description["group_kind"] == "speaker"
    assert description["protocol"] == {"name": "speaker_folds", "folds": 5}
    assert description["labels"] == ["anger", "disgust", "fear", "happy", "neutral", "sad"]
    assert description["modalities"] == ["speech", "text"]
    assert description["text_carries_emotion"] is False
    assert description["counts"] == INTENDED
    assert load(save_folder, "prepare_opts.json")["label_source"] == "intended"


def test_perceived_labels_drop_ties_and_unrated(corpus, tmp_path, capsys):
    save_folder = str(tmp_path / "out")
    prepare_cremad(corpus, save_folder, label_source="perceived", n_folds=3)
    out = capsys.readouterr().out
    assert "7 utterances in 3 groups" in out
    assert "no voice majority 1" in out and "no rating in summaryTable.csv 1" in out
    entries = entries_of(save_folder)
    assert sorted(entries) == sorted(clip for clip, (_, vote) in CLIPS.items() if vote and ":" not in vote)
    assert entries["1001_TIE_NEU_XX"]["emo"] == "sad"
    assert entries["1001_TIE_NEU_XX"]["emo_intended"] == "neutral"
    description = load(save_folder, "corpus.json")
    assert description["protocol"] == {"name": "speaker_folds", "folds": 3}
    assert description["labels"] == ["anger", "disgust", "fear", "happy", "sad"]
    assert description["counts"] == {"1001": {"anger": 1, "happy": 1, "sad": 2}, "1002": {"disgust": 1, "fear": 1},
                                     "1003": {"sad": 1}}


def test_perceived_needs_the_ratings_file(tmp_path):
    corpus = make_cremad(tmp_path / "CREMA-D", ratings=False)
    path = os.path.join(corpus, "processedResults", "summaryTable.csv")
    with pytest.raises(CremaDPrepError, match="missing: " + re.escape(path)):
        prepare_cremad(corpus, str(tmp_path / "out"), label_source="perceived")


def test_unknown_vote_letter_names_the_csv(corpus, tmp_path):
    path = os.path.join(corpus, "processedResults", "summaryTable.csv")
    with open(path, "a") as handle:
        handle.write("99,1003_TSI_ANG_LO,Q,60,A,60,A,60\n")
    with pytest.raises(CremaDPrepError, match="summaryTable.csv: 1003_TSI_ANG_LO has the VoiceVote 'Q'"):
        prepare_cremad(corpus, str(tmp_path / "out"), label_source="perceived")


def test_no_demographics_no_gender(tmp_path, capsys):
    corpus = make_cremad(tmp_path / "CREMA-D", demographics=False)
    save_folder = str(tmp_path / "out")
    prepare_cremad(corpus, save_folder)
    assert not any("gender" in entry for entry in entries_of(save_folder).values())


def test_second_run_skips_and_changed_options_rerun(corpus, tmp_path, capsys):
    save_folder = str(tmp_path / "out")
    prepare_cremad(corpus, save_folder)
    manifest = os.path.join(save_folder, "1001.json")
    first_mtime = os.stat(manifest).st_mtime_ns
    capsys.readouterr()

    assert prepare_cremad(corpus, save_folder) == {a: os.path.join(save_folder, f"{a}.json")
                                                   for a in ("1001", "1002", "1003")}
    assert "skipping preparation" in capsys.readouterr().out
    assert os.stat(manifest).st_mtime_ns == first_mtime

    prepare_cremad(corpus, save_folder, label_source="perceived")
    assert "skipping preparation" not in capsys.readouterr().out
    assert load(save_folder, "1001.json")["1001_TIE_NEU_XX"]["emo"] == "sad"

    prepare_cremad(corpus, save_folder, label_source="perceived", n_folds=4)
    assert "skipping preparation" not in capsys.readouterr().out
    assert load(save_folder, "corpus.json")["protocol"]["folds"] == 4


def test_skip_prep_does_nothing(corpus, tmp_path):
    assert prepare_cremad(corpus, str(tmp_path / "out"), skip_prep=True) is None
    assert not os.path.exists(tmp_path / "out")


def test_known_silent_clip_is_dropped(corpus, tmp_path, capsys):
    write_wav(os.path.join(corpus, "AudioWAV", "1076_MTI_SAD_XX.wav"), 0)  # header only, as upstream
    save_folder = str(tmp_path / "out")
    paths = prepare_cremad(corpus, save_folder)
    assert "1076" not in paths
    assert "no audio (known broken clip) 1" in capsys.readouterr().out


def test_bad_input_is_one_line_naming_the_file(corpus, tmp_path):
    with pytest.raises(CremaDPrepError, match="does not exist: .*nowhere"):
        prepare_cremad(str(tmp_path / "nowhere"), str(tmp_path / "out"))
    with pytest.raises(CremaDPrepError, match="label_source must be"):
        prepare_cremad(corpus, str(tmp_path / "out"), label_source="voted")
    with pytest.raises(CremaDPrepError, match="n_folds must be at least 2"):
        prepare_cremad(corpus, str(tmp_path / "out"), n_folds=1)

    bad = os.path.join(corpus, "AudioWAV", "1001_XYZ_ANG_XX.wav")
    write_wav(bad, 0.1)
    with pytest.raises(CremaDPrepError, match="1001_XYZ_ANG_XX.wav: unknown sentence code XYZ"):
        prepare_cremad(corpus, str(tmp_path / "out"))
    os.remove(bad)

    corrupt = os.path.join(corpus, "AudioWAV", "1003_IWW_HAP_MD.wav")
    with open(corrupt, "wb") as handle:
        handle.write(b"not a wav file at all")
    with pytest.raises(CremaDPrepError, match="cannot read the wav header of " + re.escape(corrupt)) as info:
        prepare_cremad(corpus, str(tmp_path / "out"))
    assert "\n" not in str(info.value)


def test_empty_tree(tmp_path):
    os.makedirs(tmp_path / "CREMA-D" / "AudioWAV")
    with pytest.raises(CremaDPrepError, match="no CREMA-D clip"):
        prepare_cremad(str(tmp_path / "CREMA-D"), str(tmp_path / "out"))


def test_cli_bad_input_exits_2(tmp_path, script_error):
    line = script_error("data_prep/cremad_prepare.py", "--data_folder", tmp_path / "nowhere",
                        "--save_folder", tmp_path / "out")
    assert str(tmp_path / "nowhere") in line


def test_cli_main_prepares(corpus, tmp_path, capsys):
    save_folder = str(tmp_path / "out")
    assert cremad_prepare.run_script(cremad_prepare.main, "cremad_prepare.py",
                                     ["--data_folder", corpus, "--save_folder", save_folder,
                                      "--label_source", "perceived", "--n_folds", "3"]) == 0
    assert "7 utterances in 3 groups" in capsys.readouterr().out
    assert load(save_folder, "prepare_opts.json")["n_folds"] == 3


def test_full_corpus_count_check(corpus, tmp_path, caplog, monkeypatch):
    with caplog.at_level(logging.WARNING):
        prepare_cremad(corpus, str(tmp_path / "a"), expect_full_corpus=True)
    assert "CREMA-D COUNTS DO NOT MATCH THE FULL CORPUS" in caplog.text
    assert "= 7442" in caplog.text and "= 9" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING):  # three actors: not the full release, no check
        prepare_cremad(corpus, str(tmp_path / "b"))
    assert "DO NOT MATCH" not in caplog.text

    caplog.clear()
    monkeypatch.setattr(cremad_prepare, "N_ACTORS", 3)  # the tree now looks like the full release
    with caplog.at_level(logging.WARNING):
        prepare_cremad(corpus, str(tmp_path / "c"), label_source="perceived", n_folds=3)
    assert "DO NOT MATCH" in caplog.text  # the intended labels of every clip are checked

    caplog.clear()
    full = {"anger": 3, "disgust": 1, "fear": 1, "happy": 1, "neutral": 1, "sad": 2}
    monkeypatch.setattr(cremad_prepare, "FULL_CORPUS_COUNTS", full)
    with caplog.at_level(logging.WARNING):
        prepare_cremad(corpus, str(tmp_path / "d"), n_folds=3)
    assert "DO NOT MATCH" not in caplog.text
