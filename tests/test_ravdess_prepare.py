"""Tests of data_prep/ravdess_prepare.py on RAVDESS trees written in tmp_path: a miniature
of 8 actors in the release's naming, and (for the count check) the full release's file
names with tiny wavs."""
import json
import logging
import os
import shutil

import numpy as np
import pytest
import soundfile

from data_prep import ravdess_prepare
from data_prep.ravdess_prepare import (EMOTIONS, FULL_CORPUS_COUNTS, STATEMENTS, RavdessPrepError, parse_file_name,
                                       prepare_ravdess)
from mmer_lobes.corpora import fold_names, load_corpus

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_RATE = 48000
ACTORS = range(1, 9)
# Per actor: (emotion, intensity, statement, repetition) of its speech files.
SPEECH_FILES = [("01", "01", "01", "01"), ("05", "01", "01", "01"), ("05", "02", "02", "01"), ("03", "02", "01", "02")]
SPEECH_PER_GROUP = {"angry": 8, "happy": 4, "neutral": 4}  # four actors
# Song files of actors 1-3 only, in another folder (the song zip's own Actor_XX folders).
SONG_ACTORS = (1, 2, 3)
SONG_FILES = [("02", "01", "01", "01"), ("04", "02", "02", "01")]


def file_name(channel, emotion, intensity, statement, repetition, actor, modality="03", extension="wav"):
    return f"{modality}-{channel}-{emotion}-{intensity}-{statement}-{repetition}-{actor:02d}.{extension}"


def n_samples(actor, index):
    """Distinct lengths, 0.055-0.12 s at 48 kHz."""
    return 2400 + 480 * index + 240 * actor


def write_wav(path, samples):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, np.zeros(samples, dtype="float32"), SAMPLE_RATE)


def make_miniature(root):
    """8 actors' speech in Actor_XX, actors 1-3's songs in song/Actor_XX, and video files
    and a readme that are not RAVDESS audio."""
    for actor in ACTORS:
        folder = os.path.join(root, f"Actor_{actor:02d}")
        for index, fields in enumerate(SPEECH_FILES):
            write_wav(os.path.join(folder, file_name("01", *fields, actor)), n_samples(actor, index))
        for modality in ("01", "02"):  # full-AV and video-only files of the release
            open(os.path.join(folder, file_name("01", "05", "01", "01", "01", actor, modality, "mp4")), "wb").close()
    for actor in SONG_ACTORS:
        for index, fields in enumerate(SONG_FILES):
            write_wav(os.path.join(root, "song", f"Actor_{actor:02d}", file_name("02", *fields, actor)),
                      n_samples(actor, index))
    with open(os.path.join(root, "README.txt"), "w") as handle:
        handle.write("RAVDESS\n")
    return root


@pytest.fixture
def corpus(tmp_path):
    return make_miniature(str(tmp_path / "RAVDESS"))


def load_manifests(paths):
    return {group: json.load(open(path)) for group, path in paths.items()}


def test_speech_manifests_of_the_miniature(corpus, tmp_path, capsys):
    save = str(tmp_path / "manifests")
    paths = prepare_ravdess(corpus, save)
    assert paths == {g: os.path.join(save, f"{g}.json") for g in ("actors01-04", "actors05-08")}
    manifests = load_manifests(paths)
    for group, entries in manifests.items():
        first = 1 if group == "actors01-04" else 5
        assert {u: e["emo"] for u, e in entries.items()} == {
            file_name("01", *fields, actor)[:-4]: EMOTIONS[fields[0]]
            for actor in range(first, first + 4) for fields in SPEECH_FILES}
        for utt_id, entry in entries.items():
            actor = int(utt_id[-2:])
            index = [fields[0] + fields[1] for fields in SPEECH_FILES].index(utt_id[6:11].replace("-", ""))
            assert entry["wav"] == f"{{data_root}}/Actor_{actor:02d}/{utt_id}.wav"
            assert os.path.isfile(entry["wav"].replace("{data_root}", corpus))
            assert entry["duration"] == round(n_samples(actor, index) / SAMPLE_RATE, 3)
            assert entry["speaker"] == f"actor{actor:02d}" and entry["group"] == group
            assert entry["gender"] == ("M" if actor % 2 else "F")
            assert entry["transcript"] == STATEMENTS[utt_id[12:14]]
            assert entry["intensity"] == {"01": "normal", "02": "strong"}[utt_id[9:11]]
            assert entry["vocal_channel"] == "speech" and entry["repetition"] == int(utt_id[15:17])
    assert manifests["actors05-08"]["03-01-05-02-02-01-06"] == {
        "wav": "{data_root}/Actor_06/03-01-05-02-02-01-06.wav", "duration": 0.1, "emo": "angry",
        "intensity": "strong", "speaker": "actor06", "gender": "F", "transcript": "Dogs are sitting by the door",
        "repetition": 1, "vocal_channel": "speech", "group": "actors05-08",
    }
    assert {e["speaker"] for e in manifests["actors01-04"].values()} == {"actor01", "actor02", "actor03", "actor04"}
    assert json.load(open(os.path.join(save, "corpus.json"))) == {
        "format_version": 1, "language": "en", "corpus": "RAVDESS speech", "label_key": "emo", "labels": ["neutral", "happy", "angry"],
        "group_kind": "actor group", "groups": {"actors01-04": "actors01-04.json", "actors05-08": "actors05-08.json"},
        "protocol": {"name": "leave_one_group_out"}, "modalities": ["speech", "text"], "text_carries_emotion": False,
        "counts": {"actors01-04": SPEECH_PER_GROUP, "actors05-08": SPEECH_PER_GROUP},
    }
    assert fold_names(load_corpus(save)) == ["actors01-04", "actors05-08"]
    printed = capsys.readouterr().out
    assert f"RAVDESS speech: 32 utterances in 2 groups -> {save}" in printed
    assert "dropped: song (not prepared) 6" in printed


