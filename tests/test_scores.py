"""Score files (mmer_lobes.scores): the contract between the modalities and fusion."""
import os

import numpy as np
import pytest

from mmer_lobes.scores import ScoreFileError, ScoreSet, read_scores, write_scores

CLASSES = ["ang", "hap", "neu", "sad"]
HEADER = "id,label,ang,hap,neu,sad\n"


def _write(tmp_path, text, name="scores.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4))
    log_posteriors = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    ids = ["Ses05M_script01_F003", "Ses05F_impro01_F000", "b", "a", "c"]  # order is kept
    labels = ["neu", "sad", "ang", "hap", "neu"]
    path = str(tmp_path / "scores" / "test.csv")
    write_scores(path, ids, labels, log_posteriors, CLASSES)
    with open(path, encoding="utf-8") as handle:
        assert handle.readline() == HEADER
    scores = read_scores(path)
    assert isinstance(scores, ScoreSet)
    assert scores.ids == ids and scores.labels == labels and scores.classes == CLASSES
    np.testing.assert_allclose(scores.scores, log_posteriors, atol=5e-7)
    assert scores.label_indices().tolist() == [2, 3, 0, 1, 2]
    assert os.listdir(tmp_path / "scores") == ["test.csv"]  # no temporary file left


def test_class_order_is_the_column_order(tmp_path):
    path = str(tmp_path / "s.csv")
    write_scores(path, ["u1"], ["sad"], [[-0.1, -3.0]], ["sad", "ang"])
    scores = read_scores(path)
    assert scores.classes == ["sad", "ang"] and scores.label_indices().tolist() == [0]
    assert scores.scores.tolist() == [[-0.1, -3.0]]


@pytest.mark.parametrize(
    "ids, labels, values, message",
    [
        (["u1", "u2"], ["ang", "sad"], np.zeros((2, 3)), "shape"),
        (["u1", "u2"], ["ang"], np.zeros((2, 4)), "shape"),
        (["u1"], ["fru"], np.zeros((1, 4)), r"labels \['fru'\]"),
    ],
)
def test_write_errors_leave_nothing(tmp_path, ids, labels, values, message):
    path = str(tmp_path / "bad.csv")
    with pytest.raises(ScoreFileError, match=message) as info:
        write_scores(path, ids, labels, values, CLASSES)
    assert path in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "text, where, what",
    [
        ("utt,label,ang\nu1,ang,0.0\n", "", "header"),
        ("id,label\nu1,ang\n", "", "header"),
        ("label,id,ang,sad\nang,u1,0.0,0.0\n", "", "header"),
        (HEADER + "u1,ang,-1,-2,-3,-4\nu2,sad,-1,-2,-3\n", ", line 3", "expected 6 fields, got 5"),
        (HEADER + "u1,ang,-1,-2,-3,-4,-5\n", ", line 2", "expected 6 fields, got 7"),
        (HEADER + "u1,ang,-1,-2,abc,-4\n", ", line 2", "numbers"),
        (HEADER + "u1,ang,-1,-2,,-4\n", ", line 2", "numbers"),
        (HEADER + "u1,ang,-1,-2,-3,-4\nu2,ang,-1,nan,-3,-4\n", ", line 3", "finite"),
        (HEADER + "u1,ang,-1,-2,-inf,-4\n", ", line 2", "finite"),
        (HEADER + "u1,ang,-1,-2,inf,-4\n", ", line 2", "finite"),
        (HEADER + "u1,ang,-1,-2,-3,-4\nu2,fru,-1,-2,-3,-4\n", ", line 3", "'fru' is not one of"),
        (HEADER + "u1,ang,-1,-2,-3,-4\nu1,sad,-1,-2,-3,-4\n", ", line 3", "duplicate utterance id u1"),
        ("", "", "header"),
        (HEADER, "", "no utterances"),
    ],
)
def test_read_errors_name_the_file_and_line(tmp_path, text, where, what):
    path = _write(tmp_path, text)
    with pytest.raises(ScoreFileError, match=what) as info:
        read_scores(path)
    assert str(info.value).startswith(path + where)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nowhere" / "test.csv")
    with pytest.raises(ScoreFileError, match="cannot open score file") as info:
        read_scores(path)
    assert path in str(info.value)


def test_score_file_error_is_a_value_error():
    assert issubclass(ScoreFileError, ValueError)


def test_duplicate_id_names_the_id_and_line(tmp_path):
    path = _write(tmp_path, HEADER + "u1,ang,-1,-2,-3,-4\nu2,ang,-1,-2,-3,-4\nu1,sad,-1,-2,-3,-4\n")
    with pytest.raises(ScoreFileError, match="line 4") as info:
        read_scores(path)
    assert "u1" in str(info.value)


def test_repeated_class_names_are_rejected(tmp_path):
    path = _write(tmp_path, "id,label,ang,sad,sad\nu1,ang,-1,-2,-3\n")
    with pytest.raises(ScoreFileError, match="header"):
        read_scores(path)


def test_blank_lines_are_skipped(tmp_path):
    path = _write(tmp_path, HEADER + "u1,ang,-1,-2,-3,-4\n\nu2,sad,-4,-3,-2,-1\n\n")
    assert read_scores(path).ids == ["u1", "u2"]
