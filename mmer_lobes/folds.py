"""Folds of any prepared corpus: leave-one-group-out, speaker folds or the official split.

A prepare script writes one manifest per group and ``corpus.json`` (mmer_lobes.corpora), so a
fold is a choice of utterances, never a re-preparation. A fold has a test set, a training
set and a hold-out (for model selection and fusion) taken from the training utterances:

* the protocol decides the test set: one group (``leave_one_group_out``: IEMOCAP's sessions,
  RAVDESS's actor groups), one of k speaker-independent folds stratified by class
  (``speaker_folds``), or the corpus's own partition (``official``, which also names the
  hold-out groups: MELD's dev set);
* the hold-out kind decides the rest (protocols other than ``official``):

* ``dialogue`` (the default): class-stratified and grouped by dialogue, so that no dialogue
  is split between train and hold-out. Utterances of one dialogue share speakers, topic and
  (in scripted dialogues) text, so a hold-out that shares dialogues with training scores
  optimistically, by a different amount for each modality, which biases the fusion. A
  script is still performed in other dialogues (IEMOCAP's ``Ses01F_script01_1`` and
  ``Ses01M_script01_1``, and every session's ``script01_1``), so hold-out scripted lines
  have been seen in training, as the test session's have: the hold-out keeps the test's
  condition rather than a harder one.
* ``speaker``: class-stratified whole speakers, so that no training speaker is in the
  hold-out (corpora without dialogues: RAVDESS, CREMA-D, EmoDB).
* ``stratified``: a class-stratified share of the training utterances, drawn per utterance.
* ``session`` (or ``group``): the whole training group before the test group
  (leave-one-group-out only).

A label map (``label_map`` in the fold definition) turns the corpus's native labels into the
classes; utterances whose label it does not map are dropped and counted.

The speech and the text recipes both call :func:`make_fold`, so both modalities see exactly
the same utterances in every split, which score-level fusion requires.
"""
import json
import logging
import os
import re

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from mmer_lobes.corpora import (CORPUS_FILE, check_modality, describe_protocol, fold_heading, fold_names,
                                load_corpus, prepare_corpus, resolve_protocol)
from mmer_lobes.errors import ProjectError
from mmer_lobes.files import atomic_write_json

logger = logging.getLogger(__name__)

SPLITS = ("train", "holdout", "test")
# Beside a fold's split manifests: what defines the fold (corpus, protocol, label map,
# hold-out), read by the export and compared between the speech and the text fold.
FOLD_RECORD = "fold.json"
HOLDOUT_KINDS = ("dialogue", "speaker", "stratified", "session", "group")
# Command-line keys of the IEMOCAP-only releases, still accepted: old name -> new name.
LEGACY_KEYS = {"test_session": "test_fold", "test_sessions": "test_folds"}


class FoldError(ProjectError, ValueError):
    """A fold cannot be built from the given manifests and options."""


def load_group_manifest(manifest_folder, corpus, group):
    """Reads the manifest of ``group`` named in ``corpus`` and checks that it is a non-empty
    manifest.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "Session2.json"), "w").write('{"u1": {"emo": "neu"}}')
    >>> load_group_manifest(folder, {"groups": {"2": "Session2.json"}}, "2")
    {'u1': {'emo': 'neu'}}
    """
    path = os.path.join(manifest_folder, corpus["groups"][group])
    if not os.path.isfile(path):
        raise FoldError(f"missing manifest {path}, named by {CORPUS_FILE}: prepare the corpus again")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as error:
        raise FoldError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or not manifest:
        raise FoldError(f"manifest {path} is empty: no utterance to train or test on")
    return manifest


def holdout_group_for(test_group, groups):
    """The group held out for validation when ``holdout: session`` (or ``group``): the one
    before the test group, cyclically (test 1 -> hold-out 5).

    Example
    -------
    >>> holdout_group_for("5", ["1", "2", "3", "4", "5"]), holdout_group_for("1", ["1", "2", "3", "4", "5"])
    ('4', '5')
    """
    groups = list(groups)
    return groups[groups.index(test_group) - 1]


