"""Tests of data_prep/iemocap_prepare.py on small hand-made IEMOCAP trees."""
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from data_prep import iemocap_prepare
from data_prep.iemocap_prepare import (
    FULL_CORPUS_COUNTS,
    IemocapPrepError,
    check_full_corpus_counts,
    parse_evaluation_line,
    parse_transcription_line,
    prepare_iemocap,
    speaker_of,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_RATE = 16000

# Per session: (last id segment, header label, transcript). Speakers F and M per
# session; exc must merge into hap, xxx and fru must be dropped by default.
TURNS = [
    ("F000", "neu", "Excuse me."),
    ("M000", "exc", "That is wonderful news!"),
    ("F001", "xxx", "Well, maybe."),
    ("M001", "fru", "This line never moves."),
    ("F002", "ang", "Get out of my way."),
    ("M002", "sad", "I miss her."),
    ("F003", "hap", "What a lovely day."),
]
PER_SESSION = {"ang": 1, "hap": 2, "neu": 1, "sad": 1}


def dialog_of(session):
    return f"Ses0{session}F_impro01"


def duration_of(index):
    """Distinct durations so a test can tell entries apart."""
    return 0.5 + 0.25 * index


def wav_path(root, session, suffix):
    dialog = dialog_of(session)
    return os.path.join(root, f"Session{session}", "sentences", "wav", dialog, f"{dialog}_{suffix}.wav")


def write_wav(path, seconds):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * SAMPLE_RATE), dtype="float32"), SAMPLE_RATE)


def make_session(root, session):
    """Writes one session in the IEMOCAP_full_release layout, with the corpus' quirks."""
    dialog = dialog_of(session)
    session_folder = os.path.join(root, f"Session{session}")
    evaluation_folder = os.path.join(session_folder, "dialog", "EmoEvaluation")
    transcription_folder = os.path.join(session_folder, "dialog", "transcriptions")
    os.makedirs(os.path.join(evaluation_folder, "Attribute"))
    os.makedirs(os.path.join(evaluation_folder, "Categorical"))
    os.makedirs(transcription_folder)
    with open(os.path.join(evaluation_folder, "Attribute", f"{dialog}_atr.txt"), "w") as handle:
        handle.write("not an evaluation file\n")
    with open(os.path.join(evaluation_folder, "README.doc"), "w") as handle:
        handle.write("[garbage that is not parsed\n")

    evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    transcription = []
    for index, (suffix, label, text) in enumerate(TURNS):
        utt = f"{dialog}_{suffix}"
        start, stop = 2.0 * index, 2.0 * index + duration_of(index)
        evaluation += [
            f"[{start:.4f} - {stop:.4f}]\t{utt}\t{label}\t[2.5000, 3.0000, 3.5000]",
            "C-E2:\tNeutral;\t()",
            "A-E3:\tval 3; act 2; dom  2;\t()",
            "",
        ]
        transcription.append(f"{utt} [{start:08.4f}-{stop:08.4f}]: {text}")
        write_wav(wav_path(root, session, suffix), duration_of(index))
    # Lines without an utterance id belong to no evaluated turn.
    transcription.insert(1, "M: Yeah.")
    transcription.insert(2, f"{dialog}_MXX0 [030.0000-031.0000]: Hm.")
    transcription.insert(3, "FXX [031.0000-032.0000]: Sure.")
    with open(os.path.join(evaluation_folder, f"{dialog}.txt"), "w") as handle:
        handle.write("\n".join(evaluation) + "\n")
    transcript_bytes = ("\n".join(transcription) + "\n").encode("utf-8")
    if session == 1:
        # A non-UTF-8 file, as some in the real corpus: must be read as latin-1.
        transcript_bytes = transcript_bytes.replace(b"I miss her.", "I miss her café.".encode("latin-1"))
    with open(os.path.join(transcription_folder, f"{dialog}.txt"), "wb") as handle:
        handle.write(transcript_bytes)


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    for session in (1, 2, 3, 4, 5):
        make_session(str(root), session)
    return str(root)


def prepare(corpus, tmp_path, **kwargs):
    save_folder = str(tmp_path / "manifests")
    paths = prepare_iemocap(corpus, save_folder, **kwargs)
    return save_folder, paths


def load(save_folder, session):
    with open(os.path.join(save_folder, f"Session{session}.json"), encoding="utf-8") as handle:
        return json.load(handle)


