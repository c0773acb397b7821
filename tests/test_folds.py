"""mmer_lobes.folds: the three hold-out kinds, on manifests made here."""
import json
import logging
import os

import pytest

from mmer_lobes.corpora import CorpusError, corpus_description, fold_names
from mmer_lobes.folds import FoldError, SPLITS, dialogue_holdout_ids, fold_dataset, make_fold

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
    _write_corpus(folder, {str(k): f"Session{k}.json" for k in range(1, n_sessions + 1)},
                  {"name": "leave_one_group_out"}, "session")


def _write_corpus(folder, groups, protocol, group_kind, labels=CLASSES):
    with open(os.path.join(folder, "corpus.json"), "w") as handle:
        json.dump(corpus_description("test corpus", labels, groups, protocol, group_kind), handle)


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
                                        r"\(first: odd\); re-run the prepare script, or set holdout: speaker or "
                                        "stratified"):
        make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout="dialogue")
    _write_sessions(tmp_path, dialogues=2)
    with pytest.raises(FoldError, match="holdout_share 0.1 needs at least 10 dialogues in the training "
                                        "set, found 8"):
        make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout="dialogue", holdout_share=0.1)
    with pytest.raises(FoldError, match=r"holdout must be one of \['dialogue', 'speaker', 'stratified', 'session', "
                                        r"'group'\], got 'bogus'"):
        make_fold(tmp_path, 5, tmp_path / "fold", CLASSES, holdout="bogus")


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


def _write_speakers(folder, n_speakers=6, per_speaker=8, labels=("angry", "calm", "happy", "sad")):
    """One manifest per speaker, native labels cycling through ``labels``."""
    groups = {}
    for s in range(n_speakers):
        entries = {f"spk{s}_u{i}": {"emo": labels[i % len(labels)], "speaker": f"spk{s}"} for i in range(per_speaker)}
        (folder / f"spk{s}.json").write_text(json.dumps(entries))
        groups[f"spk{s}"] = f"spk{s}.json"
    return groups


def test_speaker_folds_partition_speakers_and_keep_classes(tmp_path):
    groups = _write_speakers(tmp_path)
    _write_corpus(tmp_path, groups, {"name": "speaker_folds", "folds": 3}, "speaker", ["angry", "calm", "happy", "sad"])
    label_map = {"angry": "ang", "happy": "hap", "sad": "sad"}
    corpus = json.load(open(tmp_path / "corpus.json"))
    assert fold_names(corpus) == ["1", "2", "3"]
    tested = []
    for fold in fold_names(corpus):
        splits = _splits(make_fold(tmp_path, fold, tmp_path / f"fold{fold}", ["ang", "hap", "sad"],
                                   label_map=label_map, holdout="speaker", holdout_share=0.25))
        speakers = {split: {e["speaker"] for e in splits[split].values()} for split in SPLITS}
        assert len(speakers["test"]) == 2 and len(speakers["holdout"]) == 1 and len(speakers["train"]) == 3
        assert not (speakers["test"] & speakers["train"]) and not (speakers["holdout"] & speakers["train"])
        # calm is not mapped: dropped; the others relabelled, the native label kept
        assert {e["emo"] for e in splits["test"].values()} == {"ang", "hap", "sad"}
        assert all(e["emo_native"] in label_map for s in SPLITS for e in splits[s].values())
        assert len(splits["test"]) == 12  # 2 speakers x 6 kept utterances
        tested += list(splits["test"])
    assert len(tested) == len(set(tested)) == 36  # every kept utterance tested exactly once
    # a protocol override: 2 folds
    assert len(_splits(make_fold(tmp_path, 2, tmp_path / "f2", ["ang", "hap", "sad"], label_map=label_map,
                                 n_folds=2, holdout="stratified", holdout_share=0.25))["test"]) == 18


def test_official_protocol_takes_the_corpus_partitions(tmp_path):
    for part, n in (("train", 12), ("dev", 4), ("test", 6)):
        entries = {f"{part}_{i}": {"emo": CLASSES[i % 4], "speaker": "x"} for i in range(n)}
        (tmp_path / f"{part}.json").write_text(json.dumps(entries))
    _write_corpus(tmp_path, {p: f"{p}.json" for p in ("train", "dev", "test")},
                  {"name": "official", "train": ["train"], "holdout": ["dev"], "test": ["test"]}, "partition")
    corpus = json.load(open(tmp_path / "corpus.json"))
    assert fold_names(corpus) == ["test"]
    splits = _splits(make_fold(tmp_path, "test", tmp_path / "fold", CLASSES))
    assert {s: sorted({u.split("_")[0] for u in splits[s]}) for s in SPLITS} == \
        {"train": ["train"], "holdout": ["dev"], "test": ["test"]}
    with pytest.raises(FoldError, match=r"fold 1 is not one of the folds of test corpus, official partition: "
                                        r"train train, hold-out dev, test test: \['test'\]"):
        make_fold(tmp_path, 1, tmp_path / "fold", CLASSES)