def apply_label_map(entries, label_key, label_map, classes, source):
    """The entries whose native label ``label_map`` maps to one of ``classes``, relabelled
    (the native label kept in ``<label_key>_native``), and a ``{label: count}`` of the dropped
    ones. Without a map, every label must already be a class.

    Example
    -------
    >>> entries = {"a": {"emo": "angry"}, "b": {"emo": "calm"}, "c": {"emo": "sad"}}
    >>> kept, dropped = apply_label_map(entries, "emo", {"angry": "ang", "sad": "sad"}, ["ang", "sad"], "x")
    >>> kept["a"], sorted(kept), dropped
    ({'emo': 'ang', 'emo_native': 'angry'}, ['a', 'c'], {'calm': 1})
    """
    known = set(classes)
    if label_map is None:
        for utt_id, entry in entries.items():
            if entry.get(label_key) not in known:
                raise FoldError(f"{source}: utterance {utt_id} has {label_key}={entry.get(label_key)!r}, which is "
                                f"not one of the classes {list(classes)}; set label_map to map the corpus's labels")
        return dict(entries), {}
    kept, dropped = {}, {}
    for utt_id, entry in entries.items():
        native = entry.get(label_key)
        if native in label_map:
            kept[utt_id] = {**entry, label_key: label_map[native], f"{label_key}_native": native}
        else:
            dropped[native] = dropped.get(native, 0) + 1
    return kept, dropped


def check_label_map(label_map, classes, corpus):
    """Checks that ``label_map`` maps labels of the corpus to classes; returns it as a
    ``{str: str}`` dictionary, or None when it is empty or None (no map).

    Example
    -------
    >>> check_label_map({"angry": "ang"}, ["ang"], {"corpus": "RAVDESS", "labels": ["angry", "sad"]})
    {'angry': 'ang'}
    >>> check_label_map({}, ["ang"], {"corpus": "IEMOCAP", "labels": ["ang"]}) is None
    True
    >>> check_label_map({"angry": "fury"}, ["ang"], {"corpus": "RAVDESS", "labels": ["angry"]})
    Traceback (most recent call last):
    ...
    mmer_lobes.folds.FoldError: label_map maps to fury, which is not one of the classes ['ang']
    """
    if not label_map:
        return None
    label_map = {str(native): str(target) for native, target in dict(label_map).items()}
    unknown_targets = sorted(set(label_map.values()) - set(classes))
    if unknown_targets:
        raise FoldError(f"label_map maps to {', '.join(unknown_targets)}, which is not one of the classes {list(classes)}")
    unknown_labels = sorted(set(label_map) - set(corpus["labels"]))
    if unknown_labels:
        logger.warning("label_map maps %s, which %s does not have (its labels: %s)",
                       unknown_labels, corpus["corpus"], corpus["labels"])
    return label_map


