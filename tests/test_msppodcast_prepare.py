"""MSP-Podcast preparation on a miniature of the release (real file names, folders and CSV header)."""
import json
import os

import numpy as np
import pytest
import soundfile

from data_prep.msppodcast_prepare import MspPodcastPrepError, prepare_msppodcast

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
# FileName stem -> (EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set, seconds)
ROWS = {
    "MSP-PODCAST_0001_0008": ("A", "5.4", "2.2", "5.0", "127", "Male", "Train", 0.5),
    "MSP-PODCAST_0001_0012": ("N", "4.0", "4.0", "4.2", "127", "Male", "Train", 0.25),
    "MSP-PODCAST_0002_0003": ("S", "2.4", "2.0", "3.2", "Unknown", "Unknown", "Train", 0.3),
    "MSP-PODCAST_0002_0004": ("X", "4.2", "3.8", "4.0", "Unknown", "Unknown", "Train", 0.2),
    "MSP-PODCAST_0003_0001": ("H", "5.0", "6.2", "4.8", "45", "Female", "Development", 0.4),
    "MSP-PODCAST_0003_0002": ("C", "4.4", "2.6", "5.2", "45", "Female", "Development", 0.2),
    "MSP-PODCAST_0004_0001": ("U", "5.6", "4.6", "4.4", "310", "Female", "Test1", 0.35),
    "MSP-PODCAST_0004_0002": ("X", "3.8", "3.6", "3.8", "310", "Female", "Test1", 0.2),
    "MSP-PODCAST_0005_0001": ("O", "4.2", "3.4", "4.0", "1022", "Male", "Test2", 0.2),
    "MSP-PODCAST_0005_0002": ("F", "5.2", "1.8", "2.6", "1022", "Male", "Test2", 0.2),
    "MSP-PODCAST_0005_0003": ("D", "4.6", "1.6", "4.6", "1022", "Male", "Test2", 0.2),
}


def make_corpus(root, rows=ROWS, transcripts=True, header=HEADER):
    """Writes Labels/labels_consensus.csv, Audios/*.wav (16 kHz) and Transcripts/*.txt."""
    for folder in ("Labels", "Audios") + (("Transcripts",) if transcripts else ()):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    lines = [header]
    for stem, (code, act, val, dom, speaker, gender, split, seconds) in rows.items():
        lines.append(f"{stem}.wav,{code},{act},{val},{dom},{speaker},{gender},{split}")
        soundfile.write(os.path.join(root, "Audios", stem + ".wav"), np.zeros(int(seconds * 16000)), 16000)
        if transcripts:
            with open(os.path.join(root, "Transcripts", stem + ".txt"), "w", encoding="utf-8") as handle:
                handle.write(f"  words of {stem[-4:]}\n")
    with open(os.path.join(root, "Labels", "labels_consensus.csv"), "w", encoding="utf-8") as handle:
        handle.write("\r\n".join(lines) + "\r\n")
    return str(root)


def load(save_folder, name):
    with open(os.path.join(save_folder, name), encoding="utf-8") as handle:
        return json.load(handle)


def test_manifests_corpus_json_and_count_table(tmp_path, capsys):
    data_folder = make_corpus(tmp_path / "MSP-Podcast")
    save_folder = str(tmp_path / "out")
    paths = prepare_msppodcast(data_folder, save_folder)
    assert list(paths) == ["Train", "Development", "Test1", "Test2"]
    assert paths["Test2"] == os.path.join(save_folder, "Test2.json")
    train = load(save_folder, "Train.json")
    assert train["MSP-PODCAST_0001_0008"] == {
        "wav": "{data_root}/Audios/MSP-PODCAST_0001_0008.wav", "duration": 0.5, "emo": "anger",
        "arousal": 5.4, "valence": 2.2, "dominance": 5.0, "speaker": "127", "gender": "M",
        "transcript": "words of 0008", "group": "Train"}
    # "Unknown" speaker kept as is; gender omitted when not Male/Female; the X row dropped.
    assert train["MSP-PODCAST_0002_0003"]["speaker"] == "Unknown"
    assert "gender" not in train["MSP-PODCAST_0002_0003"]
    assert sorted(train) == ["MSP-PODCAST_0001_0008", "MSP-PODCAST_0001_0012", "MSP-PODCAST_0002_0003"]
    labels = {group: {utt: entry["emo"] for utt, entry in load(save_folder, f"{group}.json").items()}
              for group in paths}
    assert labels == {
        "Train": {"MSP-PODCAST_0001_0008": "anger", "MSP-PODCAST_0001_0012": "neutral",
                  "MSP-PODCAST_0002_0003": "sadness"},
        "Development": {"MSP-PODCAST_0003_0001": "happiness", "MSP-PODCAST_0003_0002": "contempt"},
        "Test1": {"MSP-PODCAST_0004_0001": "surprise"},
        "Test2": {"MSP-PODCAST_0005_0001": "other", "MSP-PODCAST_0005_0002": "fear",
                  "MSP-PODCAST_0005_0003": "disgust"},
    }
    development = load(save_folder, "Development.json")["MSP-PODCAST_0003_0001"]
    assert (development["speaker"], development["gender"], development["group"]) == ("45", "F", "Development")
    assert development["duration"] == 0.4 and development["transcript"] == "words of 0001"
    corpus = load(save_folder, "corpus.json")
    assert corpus["corpus"] == "MSP-Podcast" and corpus["group_kind"] == "partition"
    assert corpus["groups"] == {name: f"{name}.json" for name in ("Train", "Development", "Test1", "Test2")}
    assert corpus["protocol"] == {"name": "official", "train": ["Train"], "holdout": ["Development"],
                                  "test": ["Test1"]}
    assert corpus["modalities"] == ["speech", "text"] and corpus["text_carries_emotion"] is True
    assert corpus["labels"] == ["anger", "sadness", "happiness", "surprise", "fear", "disgust", "contempt",
                                "neutral", "other"]
    assert corpus["counts"] == {"Train": {"anger": 1, "neutral": 1, "sadness": 1},
                                "Development": {"contempt": 1, "happiness": 1}, "Test1": {"surprise": 1},
                                "Test2": {"disgust": 1, "fear": 1, "other": 1}}
    out = capsys.readouterr().out
    assert "MSP-Podcast: 9 utterances in 4 groups" in out
    assert "dropped: no agreement 2" in out
    assert [line.split()[-1] for line in out.splitlines() if line.split()[0] in paths] == ["3", "2", "1", "3"]

    # A second run with the same options skips the work.
    mtime = os.path.getmtime(paths["Train"])
    assert prepare_msppodcast(data_folder, save_folder) == paths
    assert "up to date (same options): skipping preparation" in capsys.readouterr().out
    assert os.path.getmtime(paths["Train"]) == mtime
    assert prepare_msppodcast(data_folder, save_folder, skip_prep=True) is None