def test_actors_per_group(corpus, tmp_path):
    paths = prepare_ravdess(corpus, str(tmp_path / "m"), actors_per_group=2)
    assert list(paths) == ["actors01-02", "actors03-04", "actors05-06", "actors07-08"]
    for group, entries in load_manifests(paths).items():
        first = int(group[6:8])
        assert {e["speaker"] for e in entries.values()} == {f"actor{first:02d}", f"actor{first + 1:02d}"}
        assert len(entries) == 8


@pytest.mark.parametrize("channel, counts, dropped", [
    ("song", {"actors01-04": {"calm": 3, "sad": 3}}, "dropped: speech (not prepared) 32"),
    ("both", {"actors01-04": {"angry": 8, "calm": 3, "happy": 4, "neutral": 4, "sad": 3},
              "actors05-08": SPEECH_PER_GROUP}, "dropped: none"),
])
def test_vocal_channel(corpus, tmp_path, capsys, channel, counts, dropped):
    save = str(tmp_path / channel)
    paths = prepare_ravdess(corpus, save, vocal_channel=channel)
    description = load_corpus(save)
    assert description["corpus"] == f"RAVDESS {channel}" and description["counts"] == counts
    expected_labels = [label for label in EMOTIONS.values() if any(label in c for c in counts.values())]
    assert description["labels"] == expected_labels
    manifests = load_manifests(paths)
    songs = {u: e for entries in manifests.values() for u, e in entries.items() if e["vocal_channel"] == "song"}
    assert len(songs) == 6 and all(e["wav"].startswith("{data_root}/song/Actor_0") for e in songs.values())
    assert dropped in capsys.readouterr().out


def test_skip_on_rerun_and_prepare_again_on_changed_options(corpus, tmp_path, capsys):
    save = str(tmp_path / "m")
    paths = prepare_ravdess(corpus, save)
    capsys.readouterr()
    os.remove(os.path.join(corpus, "Actor_01", file_name("01", *SPEECH_FILES[0], 1)))
    assert prepare_ravdess(corpus, save) == paths  # skipped: the removed file is not noticed
    assert "up to date (same options): skipping preparation" in capsys.readouterr().out
    assert prepare_ravdess(corpus, save, skip_prep=True) is None
    paths = prepare_ravdess(corpus, save, actors_per_group=8)
    assert "skipping" not in capsys.readouterr().out
    assert list(paths) == ["actors01-08"] and len(json.load(open(paths["actors01-08"]))) == 31
    assert sorted(os.listdir(save))[:2] == ["actors01-04.json", "actors01-08.json"]  # old manifests are left
    assert list(load_corpus(save)["groups"]) == ["actors01-08"]


def test_full_release_count_constants():
    assert sum(FULL_CORPUS_COUNTS["speech"].values()) == 1440
    assert sum(FULL_CORPUS_COUNTS["song"].values()) == 1012
    assert list(FULL_CORPUS_COUNTS["speech"]) == list(EMOTIONS.values())
    assert set(FULL_CORPUS_COUNTS["song"]) == {"neutral", "calm", "happy", "sad", "angry", "fearful"}