def speaker_fold_ids(entries, n_folds, test_fold, label_key, seed, speaker_key="speaker"):
    """The utterances of fold ``test_fold`` (1 ... ``n_folds``) of scikit-learn's
    ``StratifiedGroupKFold``: speaker-independent, stratified by class, reproducible.

    Example
    -------
    >>> entries = {f"s{s}_u{i}": {"emo": "ang" if i % 2 else "sad", "speaker": f"s{s}"}
    ...            for s in range(6) for i in range(4)}
    >>> folds = [speaker_fold_ids(entries, 3, k, "emo", seed=1) for k in (1, 2, 3)]
    >>> [len({entries[u]["speaker"] for u in fold}) for fold in folds], len(set().union(*folds))
    ([2, 2, 2], 24)
    """
    ids = sorted(entries)
    missing = [u for u in ids if not entries[u].get(speaker_key)]
    if missing:
        raise FoldError(f"speaker_folds needs a '{speaker_key}' field in every manifest entry, and {len(missing)} "
                        f"lack it (first: {missing[0]})")
    speakers = [entries[u][speaker_key] for u in ids]
    if len(set(speakers)) < n_folds:
        raise FoldError(f"speaker_folds with {n_folds} folds needs at least {n_folds} speakers, found "
                        f"{len(set(speakers))}; lower n_folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    labels = [entries[u][label_key] for u in ids]
    for k, (_, test_rows) in enumerate(splitter.split(np.zeros(len(ids)), labels, speakers), start=1):
        if k == int(test_fold):
            return {ids[row] for row in test_rows}
    raise FoldError(f"fold {test_fold} is not one of the folds 1 ... {n_folds}")


def stratified_holdout_ids(entries, label_key, share, seed):
    """Draws ``share`` of every class (at least one utterance per class that has two or
    more), reproducibly.

    Arguments
    ---------
    entries : dict
        Manifest entries keyed by utterance id.
    label_key : str
        The field that holds the class.
    share : float
        Fraction in (0, 1).
    seed : int

    Example
    -------
    >>> entries = {f"u{i}": {"emo": "ang" if i < 10 else "sad"} for i in range(20)}
    >>> ids = stratified_holdout_ids(entries, "emo", 0.2, seed=1)
    >>> len(ids), sorted({entries[i]["emo"] for i in ids})
    (4, ['ang', 'sad'])
    """
    if not 0.0 < share < 1.0:
        raise FoldError(f"holdout_share must lie in (0, 1), got {share}")
    rng = np.random.default_rng(seed)
    by_class = {}
    for utt_id in sorted(entries):
        by_class.setdefault(entries[utt_id][label_key], []).append(utt_id)
    chosen = set()
    for label in sorted(by_class):
        ids = by_class[label]
        count = int(round(share * len(ids)))
        if len(ids) >= 2:
            count = min(max(count, 1), len(ids) - 1)
        chosen.update(rng.choice(ids, size=count, replace=False).tolist() if count else [])
    return chosen


def dialogue_holdout_ids(entries, label_key, share, seed, group_key="dialogue"):
    """A class-stratified hold-out of whole dialogues: one fold of scikit-learn's
    ``StratifiedGroupKFold`` with ``round(1 / share)`` folds, so about ``share`` of the
    utterances, reproducibly.

    Arguments
    ---------
    entries : dict
        Manifest entries keyed by utterance id; each needs ``group_key``.
    label_key : str
        The field that holds the class.
    share : float
        Fraction in (0, 0.5]: the hold-out is one of ``round(1 / share)`` folds.
    seed : int
    group_key : str
        The field that names the dialogue.

    Example
    -------
    >>> entries = {f"d{d}_u{i}": {"emo": "ang" if i % 2 else "sad", "dialogue": f"d{d}"}
    ...            for d in range(8) for i in range(4)}
    >>> ids = dialogue_holdout_ids(entries, "emo", 0.25, seed=1)
    >>> len(ids), len({entries[i]["dialogue"] for i in ids}), sorted({entries[i]["emo"] for i in ids})
    (8, 2, ['ang', 'sad'])
    """
    if not 0.0 < share <= 0.5:
        raise FoldError(f"holdout_share must lie in (0, 0.5] for the {group_key} hold-out, got {share}")
    ids = sorted(entries)
    missing = [u for u in ids if not entries[u].get(group_key)]
    if missing:
        raise FoldError(
            f"holdout: {group_key} needs a '{group_key}' field in every manifest entry, and "
            f"{len(missing)} lack it (first: {missing[0]}); re-run the prepare script, or set holdout: "
            + " or ".join(kind for kind in ("speaker", "stratified") if kind != group_key)
        )
    groups = [entries[u][group_key] for u in ids]
    n_splits = int(round(1.0 / share))
    if len(set(groups)) < n_splits:
        raise FoldError(
            f"holdout_share {share} needs at least {n_splits} {group_key}s in the training "
            f"set, found {len(set(groups))}; raise holdout_share or set holdout: stratified"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    labels = [entries[u][label_key] for u in ids]
    _, holdout_rows = next(splitter.split(np.zeros(len(ids)), labels, groups))
    return {ids[row] for row in holdout_rows}


def make_fold(
    manifest_folder,
    test_fold,
    save_folder,
    classes,
    label_map=None,
    protocol=None,
    n_folds=None,
    holdout="dialogue",
    holdout_share=0.1,
    seed=1234,
):
    """Writes ``train.json``, ``holdout.json`` and ``test.json`` of one fold.

    Arguments
    ---------
    manifest_folder : str
        A prepared corpus: ``corpus.json`` and its group manifests.
    test_fold : str or int
        The fold to test on, one of :func:`mmer_lobes.corpora.fold_names`.
    save_folder : str
        Where the fold's manifests go.
    classes : list of str
        The classes the model knows.
    label_map : dict, optional
        Native label -> class; labels it does not map are dropped and counted. None or empty:
        the manifests' labels must be classes.
    protocol : str, optional
        ``leave_one_group_out``, ``speaker_folds`` or ``official``; None: the corpus's default.
    n_folds : int, optional
        The number of speaker folds (``speaker_folds``); None: the corpus's default.
    holdout : str
        ``dialogue`` or ``speaker`` (class-stratified whole dialogues or speakers of the
        training set, see :func:`dialogue_holdout_ids`), ``stratified`` (a class-stratified
        share of the training utterances) or ``session``/``group`` (the whole group before the
        test group). The ``official`` protocol takes the corpus's hold-out groups instead.
    holdout_share : float
        The share used by ``dialogue``, ``speaker`` and ``stratified``.
    seed : int
        Seed of the draws.

    Returns
    -------
    dict
        ``{"train": path, "holdout": path, "test": path}``; ``fold.json`` beside them records
        the corpus, protocol, label map (with the dropped labels' counts) and hold-out.

    Example
    -------
    >>> import tempfile
    >>> from mmer_lobes.corpora import corpus_description
    >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> for k in (1, 2, 3):
    ...     entries = {f"S{k}_{i}": {"emo": "ang" if i % 2 else "sad", "dialogue": f"S{k}_d{i // 2}"}
    ...                for i in range(10)}
    ...     _ = open(os.path.join(src, f"Session{k}.json"), "w").write(json.dumps(entries))
    >>> corpus = corpus_description("mini", ["ang", "sad"], {k: f"Session{k}.json" for k in "123"},
    ...                             {"name": "leave_one_group_out"}, "session")
    >>> _ = open(os.path.join(src, "corpus.json"), "w").write(json.dumps(corpus))
    >>> paths = make_fold(src, 3, dst, ["ang", "sad"], holdout_share=0.2)
    >>> [len(json.load(open(paths[s]))) for s in SPLITS]
    [16, 4, 10]
    >>> json.load(open(os.path.join(dst, FOLD_RECORD)))["held_out"]
    'session 3'
    
    """
    corpus = load_corpus(manifest_folder)
    chosen = resolve_protocol(corpus, protocol, n_folds)
    test_fold = str(test_fold)
    folds = fold_names(corpus, protocol, n_folds)
    if test_fold not in folds:
        raise FoldError(f"fold {test_fold} is not one of the folds of {describe_protocol(corpus, protocol, n_folds)}: "
                        f"{folds}")
    if holdout not in HOLDOUT_KINDS:
        raise FoldError(f"holdout must be one of {list(HOLDOUT_KINDS)}, got {holdout!r}")
    if holdout in ("session", "group") and chosen["name"] == "speaker_folds":
        raise FoldError(f"holdout: {holdout} takes the group before the test group, which needs the "
                        "leave_one_group_out protocol, not speaker_folds")
    label_key = corpus["label_key"]
    label_map = check_label_map(label_map, classes, corpus)
    manifests, dropped = {}, {}
    for group in corpus["groups"]:
        source = os.path.join(manifest_folder, corpus["groups"][group])
        manifests[group], dropped_here = apply_label_map(
            load_group_manifest(manifest_folder, corpus, group), label_key, label_map, classes, source)
        for label, count in dropped_here.items():
            dropped[label] = dropped.get(label, 0) + count
    if dropped:
        logger.info("fold %s: %d utterances dropped, their labels not in label_map: %s",
                    test_fold, sum(dropped.values()), dropped)

    def union(groups):
        merged = {}
        for group in groups:
            merged.update(manifests[group])
        return merged

    if chosen["name"] == "official":
        splits = {split: union(chosen[split]) for split in SPLITS}
    else:
        if chosen["name"] == "leave_one_group_out":
            test = manifests[test_fold]
            training = union(g for g in corpus["groups"] if g != test_fold)
        else:
            everything = union(corpus["groups"])
            test_ids = speaker_fold_ids(everything, chosen["folds"], test_fold, label_key, seed)
            test = {u: e for u, e in everything.items() if u in test_ids}
            training = {u: e for u, e in everything.items() if u not in test_ids}
        if holdout in ("dialogue", "speaker"):
            holdout_ids = dialogue_holdout_ids(training, label_key, holdout_share, seed, group_key=holdout)
        elif holdout == "stratified":
            holdout_ids = stratified_holdout_ids(training, label_key, holdout_share, seed)
        else:  # session or group
            holdout_ids = set(manifests[holdout_group_for(test_fold, corpus["groups"])])
        splits = {
            "train": {u: e for u, e in training.items() if u not in holdout_ids},
            "holdout": {u: e for u, e in training.items() if u in holdout_ids},
            "test": test,
        }
    paths = fold_manifest_paths(save_folder)
    for split in SPLITS:
        if not splits[split]:
            raise FoldError(f"fold {test_fold}: the {split} split is empty")
    warn_about_missing_classes(splits, classes, label_key, f"fold {test_fold}")
    for split in SPLITS:
        atomic_write_json(paths[split], splits[split])
    atomic_write_json(os.path.join(save_folder, FOLD_RECORD), {
        "corpus": corpus["corpus"], "language": corpus.get("language", "en"),
        "protocol": describe_protocol(corpus, protocol, n_folds),
        "held_out": f"{fold_heading(corpus, protocol, n_folds)} {test_fold}", "test_fold": test_fold,
        "label_map": label_map, "dropped_labels": dropped, "classes": list(classes),
        "holdout": "official" if chosen["name"] == "official" else holdout,
        "holdout_share": holdout_share, "seed": seed,
        "sizes": {split: len(splits[split]) for split in SPLITS},
    })
    return paths


def fold_dataset(path, data_folder, dynamic_items, output_keys):
    """A SpeechBrain ``DynamicItemDataset`` of one split manifest, ``{data_root}`` in its
    ``wav`` fields replaced by ``data_folder``. Not ``DynamicItemDataset.from_json``: that runs
    ``str.format_map`` on every string, so a transcript holding braces (``{laughs}``) would
    fail to load or lose them.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "test.json")
    >>> atomic_write_json(path, {"u1": {"wav": "{data_root}/a.wav", "transcript": "oh {laughs}"}})
    >>> dataset = fold_dataset(path, "/corpus", [], ["id", "wav", "transcript"])
    >>> dataset[0]
    {'id': 'u1', 'wav': '/corpus/a.wav', 'transcript': 'oh {laughs}'}
    """
    import speechbrain as sb

    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    for entry in data.values():
        if isinstance(entry.get("wav"), str):
            entry["wav"] = entry["wav"].replace("{data_root}", str(data_folder))
    return sb.dataio.dataset.DynamicItemDataset(data, dynamic_items=dynamic_items, output_keys=output_keys)


def warn_about_missing_classes(splits, classes, label_key, fold_name):
    """Logs a warning for every class that a split lacks, with the class's counts, and
    returns ``{split: [missing classes]}``. A class with fewer than two training utterances
    cannot be in both train and hold-out; the fusion fitted on the hold-out must know.

    Example
    -------
    >>> splits = {"train": {"a": {"emo": "ang"}, "b": {"emo": "sad"}},
    ...           "holdout": {"c": {"emo": "ang"}}, "test": {"d": {"emo": "sad"}}}
    >>> warn_about_missing_classes(splits, ["ang", "sad"], "emo", "fold 1")
    {'holdout': ['sad'], 'test': ['ang']}
    """
    counts = {split: {} for split in splits}
    for split, entries in splits.items():
        for entry in entries.values():
            counts[split][entry[label_key]] = counts[split].get(entry[label_key], 0) + 1
    missing = {}
    for split in splits:
        absent = [label for label in classes if not counts[split].get(label)]
        if absent:
            missing[split] = absent
            found = {s: {label: counts[s].get(label, 0) for label in absent} for s in splits}
            logger.warning(
                "%s: the %s split has no utterance of class(es) %s (counts per split: %s); "
                "its figures and anything fitted on it ignore these classes",
                fold_name, split, absent, found,
            )
    return missing


def fold_manifest_paths(save_folder):
    """Where :func:`make_fold` writes the three splits.

    Example
    -------
    >>> sorted(fold_manifest_paths("f"))
    ['holdout', 'test', 'train']
    """
    return {split: os.path.join(save_folder, f"{split}.json") for split in SPLITS}


def rename_legacy_overrides(overrides):
    r"""The command line's overrides (a YAML string) with the old IEMOCAP-only keys renamed
    (``test_session`` -> ``test_fold``, ``test_sessions`` -> ``test_folds``), so that the
    commands of earlier releases keep working.

    Example
    -------
    >>> rename_legacy_overrides("test_session: 5\nmode: finetune\n")
    'test_fold: 5\nmode: finetune\n'
    """
    for old, new in LEGACY_KEYS.items():
        if re.search(rf"^{old}:", overrides or "", flags=re.MULTILINE):
            logger.warning("--%s is the old name of --%s: use --%s", old, new, new)
            overrides = re.sub(rf"^{old}:", f"{new}:", overrides, flags=re.MULTILINE)
    return overrides


def prepare_recipe_fold(hparams, modality):
    """What a training recipe does before its data pipeline: prepares the corpus (unless
    ``skip_prep``), checks that the corpus can train the ``modality`` branch, and writes the
    fold of ``test_fold`` (on the main process). Returns the fold's manifest paths.

    Both recipes call it with the same fold keys, so that both modalities get the same splits.

    Example
    -------
    >>> import tempfile
    >>> hparams = {"skip_prep": True, "manifest_folder": tempfile.mkdtemp()}
    >>> prepare_recipe_fold(hparams, "speech")
    Traceback (most recent call last):
    ...
    mmer_lobes.corpora.CorpusError: no corpus.json in ...: run the corpus's prepare script (data_prep/*_prepare.py) first
    """
    from speechbrain.utils.distributed import run_on_main

    if not hparams["skip_prep"]:
        run_on_main(prepare_corpus, args=[hparams["prepare_corpus"], hparams["data_folder"],
                                          hparams["manifest_folder"], hparams["prepare_options"]])
    check_modality(load_corpus(hparams["manifest_folder"]), modality)
    run_on_main(make_fold, kwargs={
        "manifest_folder": hparams["manifest_folder"], "test_fold": hparams["test_fold"],
        "save_folder": hparams["fold_folder"], "classes": hparams["emotions"], "label_map": hparams["label_map"],
        "protocol": hparams["protocol"], "n_folds": hparams["n_folds"], "holdout": hparams["holdout"],
        "holdout_share": hparams["holdout_share"], "seed": hparams["fold_seed"],
    })
    return fold_manifest_paths(hparams["fold_folder"])
