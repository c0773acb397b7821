"""Tests of data_prep/emodb_prepare.py on miniature EmoDB trees (the release's file names
and ``wav/`` folder)."""
import json
import logging
import os
import re

import numpy as np
import pytest
import soundfile

from data_prep import emodb_prepare
from data_prep.emodb_prepare import EmoDBPrepError, prepare_emodb

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_RATE = 16000

# utterance -> seconds
UTTERANCES = {
    "03a01Fa": 0.1,
    "03a01Wb": 0.125,
    "03b10Nc": 0.15,
    "08a05Ta": 0.175,
    "08b01La": 0.2,
    "16a07Ea": 0.225,
    "16b09Aa": 0.25,
    "16b03Wa": 0.275,
}
COUNTS = {"03": {"anger": 1, "happiness": 1, "neutral": 1}, "08": {"boredom": 1, "sadness": 1},
          "16": {"anger": 1, "disgust": 1, "fear": 1}}


def write_wav(path, seconds):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, np.zeros(int(round(seconds * SAMPLE_RATE)), dtype="float32"), SAMPLE_RATE)


def make_emodb(root, in_wav_folder=True):
    """An EmoDB tree: wav/03a01Fa.wav ... beside the release's other folders."""
    root = str(root)
    audio = os.path.join(root, "wav") if in_wav_folder else root
    for utt, seconds in UTTERANCES.items():
        write_wav(os.path.join(audio, utt + ".wav"), seconds)
    os.makedirs(os.path.join(root, "lablaut"))
    with open(os.path.join(root, "lablaut", "03a01Fa.lab"), "w") as handle:
        handle.write("not audio\n")
    with open(os.path.join(audio, "erkennung.txt"), "w") as handle:
        handle.write("not audio\n")
    return root


@pytest.fixture
def corpus(tmp_path):
    return make_emodb(tmp_path / "emodb")


def load(save_folder, name):
    with open(os.path.join(save_folder, name), encoding="utf-8") as handle:
        return json.load(handle)


def entries_of(save_folder):
    corpus_json = load(save_folder, "corpus.json")
    return {utt: entry for file in corpus_json["groups"].values() for utt, entry in load(save_folder, file).items()}


def test_manifests_and_corpus_json(corpus, tmp_path, capsys):
    save_folder = str(tmp_path / "out")
    paths = prepare_emodb(corpus, save_folder)
    assert paths == {speaker: os.path.join(save_folder, f"{speaker}.json") for speaker in ("03", "08", "16")}
    out = capsys.readouterr().out
    assert "EmoDB: 8 utterances in 3 groups" in out and "dropped: none" in out

    entries = entries_of(save_folder)
    assert sorted(entries) == sorted(UTTERANCES)
    assert entries["03a01Fa"] == {
        "wav": "{data_root}/wav/03a01Fa.wav", "duration": 0.1, "emo": "happiness", "speaker": "03", "gender": "M",
        "transcript": "Der Lappen liegt auf dem Eisschrank.", "language": "de", "sentence": "a01", "version": "a",
        "group": "03"}
    assert {utt: entry["duration"] for utt, entry in entries.items()} == UTTERANCES
    assert entries["03b10Nc"]["version"] == "c"
    assert entries["08a05Ta"]["gender"] == "F" and entries["16b09Aa"]["gender"] == "F"
    assert entries["08b01La"]["transcript"] == "Was sind denn das für Tüten, die da unter dem Tisch stehen?"
    assert entries["16b03Wa"]["transcript"] == ("An den Wochenenden bin ich jetzt immer nach Hause gefahren und "
                                                "habe Agnes besucht.")
    assert entries["16a07Ea"]["transcript"] == "In sieben Stunden wird es soweit sein."
    for utt, entry in entries.items():
        assert entry["speaker"] == entry["group"] == utt[:2]
        assert entry["language"] == "de"

    description = load(save_folder, "corpus.json")
    assert description["corpus"] == "EmoDB"
    assert description["groups"] == {"03": "03.json", "08": "08.json", "16": "16.json"}
    assert description["group_kind"] == "speaker"
    assert description["protocol"] == {"name": "leave_one_group_out"}
    assert description["labels"] == ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
    assert description["modalities"] == ["speech", "text"]
    assert description["text_carries_emotion"] is False and description["language"] == "de"
    assert description["counts"] == COUNTS


def test_wavs_directly_in_the_data_folder(tmp_path, capsys):
    corpus = make_emodb(tmp_path / "emodb", in_wav_folder=False)
    save_folder = str(tmp_path / "out")
    prepare_emodb(corpus, save_folder)
    entries = entries_of(save_folder)
    assert sorted(entries) == sorted(UTTERANCES)
    assert entries["16b09Aa"]["wav"] == "{data_root}/16b09Aa.wav"


