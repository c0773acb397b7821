"""Tests of data_prep/csv_prepare.py (a corpus of one's own, described by a CSV) on tiny
corpora written in tmp_path."""
import json
import logging
import os

import numpy as np
import pytest
import soundfile

from data_prep.csv_prepare import CsvPrepError, prepare_csv
from mmer_lobes.corpora import fold_names, load_corpus

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_RATE = 16000


def write_audio(path, seconds, file_format=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(str(path), np.zeros(int(round(seconds * SAMPLE_RATE)), dtype="float32"), SAMPLE_RATE,
                    format=file_format)


def write_csv(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def corpus(tmp_path):
    """Three speakers, five files: wavs, one flac in a subfolder, one wav outside the CSV's
    folder given by its absolute path. Returns (csv folder, outside file)."""
    folder = tmp_path / "mine"
    write_audio(folder / "a.wav", 0.1)
    write_audio(folder / "b.wav", 0.2)
    write_audio(folder / "spk2" / "c.flac", 0.3, "FLAC")
    write_audio(folder / "d.wav", 0.25)
    outside = tmp_path / "elsewhere" / "e.wav"
    write_audio(outside, 0.15)
    return folder, str(outside)


def outside_id(outside):
    return os.path.splitext(outside)[0].lstrip("/").replace("/", "_")


def speaker_csv(folder, outside):
    return write_csv(folder / "mine.csv", [
        "path,label,speaker,text",
        "a.wav,happy,spk1,What a lovely day.",
        "b.wav,sad,spk1,I miss her.",
        "spk2/c.flac,happy,spk2,Great news!",
        "./d.wav,angry,spk2,Get out.",
        f"{outside},sad,spk3,Oh no.",
    ])


def test_speaker_groups_entries_and_corpus(corpus, capsys):
    folder, outside = corpus
    csv_path = speaker_csv(folder, outside)
    save = str(folder.parent / "manifests")
    paths = prepare_csv(csv_path, save, n_folds=3)
    assert paths == {s: os.path.join(save, f"{s}.json") for s in ("spk1", "spk2", "spk3")}
    manifests = {group: json.load(open(path)) for group, path in paths.items()}
    assert manifests == {
        "spk1": {
            "a": {"wav": "{data_root}/a.wav", "duration": 0.1, "emo": "happy", "speaker": "spk1",
                  "transcript": "What a lovely day.", "group": "spk1"},
            "b": {"wav": "{data_root}/b.wav", "duration": 0.2, "emo": "sad", "speaker": "spk1",
                  "transcript": "I miss her.", "group": "spk1"},
        },
        "spk2": {
            "spk2_c": {"wav": "{data_root}/spk2/c.flac", "duration": 0.3, "emo": "happy", "speaker": "spk2",
                       "transcript": "Great news!", "group": "spk2"},
            "d": {"wav": "{data_root}/d.wav", "duration": 0.25, "emo": "angry", "speaker": "spk2",
                  "transcript": "Get out.", "group": "spk2"},
        },
        "spk3": {
            outside_id(outside): {"wav": outside, "duration": 0.15, "emo": "sad", "speaker": "spk3",
                                  "transcript": "Oh no.", "group": "spk3"},
        },
    }
    for entries in manifests.values():
        for entry in entries.values():
            assert os.path.isfile(entry["wav"].replace("{data_root}", str(folder)))
    description = json.load(open(os.path.join(save, "corpus.json")))
    assert description == {
        "format_version": 1, "language": "en", "corpus": "mine", "label_key": "emo", "labels": ["angry", "happy", "sad"],
        "group_kind": "speaker", "groups": {"spk1": "spk1.json", "spk2": "spk2.json", "spk3": "spk3.json"},
        "protocol": {"name": "speaker_folds", "folds": 3}, "modalities": ["speech", "text"],
        "text_carries_emotion": True,
        "counts": {"spk1": {"happy": 1, "sad": 1}, "spk2": {"angry": 1, "happy": 1}, "spk3": {"sad": 1}},
    }
    assert fold_names(load_corpus(save)) == ["1", "2", "3"]
    printed = capsys.readouterr().out
    assert f"mine: 5 utterances in 3 groups -> {save}" in printed
    assert "total        1     2    2      5" in printed and "dropped: none" in printed


def test_group_column_extra_columns_and_options(corpus):
    folder, outside = corpus
    csv_path = write_csv(folder / "sites.csv", [
        "path,label,speaker,group,mood",
        "a.wav,happy,spk1,site A,calm",
        "b.wav,sad,spk1,site A,",
        "spk2/c.flac,happy,spk2,site/B,tense",
        f"{outside},sad,spk3,site/B,low",
    ])
    save = str(folder / "manifests")
    paths = prepare_csv(csv_path, save, corpus_name="My corpus", n_folds=7, fixed_text=True)
    assert paths == {"site A": os.path.join(save, "site_A.json"), "site/B": os.path.join(save, "site_B.json")}
    site_b = json.load(open(paths["site/B"]))
    assert site_b == {
        "spk2_c": {"wav": "{data_root}/spk2/c.flac", "duration": 0.3, "emo": "happy", "speaker": "spk2",
                   "mood": "tense", "group": "site/B"},
        outside_id(outside): {"wav": outside, "duration": 0.15, "emo": "sad", "speaker": "spk3", "mood": "low",
                              "group": "site/B"},
    }
    assert json.load(open(paths["site A"]))["b"]["mood"] == ""
    description = load_corpus(save)
    assert description["corpus"] == "My corpus" and description["group_kind"] == "group"
    assert description["groups"] == {"site A": "site_A.json", "site/B": "site_B.json"}
    assert description["protocol"] == {"name": "leave_one_group_out"}
    assert description["modalities"] == ["speech"] and description["text_carries_emotion"] is False
    assert description["counts"] == {"site A": {"happy": 1, "sad": 1}, "site/B": {"happy": 1, "sad": 1}}
    assert fold_names(description) == ["site A", "site/B"]


def test_fixed_text_and_partly_empty_texts(corpus, caplog):
    folder, outside = corpus
    csv_path = write_csv(folder / "texts.csv", [
        "path,label,speaker,text", "a.wav,happy,s1,Kids are talking.", "b.wav,sad,s2,Kids are talking.",
    ])
    save = str(folder / "fixed")
    prepare_csv(csv_path, save, n_folds=2, fixed_text=True)
    description = load_corpus(save)
    assert description["modalities"] == ["speech", "text"] and description["text_carries_emotion"] is False
    csv_path = write_csv(folder / "some.csv", ["path,label,speaker,text", "a.wav,happy,s1,Hi.", "b.wav,sad,s2,"])
    with caplog.at_level(logging.WARNING, logger="data_prep.csv_prepare"):
        paths = prepare_csv(csv_path, str(folder / "some"), n_folds=2)
    assert load_corpus(str(folder / "some"))["modalities"] == ["speech"]
    assert "the text is empty on 1 of 2 rows (first: line 3)" in caplog.text
    assert json.load(open(paths["s2"]))["b"]["transcript"] == ""


def test_skip_on_rerun_and_prepare_again_on_changes(corpus, capsys):
    folder, outside = corpus
    csv_path = speaker_csv(folder, outside)
    save = str(folder / "manifests")
    paths = prepare_csv(csv_path, save, n_folds=3)
    capsys.readouterr()
    os.remove(os.path.join(folder, "a.wav"))  # a rerun that read the audio would fail
    assert prepare_csv(csv_path, save, n_folds=3) == paths
    assert "up to date (same options): skipping preparation" in capsys.readouterr().out
    assert prepare_csv(csv_path, save, skip_prep=True) is None
    with pytest.raises(CsvPrepError, match="line 2: missing wav file: .*a.wav"):
        prepare_csv(csv_path, save, n_folds=2)  # other options: prepared again
    write_audio(folder / "a.wav", 0.1)
    with open(csv_path, "a") as handle:  # an edited CSV is prepared again
        handle.write("b.wav,sad,spk4,again\n")
    with pytest.raises(CsvPrepError, match="lines 3 and 7: both give the utterance id b"):
        prepare_csv(csv_path, save, n_folds=3)


@pytest.mark.parametrize("lines, message, n_folds", [
    (["path,emotion,speaker", "a.wav,happy,s1"],
     r"mine\.csv has no label column \(columns: path, emotion, speaker; required: path, label, speaker\)", 2),
    (["path,label,speaker", "a.wav,happy,s1", "", "b.wav,,s2"], r"mine\.csv line 4: empty label", 2),
    (["path,label,speaker", "a.wav,happy,s1", "gone.wav,sad,s2"],
     r"mine\.csv line 3: missing wav file: .*/gone\.wav", 2),
    (["path,label,speaker", "a.wav,happy,s1", "a.flac,sad,s2"],
     r"mine\.csv lines 2 and 3: both give the utterance id a \(the path without its extension\)", 2),
    (["path,label,speaker", "a.wav,happy,s1", "b.wav,sad,s2"],
     r"mine\.csv: 2 speakers found, 5 speaker-independent folds need at least 5; pass --n_folds 2 or fewer", 5),
    (["path,label,speaker", "a.wav,happy,s1", "b.wav,sad,s1"],
     r"mine\.csv: 1 speaker found, speaker-independent folds need at least 2", 2),
    (["path,label,speaker,group", "a.wav,happy,s1,x y", "b.wav,sad,s2,x_y"],
     r"the groups 'x y' and 'x_y' would both be written to x_y\.json", 2),
    (["path,label,speaker,group", "a.wav,happy,s1,g", "b.wav,sad,s2,g"], r"the group column names one group \(g\)", 2),
    (["path,label,speaker,wav", "a.wav,happy,s1,x"], r"the column wav would overwrite", 2),
    (["path,label,speaker", "a.wav,happy,s1,extra"], r"mine\.csv line 2: 4 cells, the header names 3 columns", 2),
    (["path,label,speaker"], r"mine\.csv has a header but no row", 2),
])
def test_errors_name_the_file_and_row(corpus, lines, message, n_folds):
    folder, _ = corpus
    csv_path = write_csv(folder / "mine.csv", lines)
    with pytest.raises(CsvPrepError, match=message):
        prepare_csv(csv_path, str(folder / "manifests"), n_folds=n_folds)


def test_corrupt_audio_and_missing_csv(corpus, tmp_path):
    folder, _ = corpus
    (folder / "bad.wav").write_bytes(b"RIFF not really a wav")
    csv_path = write_csv(folder / "mine.csv", ["path,label,speaker", "a.wav,happy,s1", "bad.wav,sad,s2"])
    with pytest.raises(CsvPrepError, match=r"mine\.csv line 3: cannot read the wav header of .*bad\.wav"):
        prepare_csv(csv_path, str(tmp_path / "out"), n_folds=2)
    with pytest.raises(CsvPrepError, match="CSV file does not exist"):
        prepare_csv(str(tmp_path / "none.csv"), str(tmp_path / "out"))
    with pytest.raises(CsvPrepError, match="n_folds must be at least 2"):
        prepare_csv(csv_path, str(tmp_path / "out"), n_folds=1)


def test_the_data_folder_names_its_one_csv(corpus, caplog):
    """recipes/experiment.py calls prepare_csv(data_folder, manifest_folder, **prepare_options)."""
    folder, outside = corpus
    write_csv(folder / "mine.csv", ["path,label,speaker,group", "a.wav,happy,s1,g1", "b.wav,sad,s1,g2",
                                    "d.wav,sad,s2,g2"])
    with caplog.at_level(logging.WARNING, logger="data_prep.csv_prepare"):
        paths = prepare_csv(str(folder), str(folder / "manifests"))
    assert list(paths) == ["g1", "g2"] and load_corpus(str(folder / "manifests"))["corpus"] == "mine"
    assert "the speakers s1 are in more than one group: leaving one group out is not speaker-independent" in caplog.text
    write_csv(folder / "other.csv", ["path,label,speaker"])
    with pytest.raises(CsvPrepError, match=r"mine is a folder holding 2 CSV files \(mine\.csv, other\.csv\)"):
        prepare_csv(str(folder), str(folder / "manifests"))


def test_command_line_error_is_one_line(corpus, script_error):
    folder, _ = corpus
    csv_path = write_csv(folder / "mine.csv", ["path,label,speaker", "a.wav,happy,s1", "b.wav,sad,s2"])
    line = script_error("data_prep/csv_prepare.py", "--csv", csv_path, "--save_folder", folder / "out")
    assert "2 speakers found" in line and "--n_folds 2" in line