def test_miniature_counts_are_not_checked_unless_asked(corpus, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        prepare_ravdess(corpus, str(tmp_path / "a"))
    assert "not the full release, counts not checked" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        prepare_ravdess(corpus, str(tmp_path / "b"), expect_full_corpus=True)
    assert "RAVDESS COUNTS DO NOT MATCH THE FULL CORPUS" in caplog.text
    assert "expected: neutral 96 / calm 192" in caplog.text
    assert "found:    neutral 8 / happy 8 / angry 16 = 32" in caplog.text


def link(source, target):
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copyfile(source, target)


@pytest.fixture(scope="module")
def full_release(tmp_path_factory):
    """The full release's 2,452 audio file names (24 actors' speech, 23 actors' songs: actor
    18 sang none) in the two zips' layouts, each a hard link to one 0.05 s wav (fast)."""
    root = str(tmp_path_factory.mktemp("ravdess_full"))
    wav = os.path.join(root, "one.wav")
    write_wav(wav, 2400)
    for channel, folder, emotions in (("01", "Audio_Speech_Actors_01-24", list(EMOTIONS)),
                                      ("02", "Audio_Song_Actors_01-24", ["01", "02", "03", "04", "05", "06"])):
        for actor in range(1, 25):
            if channel == "02" and actor == 18:
                continue
            os.makedirs(os.path.join(root, folder, f"Actor_{actor:02d}"))
            for emotion in emotions:
                for intensity in ("01",) if emotion == "01" else ("01", "02"):
                    for statement in ("01", "02"):
                        for repetition in ("01", "02"):
                            name = file_name(channel, emotion, intensity, statement, repetition, actor)
                            link(wav, os.path.join(root, folder, f"Actor_{actor:02d}", name))
    return root


def test_full_release_speech_counts_are_checked(full_release, tmp_path, caplog, monkeypatch):
    with caplog.at_level(logging.INFO):
        paths = prepare_ravdess(full_release, str(tmp_path / "a"))
    assert len(paths) == 6 and "not the full release" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert load_corpus(str(tmp_path / "a"))["counts"]["actors21-24"] == {
        label: n // 6 for label, n in sorted(FULL_CORPUS_COUNTS["speech"].items())}
    caplog.clear()
    monkeypatch.setitem(FULL_CORPUS_COUNTS["speech"], "angry", 191)  # as if one angry file were missing
    with caplog.at_level(logging.INFO):
        prepare_ravdess(full_release, str(tmp_path / "b"))
    assert "RAVDESS COUNTS DO NOT MATCH THE FULL CORPUS" in caplog.text


def test_full_release_song_counts_are_checked(full_release, tmp_path, caplog, monkeypatch):
    with caplog.at_level(logging.INFO):
        prepare_ravdess(full_release, str(tmp_path / "a"), vocal_channel="song")
    assert "not the full release" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    monkeypatch.setitem(FULL_CORPUS_COUNTS["song"], "calm", 183)  # as if one calm song were missing
    with caplog.at_level(logging.INFO):
        prepare_ravdess(full_release, str(tmp_path / "b"), vocal_channel="song")
    assert "RAVDESS COUNTS DO NOT MATCH THE FULL CORPUS" in caplog.text


def test_actors_outside_01_24_are_not_ravdess_files():
    assert parse_file_name("03-01-05-01-01-01-25.wav") is None
    assert parse_file_name("03-01-05-01-01-01-00.wav") is None


def test_errors(corpus, tmp_path):
    save = str(tmp_path / "m")
    with pytest.raises(RavdessPrepError, match="RAVDESS data folder does not exist: .*/nothing"):
        prepare_ravdess(str(tmp_path / "nothing"), save)
    with pytest.raises(RavdessPrepError, match="vocal_channel must be speech, song or both, got 'songs'"):
        prepare_ravdess(corpus, save, vocal_channel="songs")
    with pytest.raises(RavdessPrepError, match="actors_per_group must be .*at least 1, got 0"):
        prepare_ravdess(corpus, save, actors_per_group=0)
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / file_name("01", "05", "01", "01", "01", 1, "01", "mp4")).write_bytes(b"")
    with pytest.raises(RavdessPrepError, match=r"no RAVDESS speech file \(03-0V-EE-II-SS-RR-AA.wav\) under .*videos"):
        prepare_ravdess(str(videos), save)
    write_wav(str(videos / file_name("01", "05", "01", "01", "01", 1)), 2400)
    with pytest.raises(RavdessPrepError, match="no RAVDESS song file"):
        prepare_ravdess(str(videos), save, vocal_channel="song")


def test_the_same_file_twice(corpus, tmp_path):
    name = file_name("01", *SPEECH_FILES[0], 3)  # the first file of Actor_03 is the one reported
    shutil.copytree(os.path.join(corpus, "Actor_03"), os.path.join(corpus, "copy", "Actor_03"))
    with pytest.raises(RavdessPrepError, match=f"{name} is in .* twice: Actor_03/{name} and copy/Actor_03/{name}; "
                                               "point --data_folder at one copy of the corpus"):
        prepare_ravdess(corpus, str(tmp_path / "m"))


def test_a_corrupt_wav_is_named(corpus, tmp_path):
    name = file_name("01", *SPEECH_FILES[2], 7)
    with open(os.path.join(corpus, "Actor_07", name), "wb") as handle:
        handle.write(b"RIFF\x00\x00not a wav at all")
    with pytest.raises(RavdessPrepError, match=f"cannot read the wav header of .*Actor_07/{name}"):
        prepare_ravdess(corpus, str(tmp_path / "m"))


def test_actor_group_names_with_uneven_groups():
    assert ravdess_prepare.actor_group(24, 5) == "actors21-24"
    assert [ravdess_prepare.actor_group(a, 24) for a in (1, 24)] == ["actors01-24", "actors01-24"]


def test_command_line_error_is_one_line(tmp_path, script_error):
    line = script_error("data_prep/ravdess_prepare.py", "--data_folder", tmp_path / "none", "--save_folder",
                        tmp_path / "m")
    assert line.startswith("ravdess_prepare.py: error: RAVDESS data folder does not exist")