def test_parsers():
    turn = parse_evaluation_line("[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]")
    assert (turn.start, turn.stop, turn.utterance_id, turn.label) == (
        6.2901, 8.2357, "Ses01F_impro01_F000", "neu"
    )
    assert parse_evaluation_line("A-E3:\tval 3; act 2; dom  2;\t()") is None
    assert parse_evaluation_line("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]") is None
    with pytest.raises(ValueError):
        parse_evaluation_line("[6.2901 - ]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]")
    assert parse_transcription_line("Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.") == (
        "Ses01F_impro01_F000",
        "Excuse me.",
    )
    for line in ("M: Yeah.", "MXX [001.0000-002.0000]: Hm.", "FXX: Sure.", "Ses01F_impro01_FXX0 [1-2]: Hm."):
        assert parse_transcription_line(line) is None
    assert speaker_of("Ses01F_impro01_M003") == "Ses01M"
    assert speaker_of("Ses02M_script01_1b_F010") == "Ses02F"


def test_manifests_counts_and_fields(corpus, tmp_path):
    save_folder, paths = prepare(corpus, tmp_path)
    assert sorted(paths) == [1, 2, 3, 4, 5]
    for session in (1, 2, 3, 4, 5):
        manifest = load(save_folder, session)
        emotions = sorted(entry["emo"] for entry in manifest.values())
        assert emotions == ["ang", "hap", "hap", "neu", "sad"]
        assert {entry["session"] for entry in manifest.values()} == {session}
        assert {entry["speaker"] for entry in manifest.values()} == {f"Ses0{session}F", f"Ses0{session}M"}
        for utterance_id, entry in manifest.items():
            assert entry["wav"] == (
                f"{{data_root}}/Session{session}/sentences/wav/{dialog_of(session)}/{utterance_id}.wav"
            )
            assert os.path.isfile(entry["wav"].replace("{data_root}", corpus))
    entry = load(save_folder, 2)["Ses02F_impro01_M000"]
    assert entry == {
        "wav": "{data_root}/Session2/sentences/wav/Ses02F_impro01/Ses02F_impro01_M000.wav",
        "duration": duration_of(1),
        "transcript": "That is wonderful news!",
        "emo": "hap",
        "emo_raw": "exc",
        "speaker": "Ses02M",
        "gender": "M",
        "session": 2,
        "dialogue": "Ses02F_impro01",
        "improvised": True,
        "vad": [2.5, 3.0, 3.5],
    }
    assert os.path.isfile(os.path.join(save_folder, "prepare_opts.json"))


def test_exc_merged_and_xxx_fru_dropped(corpus, tmp_path):
    save_folder, _ = prepare(corpus, tmp_path)
    manifest = load(save_folder, 3)
    assert manifest["Ses03F_impro01_M000"]["emo"] == "hap"
    assert "Ses03F_impro01_F001" not in manifest  # xxx
    assert "Ses03F_impro01_M001" not in manifest  # fru
    assert {entry["emo_raw"] for entry in manifest.values()} == {"ang", "exc", "hap", "neu", "sad"}


def test_keep_all_labels(corpus, tmp_path):
    save_folder, _ = prepare(corpus, tmp_path, label_map=None)
    manifest = load(save_folder, 4)
    assert sorted(entry["emo"] for entry in manifest.values()) == ["ang", "exc", "fru", "hap", "neu", "sad"]
    assert "Ses04F_impro01_F001" not in manifest  # xxx: no majority, dropped even here


def test_custom_label_map_and_session_subset(corpus, tmp_path):
    label_map = {"ang": "negative", "sad": "negative"}
    save_folder, paths = prepare(corpus, tmp_path, label_map=label_map, sessions=(2,))
    assert list(paths) == [2]
    assert not os.path.exists(os.path.join(save_folder, "Session1.json"))
    assert sorted(entry["emo"] for entry in load(save_folder, 2).values()) == ["negative", "negative"]


def test_latin1_transcript_and_lines_without_id(corpus, tmp_path):
    save_folder, _ = prepare(corpus, tmp_path)
    manifest = load(save_folder, 1)
    assert manifest["Ses01F_impro01_M002"]["transcript"] == "I miss her café."
    assert manifest["Ses01F_impro01_F000"]["transcript"] == "Excuse me."
    assert not any("XX" in utterance_id for utterance_id in manifest)


def test_summary_printed(corpus, tmp_path, capsys):
    prepare(corpus, tmp_path)
    out = capsys.readouterr().out
    assert "25 utterances" in out
    assert "Ses05M" in out and "Session5" in out
    assert "xxx 5" in out and "fru 5" in out