def test_second_run_skips_and_changed_options_rerun(corpus, tmp_path, capsys):
    save_folder = str(tmp_path / "out")
    prepare_emodb(corpus, save_folder)
    manifest = os.path.join(save_folder, "03.json")
    first_mtime = os.stat(manifest).st_mtime_ns
    capsys.readouterr()

    assert sorted(prepare_emodb(corpus, save_folder)) == ["03", "08", "16"]
    assert "skipping preparation" in capsys.readouterr().out
    assert os.stat(manifest).st_mtime_ns == first_mtime

    moved = str(tmp_path / "emodb_copy")  # another data folder is another option
    os.rename(corpus, moved)
    prepare_emodb(moved, save_folder)
    assert "skipping preparation" not in capsys.readouterr().out
    assert load(save_folder, "prepare_opts.json")["data_folder"] == os.path.abspath(moved)

    os.remove(manifest)  # a missing output also forces a re-run
    prepare_emodb(moved, save_folder)
    assert "skipping preparation" not in capsys.readouterr().out
    assert os.path.isfile(manifest)


def test_skip_prep_does_nothing(corpus, tmp_path):
    assert prepare_emodb(corpus, str(tmp_path / "out"), skip_prep=True) is None
    assert not os.path.exists(tmp_path / "out")


def test_bad_input_is_one_line_naming_the_file(corpus, tmp_path):
    with pytest.raises(EmoDBPrepError, match="does not exist: .*nowhere"):
        prepare_emodb(str(tmp_path / "nowhere"), str(tmp_path / "out"))

    for name, what in (("03a01Xa.wav", "emotion code X"), ("04a01Fa.wav", "speaker code 04"),
                       ("03a03Fa.wav", "text code a03")):
        bad = os.path.join(corpus, "wav", name)
        write_wav(bad, 0.1)
        with pytest.raises(EmoDBPrepError, match=f"{name}: unknown {what}"):
            prepare_emodb(corpus, str(tmp_path / "out"))
        os.remove(bad)

    corrupt = os.path.join(corpus, "wav", "09a02Fa.wav")
    with open(corrupt, "wb") as handle:
        handle.write(b"RIFF....not a wav")
    with pytest.raises(EmoDBPrepError, match="cannot read the wav header of " + re.escape(corrupt)) as info:
        prepare_emodb(corpus, str(tmp_path / "out"))
    assert "\n" not in str(info.value)


def test_empty_tree(tmp_path):
    os.makedirs(tmp_path / "emodb" / "wav")
    with pytest.raises(EmoDBPrepError, match="no EmoDB file"):
        prepare_emodb(str(tmp_path / "emodb"), str(tmp_path / "out"))


def test_cli_bad_input_exits_2(tmp_path, script_error):
    line = script_error("data_prep/emodb_prepare.py", "--data_folder", tmp_path / "nowhere",
                        "--save_folder", tmp_path / "out")
    assert str(tmp_path / "nowhere") in line


def test_cli_main_prepares(corpus, tmp_path, capsys):
    save_folder = str(tmp_path / "out")
    assert emodb_prepare.run_script(emodb_prepare.main, "emodb_prepare.py",
                                    ["--data_folder", corpus, "--save_folder", save_folder]) == 0
    assert "8 utterances in 3 groups" in capsys.readouterr().out


def test_full_corpus_count_check(corpus, tmp_path, caplog, monkeypatch):
    with caplog.at_level(logging.WARNING):
        prepare_emodb(corpus, str(tmp_path / "a"), expect_full_corpus=True)
    assert "EMODB COUNTS DO NOT MATCH THE FULL CORPUS" in caplog.text
    assert "= 535" in caplog.text and "= 8" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING):  # three of the ten speakers: no check
        prepare_emodb(corpus, str(tmp_path / "b"))
    assert "DO NOT MATCH" not in caplog.text

    caplog.clear()
    for speaker in ("09", "10", "11", "12", "13", "14", "15"):  # all ten speakers: the check applies
        write_wav(os.path.join(corpus, "wav", f"{speaker}a02Na.wav"), 0.1)
    with caplog.at_level(logging.WARNING):
        prepare_emodb(corpus, str(tmp_path / "c"))
    assert "EMODB COUNTS DO NOT MATCH THE FULL CORPUS" in caplog.text

    caplog.clear()
    full = {"anger": 2, "boredom": 1, "disgust": 1, "fear": 1, "happiness": 1, "sadness": 1, "neutral": 8}
    monkeypatch.setattr(emodb_prepare, "FULL_CORPUS_COUNTS", full)
    with caplog.at_level(logging.WARNING):
        prepare_emodb(corpus, str(tmp_path / "d"))
    assert "DO NOT MATCH" not in caplog.text