def test_release_without_transcripts_is_speech_only(tmp_path):
    data_folder = make_corpus(tmp_path / "MSP-Podcast", transcripts=False)
    save_folder = str(tmp_path / "out")
    paths = prepare_msppodcast(data_folder, save_folder)
    assert load(save_folder, "corpus.json")["modalities"] == ["speech"]
    assert all("transcript" not in entry for entry in load(save_folder, "Train.json").values())
    # Transcripts added later: the options differ, so the corpus is prepared again.
    make_corpus(data_folder)
    assert prepare_msppodcast(data_folder, save_folder) == paths
    assert load(save_folder, "corpus.json")["modalities"] == ["speech", "text"]
    assert load(save_folder, "Test1.json")["MSP-PODCAST_0004_0001"]["transcript"] == "words of 0001"


def error_of(data_folder, tmp_path):
    with pytest.raises(MspPodcastPrepError) as error:
        prepare_msppodcast(data_folder, str(tmp_path / "out"))
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_column_names_file_and_column(tmp_path):
    data_folder = make_corpus(tmp_path / "MSP-Podcast", header=HEADER.replace("SpkrID", "Speaker"))
    message = error_of(data_folder, tmp_path)
    assert os.path.join(data_folder, "Labels", "labels_consensus.csv") in message
    assert "lacks the column SpkrID" in message


def test_missing_transcript_file_is_an_error(tmp_path):
    data_folder = make_corpus(tmp_path / "MSP-Podcast")
    missing = os.path.join(data_folder, "Transcripts", "MSP-PODCAST_0003_0002.txt")
    os.remove(missing)
    assert f"missing transcript file: {missing}" in error_of(data_folder, tmp_path)


def test_missing_partition_names_csv_and_partitions_found(tmp_path):
    rows = {stem: row for stem, row in ROWS.items() if row[6] != "Development"}
    data_folder = make_corpus(tmp_path / "MSP-Podcast", rows=rows)
    message = error_of(data_folder, tmp_path)
    assert os.path.join(data_folder, "Labels", "labels_consensus.csv") in message
    assert "needs the partitions Development" in message and "Split_Set holds Train, Test1, Test2" in message


def test_bad_rows_and_missing_wav_name_the_file(tmp_path):
    data_folder = make_corpus(tmp_path / "MSP-Podcast", rows={**ROWS, "MSP-PODCAST_0006_0001": (
        "Z", "4", "4", "4", "7", "Male", "Train", 0.2)})
    message = error_of(data_folder, tmp_path)
    assert "labels_consensus.csv line 13: unknown EmoClass 'Z'" in message
    data_folder = make_corpus(tmp_path / "MSP-Podcast2", rows={**ROWS, "MSP-PODCAST_0006_0001": (
        "N", "high", "4", "4", "7", "Male", "Train", 0.2)})
    assert "line 13: EmoAct is not a number: 'high'" in error_of(data_folder, tmp_path)
    data_folder = make_corpus(tmp_path / "MSP-Podcast3")
    wav = os.path.join(data_folder, "Audios", "MSP-PODCAST_0004_0001.wav")
    os.remove(wav)
    assert f"missing wav file: {wav}" in error_of(data_folder, tmp_path)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, script_error):
    data_folder = make_corpus(tmp_path / "MSP-Podcast", header=HEADER.replace("Split_Set", "Split"))
    line = script_error("data_prep/msppodcast_prepare.py", "--data_folder", data_folder,
                        "--save_folder", tmp_path / "out")
    assert "labels_consensus.csv lacks the column Split_Set" in line