def test_missing_wav_names_it(corpus, tmp_path):
    missing = wav_path(corpus, 3, "F002")
    os.remove(missing)
    with pytest.raises(IemocapPrepError, match="Ses03F_impro01_F002") as error:
        prepare(corpus, tmp_path)
    assert missing in str(error.value)
    # Nothing was written: every session is checked before any manifest is.
    assert not os.path.exists(tmp_path / "manifests" / "Session1.json")


@pytest.mark.parametrize("content", [b"", b"RIFF\x24\x7d\x00\x00WAVEfmt ", "header_only"])
def test_corrupt_or_empty_wav_names_it(corpus, tmp_path, content):
    broken = wav_path(corpus, 2, "M002")
    if content == "header_only":
        with open(broken, "rb") as handle:
            content = handle.read()[:44]  # a 0-sample wav: header, no data
    with open(broken, "wb") as handle:
        handle.write(content)
    with pytest.raises(IemocapPrepError) as error:
        prepare(corpus, tmp_path)
    assert broken in str(error.value)


def test_unparsable_evaluation_line_names_file_and_line(corpus, tmp_path):
    path = os.path.join(corpus, "Session4", "dialog", "EmoEvaluation", "Ses04F_impro01.txt")
    with open(path) as handle:
        lines = handle.read().splitlines()
    lines[6] = "[2.0000 - 2.7500]\tSes04F_impro01_M000\texc"  # the V, A, D values are cut off
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with pytest.raises(IemocapPrepError) as error:
        prepare(corpus, tmp_path)
    assert path in str(error.value)
    assert "line 7" in str(error.value)


def test_inconsistent_evaluations_are_errors(corpus, tmp_path):
    path = os.path.join(corpus, "Session2", "dialog", "EmoEvaluation", "Ses02F_impro01.txt")
    with open(path) as handle:
        original = handle.read()
    with open(path, "w") as handle:
        handle.write(original + "[20.0000 - 21.0000]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n")
    with pytest.raises(IemocapPrepError, match="Ses01F_impro01_F000 does not belong to session 2"):
        prepare(corpus, tmp_path)
    with open(path, "w") as handle:
        handle.write(original + "[20.0000 - 21.0000]\tSes02F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n")
    with pytest.raises(IemocapPrepError, match="Ses02F_impro01_F000 is evaluated twice"):
        prepare(corpus, tmp_path)


def test_missing_session_folder(corpus, tmp_path):
    os.rename(os.path.join(corpus, "Session5"), os.path.join(corpus, "old_Session5"))
    with pytest.raises(IemocapPrepError, match="missing session folder.*Session5"):
        prepare(corpus, tmp_path)


def test_wrong_data_folder(corpus, tmp_path):
    with pytest.raises(IemocapPrepError, match="does not exist"):
        prepare(str(tmp_path / "nowhere"), tmp_path)
    parent = os.path.dirname(corpus)
    with pytest.raises(IemocapPrepError, match="not an IEMOCAP_full_release folder.*did you mean"):
        prepare(parent, tmp_path)