def test_fold_errors_name_the_problem(tmp_path):
    with pytest.raises(CorpusError, match="no corpus.json in .*: run the corpus's prepare script"):
        make_fold(tmp_path, 1, tmp_path / "fold", CLASSES)
    _write_sessions(tmp_path, n_sessions=3)
    with pytest.raises(FoldError, match=r"label_map maps to fury, which is not one of the classes"):
        make_fold(tmp_path, 1, tmp_path / "fold", CLASSES, label_map={"ang": "fury"})
    with pytest.raises(FoldError, match=r"Session1.json: utterance Ses01F_impro00_F000 has emo='ang', which is not "
                                        r"one of the classes \['neu'\]; set label_map"):
        make_fold(tmp_path, 1, tmp_path / "fold", ["neu"])
    with pytest.raises(FoldError, match="holdout: session takes the group before the test group, which needs the "
                                        "leave_one_group_out protocol, not speaker_folds"):
        make_fold(tmp_path, 1, tmp_path / "fold", CLASSES, protocol="speaker_folds", n_folds=2, holdout="session")
    with pytest.raises(CorpusError, match="protocol official needs the corpus's train, holdout and test groups"):
        make_fold(tmp_path, 1, tmp_path / "fold", CLASSES, protocol="official")


def test_braces_in_transcripts_reach_the_dataset_unchanged(tmp_path):
    """SpeechBrain's from_json formats every string of a manifest with the replacements."""
    _write_sessions(tmp_path, n_sessions=3, extra={3: {"Ses03F_impro09_F000": {
        "emo": "ang", "dialogue": "Ses03F_impro09", "wav": "{data_root}/a.wav", "transcript": "oh {laughs} no}"}}})
    paths = make_fold(tmp_path, 3, tmp_path / "fold", CLASSES, holdout="stratified", holdout_share=0.25)
    assert json.load(open(paths["test"]))["Ses03F_impro09_F000"]["transcript"] == "oh {laughs} no}"  # as prepared
    item = fold_dataset(paths["test"], "/corpus", [], ["id"]).data["Ses03F_impro09_F000"]
    assert (item["wav"], item["transcript"]) == ("/corpus/a.wav", "oh {laughs} no}")


def test_a_recipe_prepares_any_corpus_it_is_given(tmp_path):
    """prepare_recipe_fold calls the YAML's prepare_corpus with its prepare_options, then cuts the fold."""
    import numpy as np
    import soundfile

    from mmer_lobes.folds import prepare_recipe_fold

    for actor in (1, 2, 5, 6):
        folder = tmp_path / "RAVDESS" / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion in ("01", "03", "04", "05"):
            soundfile.write(str(folder / f"03-01-{emotion}-01-01-01-{actor:02d}.wav"), np.zeros(800), 16000)
    hparams = {"skip_prep": False, "prepare_corpus": "data_prep.ravdess_prepare.prepare_ravdess",
               "prepare_options": {"actors_per_group": 2}, "data_folder": str(tmp_path / "RAVDESS"),
               "manifest_folder": str(tmp_path / "m"), "fold_folder": str(tmp_path / "fold"),
               "test_fold": "actors05-06", "emotions": CLASSES, "protocol": None, "n_folds": None,
               "label_map": {"angry": "ang", "happy": "hap", "neutral": "neu", "sad": "sad"},
               "holdout": "speaker", "holdout_share": 0.5, "fold_seed": 1}
    splits = _splits(prepare_recipe_fold(hparams, "speech"))
    assert sorted({e["speaker"] for e in splits["test"].values()}) == ["actor05", "actor06"]
    assert len(splits["train"]) == len(splits["holdout"]) == 4
    record = json.load(open(tmp_path / "fold" / "fold.json"))
    assert record["held_out"] == "actor group actors05-06" and record["corpus"] == "RAVDESS speech"
    with pytest.raises(CorpusError, match="its text is the same sentences read in every emotion"):
        prepare_recipe_fold(hparams, "text")
    with pytest.raises(CorpusError, match="prepare_options .* got an unexpected keyword argument 'sessions'"):
        prepare_recipe_fold({**hparams, "prepare_options": {"sessions": [1]}}, "speech")
