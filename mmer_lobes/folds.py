"""Leave-one-session-out folds over per-session manifests.

IEMOCAP is prepared as one manifest per session (``Session1.json`` ... ``Session5.json``), so
a fold is a choice of files, never a re-preparation. A fold trains on four sessions, tests on
the fifth, and takes a hold-out set (for model selection and fusion) from the training
sessions:

* ``dialogue`` (the default): class-stratified and grouped by dialogue, so that no dialogue
  is split between train and hold-out. Utterances of one dialogue share speakers, topic and
  (in scripted dialogues) text, so a hold-out that shares dialogues with training scores
  optimistically, by a different amount for each modality, which biases the fusion. A
  script is still performed in other dialogues (IEMOCAP's ``Ses01F_script01_1`` and
  ``Ses01M_script01_1``, and every session's ``script01_1``), so hold-out scripted lines
  have been seen in training, as the test session's have: the hold-out keeps the test's
  condition rather than a harder one.
* ``stratified``: a class-stratified share of the training utterances, drawn per utterance.
* ``session``: the whole training session before the test session.

The speech and the text recipes both call :func:`make_fold`, so both modalities see exactly
the same utterances in every split, which score-level fusion requires.
"""
import json
import logging
import os

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from mmer_lobes.errors import ProjectError
from mmer_lobes.files import atomic_write_json

logger = logging.getLogger(__name__)

SPLITS = ("train", "holdout", "test")
HOLDOUT_KINDS = ("dialogue", "stratified", "session")


class FoldError(ProjectError, ValueError):
    """A fold cannot be built from the given manifests and options."""


def load_session_manifest(manifest_folder, session):
    """Reads ``Session{session}.json`` and checks that it is a non-empty manifest.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "Session2.json"), "w").write('{"u1": {"emo": "neu"}}')
    >>> load_session_manifest(folder, 2)
    {'u1': {'emo': 'neu'}}
    """
    path = os.path.join(manifest_folder, f"Session{session}.json")
    if not os.path.isfile(path):
        raise FoldError(
            f"missing manifest {path}: run data_prep/iemocap_prepare.py first, or check "
            f"that session {session} exists"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as error:
        raise FoldError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or not manifest:
        raise FoldError(f"manifest {path} is empty: no utterance to train or test on")
    return manifest


def holdout_session_for(test_session, sessions):
    """The session held out for validation when ``holdout: session``: the one before the
    test session, cyclically (test 1 -> hold-out 5).

    Example
    -------
    >>> holdout_session_for(5, [1, 2, 3, 4, 5]), holdout_session_for(1, [1, 2, 3, 4, 5])
    (4, 5)
    """
    ordered = sorted(sessions)
    return ordered[ordered.index(test_session) - 1]


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
        raise FoldError(f"holdout_share must lie in (0, 0.5] for the dialogue hold-out, got {share}")
    ids = sorted(entries)
    missing = [u for u in ids if not entries[u].get(group_key)]
    if missing:
        raise FoldError(
            f"holdout: dialogue needs a '{group_key}' field in every manifest entry, and "
            f"{len(missing)} lack it (first: {missing[0]}); re-run the prepare script, or set "
            "holdout: stratified"
        )
    groups = [entries[u][group_key] for u in ids]
    n_splits = int(round(1.0 / share))
    if len(set(groups)) < n_splits:
        raise FoldError(
            f"holdout_share {share} needs at least {n_splits} dialogues in the training "
            f"sessions, found {len(set(groups))}; raise holdout_share or set holdout: stratified"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    labels = [entries[u][label_key] for u in ids]
    _, holdout_rows = next(splitter.split(np.zeros(len(ids)), labels, groups))
    return {ids[row] for row in holdout_rows}


def make_fold(
    manifest_folder,
    test_session,
    save_folder,
    classes,
    label_key="emo",
    sessions=(1, 2, 3, 4, 5),
    holdout="dialogue",
    holdout_share=0.1,
    seed=1234,
):
    """Writes ``train.json``, ``holdout.json`` and ``test.json`` of one fold.

    Arguments
    ---------
    manifest_folder : str
        Folder with ``Session{k}.json``.
    test_session : int
        The session to test on.
    save_folder : str
        Where the fold's manifests go.
    classes : list of str
        The classes the model knows; an utterance with another label is an error.
    label_key : str
        The manifest field that holds the class.
    sessions : sequence of int
        All sessions of the corpus.
    holdout : str
        ``"dialogue"`` (class-stratified whole dialogues of the training sessions, see
        :func:`dialogue_holdout_ids`), ``"stratified"`` (a class-stratified share of the
        training utterances) or ``"session"`` (the whole session before the test session).
    holdout_share : float
        The share used by ``"dialogue"`` and ``"stratified"``.
    seed : int
        Seed of the draw.

    Returns
    -------
    dict
        ``{"train": path, "holdout": path, "test": path}``.

    Example
    -------
    >>> import tempfile
    >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> for k in (1, 2, 3):
    ...     entries = {f"S{k}_{i}": {"emo": "ang" if i % 2 else "sad", "dialogue": f"S{k}_d{i // 2}"}
    ...                for i in range(10)}
    ...     _ = open(os.path.join(src, f"Session{k}.json"), "w").write(json.dumps(entries))
    >>> paths = make_fold(src, 3, dst, ["ang", "sad"], sessions=(1, 2, 3), holdout_share=0.2)
    >>> [len(json.load(open(paths[s]))) for s in SPLITS]
    [16, 4, 10]
    """
    sessions = [int(s) for s in sessions]
    test_session = int(test_session)
    if test_session not in sessions:
        raise FoldError(f"test session {test_session} is not one of the sessions {sessions}")
    manifests = {k: load_session_manifest(manifest_folder, k) for k in sessions}
    known = set(classes)
    for k, manifest in manifests.items():
        for utt_id, entry in manifest.items():
            if entry.get(label_key) not in known:
                raise FoldError(
                    f"Session{k}.json: utterance {utt_id} has {label_key}="
                    f"{entry.get(label_key)!r}, which is not one of the classes {list(classes)}"
                )

    training = {}
    for k in sessions:
        if k != test_session:
            training.update(manifests[k])
    if holdout == "dialogue":
        holdout_ids = dialogue_holdout_ids(training, label_key, holdout_share, seed)
    elif holdout == "stratified":
        holdout_ids = stratified_holdout_ids(training, label_key, holdout_share, seed)
    elif holdout == "session":
        holdout_ids = set(manifests[holdout_session_for(test_session, sessions)])
    else:
        raise FoldError(f"holdout must be one of {list(HOLDOUT_KINDS)}, got {holdout!r}")

    splits = {
        "train": {u: e for u, e in training.items() if u not in holdout_ids},
        "holdout": {u: e for u, e in training.items() if u in holdout_ids},
        "test": manifests[test_session],
    }
    paths = fold_manifest_paths(save_folder)
    for split in SPLITS:
        if not splits[split]:
            raise FoldError(f"fold {test_session}: the {split} split is empty")
    warn_about_missing_classes(splits, classes, label_key, f"fold {test_session}")
    for split in SPLITS:
        atomic_write_json(paths[split], splits[split])
    return paths


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
