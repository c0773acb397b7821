"""mmer_lobes.folds: the three hold-out kinds, on manifests made here."""
import json
import logging
import os

import pytest

from mmer_lobes.folds import FoldError, SPLITS, dialogue_holdout_ids, make_fold

CLASSES = ["ang", "hap", "neu", "sad"]


def _write_sessions(folder, n_sessions=5, dialogues=6, per_dialogue=8, extra=None):
    """Sessions of dialogues whose utterances cycle through the classes."""
    for k in range(1, n_sessions + 1):
        entries = {}
        for d in range(dialogues):
            kind = "impro" if d % 2 == 0 else "script"
            dialogue = f"Ses0{k}F_{kind}{d:02d}"
            for i in range(per_dialogue):
                entries[f"{dialogue}_F{i:03d}"] = {"emo": CLASSES[(i + d) % 4], "dialogue": dialogue}
        entries.update((extra or {}).get(k, {}))
        with open(os.path.join(folder, f"Session{k}.json"), "w") as handle:
            json.dump(entries, handle)


def _splits(paths):
    return {split: json.load(open(paths[split])) for split in SPLITS}


def test_dialogue_holdout_splits_no_dialogue(tmp_path):
    _write_sessions(tmp_path)
    splits = _splits(make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout="dialogue", holdout_share=0.25))
    train_dialogues = {e["dialogue"] for e in splits["train"].values()}
    holdout_dialogues = {e["dialogue"] for e in splits["holdout"].values()}
    assert not train_dialogues & holdout_dialogues
    assert len(holdout_dialogues) == 6  # one of 4 group folds of the 24 training dialogues
    assert len(splits["holdout"]) == 48 and len(splits["train"]) == 144
    assert {e["emo"] for e in splits["holdout"].values()} == set(CLASSES)
    assert all(u.startswith("Ses05") for u in splits["test"])
    assert not any(u.startswith("Ses05") for u in splits["train"])


def test_stratified_holdout_shares_dialogues(tmp_path):
    """The per-utterance draw this project used before: it splits dialogues."""
    _write_sessions(tmp_path)
    splits = _splits(make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout="stratified", holdout_share=0.25))
    assert {e["dialogue"] for e in splits["train"].values()} & {e["dialogue"] for e in splits["holdout"].values()}
    assert len(splits["holdout"]) == 48  # 12 of each class's 48


def test_session_holdout_is_the_session_before(tmp_path):
    _write_sessions(tmp_path)
    splits = _splits(make_fold(tmp_path, 1, tmp_path / "fold", CLASSES, holdout="session"))
    assert {u[:5] for u in splits["holdout"]} == {"Ses05"}
    assert {u[:5] for u in splits["train"]} == {"Ses02", "Ses03", "Ses04"}


def test_dialogue_holdout_is_reproducible_and_seeded(tmp_path):
    _write_sessions(tmp_path)
    entries = {}
    for k in range(1, 5):
        entries.update(json.load(open(tmp_path / f"Session{k}.json")))
    first = dialogue_holdout_ids(entries, "emo", 0.25, seed=7)
    assert dialogue_holdout_ids(entries, "emo", 0.25, seed=7) == first
    assert any(dialogue_holdout_ids(entries, "emo", 0.25, seed=s) != first for s in range(8, 12))


def test_dialogue_holdout_is_the_default(tmp_path):
    _write_sessions(tmp_path)
    splits = _splits(make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout_share=0.25))
    assert not ({e["dialogue"] for e in splits["train"].values()}
                & {e["dialogue"] for e in splits["holdout"].values()})


def test_dialogue_holdout_errors(tmp_path):
    _write_sessions(tmp_path, extra={2: {"odd": {"emo": "ang"}}})
    with pytest.raises(FoldError, match="needs a 'dialogue' field in every manifest entry, and 1 lack it "
                                        r"\(first: odd\); re-run the prepare script, or set holdout: stratified"):
        make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout="dialogue")
    _write_sessions(tmp_path, dialogues=2)
    with pytest.raises(FoldError, match="holdout_share 0.1 needs at least 10 dialogues in the training "
                                        "sessions, found 8"):
        make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout="dialogue", holdout_share=0.1)
    with pytest.raises(FoldError, match=r"holdout must be one of \['dialogue', 'stratified', 'session'\]"):
        make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout="speaker")


def test_a_class_missing_from_the_holdout_is_logged(tmp_path, caplog):
    """A class with one training utterance cannot be in both train and hold-out."""
    classes = CLASSES + ["fea"]
    _write_sessions(tmp_path, extra={1: {"Ses01F_impro00_F099": {"emo": "fea", "dialogue": "Ses01F_impro00"}}})
    with caplog.at_level(logging.WARNING, logger="mmer_lobes.folds"):
        splits = _splits(make_fold(tmp_path, 5, tmp_path / "fold", classes, holdout="stratified", holdout_share=0.25))
    assert "fea" not in {e["emo"] for e in splits["holdout"].values()}
    messages = [r.getMessage() for r in caplog.records]
    assert any("fold 5: the holdout split has no utterance of class(es) ['fea']" in m
               and "'train': {'fea': 1}" in m for m in messages)
    assert any("fold 5: the test split has no utterance of class(es) ['fea']" in m for m in messages)