def test_cli_bad_input_exits_2(tmp_path):
    result = run_cli("--data_folder", str(tmp_path / "nowhere"), "--save_folder", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("iemocap_prepare.py: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "nowhere") in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_keep_all_labels(corpus, tmp_path):
    save_folder = str(tmp_path / "out")
    result = run_cli("--data_folder", corpus, "--save_folder", save_folder, "--keep_all_labels")
    assert result.returncode == 0, result.stderr
    assert "30 utterances" in result.stdout
    assert "fru" in {entry["emo"] for entry in load(save_folder, 1).values()}


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "data_prep", "iemocap_prepare.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_second_run_skips_and_changed_options_rerun(corpus, tmp_path, capsys):
    save_folder, _ = prepare(corpus, tmp_path)
    manifest_path = os.path.join(save_folder, "Session1.json")
    first_mtime = os.stat(manifest_path).st_mtime_ns
    capsys.readouterr()

    prepare(corpus, tmp_path)
    assert "skipping preparation" in capsys.readouterr().out
    assert os.stat(manifest_path).st_mtime_ns == first_mtime

    prepare(corpus, tmp_path, label_map=None)
    assert "skipping preparation" not in capsys.readouterr().out
    assert "fru" in {entry["emo"] for entry in load(save_folder, 1).values()}

    os.remove(manifest_path)  # a missing output also forces a re-run
    prepare(corpus, tmp_path, label_map=None)
    assert os.path.isfile(manifest_path)


def test_failed_rerun_keeps_previous_manifests(corpus, tmp_path):
    save_folder, _ = prepare(corpus, tmp_path)
    before = load(save_folder, 1)
    os.remove(wav_path(corpus, 5, "F000"))
    with pytest.raises(IemocapPrepError):
        prepare(corpus, tmp_path, label_map=None)
    assert load(save_folder, 1) == before
    assert not [name for name in os.listdir(save_folder) if name.endswith(".tmp")]


def test_skip_prep_does_nothing(corpus, tmp_path):
    save_folder, paths = prepare(corpus, tmp_path, skip_prep=True)
    assert paths[1] == os.path.join(save_folder, "Session1.json")
    assert not os.path.exists(save_folder)


def test_full_corpus_guard_function(caplog):
    with caplog.at_level(logging.WARNING):
        assert check_full_corpus_counts(dict(FULL_CORPUS_COUNTS))
    assert not caplog.records

    wrong = dict(FULL_CORPUS_COUNTS, hap=1635)
    with caplog.at_level(logging.WARNING):
        assert not check_full_corpus_counts(wrong)
    message = caplog.text
    assert "!!!!!!!!" in message
    assert "ang 1103 / hap 1636 / neu 1708 / sad 1084 = 5531" in message
    assert "hap 1635" in message and "= 5530" in message
    assert sum(FULL_CORPUS_COUNTS.values()) == 5531


def test_full_corpus_guard_fires_on_a_full_looking_tree(corpus, tmp_path, caplog, monkeypatch):
    # The tree has 35 evaluated turns; make it "look like" the full release.
    monkeypatch.setattr(iemocap_prepare, "FULL_CORPUS_MIN_TURNS", 35)
    with caplog.at_level(logging.WARNING):
        prepare(corpus, tmp_path)
    assert "DO NOT MATCH THE FULL CORPUS" in caplog.text
    assert "= 5531" in caplog.text and "= 25" in caplog.text

    caplog.clear()
    monkeypatch.setattr(iemocap_prepare, "FULL_CORPUS_MIN_TURNS", 36)
    with caplog.at_level(logging.WARNING):
        prepare(corpus, tmp_path, label_map=None)  # options changed: prepares again
    assert "DO NOT MATCH" not in caplog.text


def test_full_corpus_guard_explicit(corpus, tmp_path, caplog, monkeypatch):
    with caplog.at_level(logging.WARNING):
        prepare(corpus, tmp_path, sessions=(1,), expect_full_corpus=True)
    assert "DO NOT MATCH THE FULL CORPUS" in caplog.text

    caplog.clear()
    # Exact counts give no warning: scale the expected counts to this tree.
    monkeypatch.setattr(iemocap_prepare, "FULL_CORPUS_COUNTS", {k: 5 * n for k, n in PER_SESSION.items()})
    with caplog.at_level(logging.WARNING):
        prepare(corpus, tmp_path, expect_full_corpus=True)
    assert "DO NOT MATCH" not in caplog.text


def test_scripted_dialogues_are_marked(corpus, tmp_path):
    """A ``script`` dialogue gives ``improvised: false``; the dialogue names the group."""
    session = os.path.join(corpus, "Session3")
    for sub in ("dialog/EmoEvaluation", "dialog/transcriptions"):
        folder = os.path.join(session, sub)
        for name in os.listdir(folder):
            if name.endswith(".txt"):
                text = open(os.path.join(folder, name), encoding="latin-1").read()
                os.remove(os.path.join(folder, name))
                with open(os.path.join(folder, name.replace("impro01", "script01_2")), "w") as handle:
                    handle.write(text.replace("impro01", "script01_2"))
    wav_folder = os.path.join(session, "sentences", "wav")
    os.rename(os.path.join(wav_folder, "Ses03F_impro01"), os.path.join(wav_folder, "Ses03F_script01_2"))
    for name in os.listdir(os.path.join(wav_folder, "Ses03F_script01_2")):
        os.rename(os.path.join(wav_folder, "Ses03F_script01_2", name),
                  os.path.join(wav_folder, "Ses03F_script01_2", name.replace("impro01", "script01_2")))
    save_folder, _ = prepare(corpus, tmp_path)
    scripted = load(save_folder, 3)
    assert {(e["dialogue"], e["improvised"]) for e in scripted.values()} == {("Ses03F_script01_2", False)}
    assert {e["improvised"] for e in load(save_folder, 2).values()} == {True}
