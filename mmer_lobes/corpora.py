"""``corpus.json``: what a prepared corpus holds and how it is cut into folds.

A prepare script (``data_prep/*_prepare.py``) writes one manifest per *group* and a
``corpus.json`` beside them. The groups are what the corpus is naturally divided into:
IEMOCAP's sessions, RAVDESS's actor groups, EmoDB's or CREMA-D's speakers, MELD's or
MSP-Podcast's official partitions. ``corpus.json`` names them, the labels the manifests
hold, the modalities, and the corpus's default *protocol*:

* ``leave_one_group_out``: one fold per group, tested on that group (IEMOCAP's sessions);
* ``speaker_folds``: ``folds`` speaker-independent folds, grouped by the entries'
  ``speaker`` and stratified by class (CREMA-D's 91 actors);
* ``official``: one fold with the corpus's own ``train``, ``holdout`` and ``test`` groups.

Example of a ``corpus.json``::

    {"format_version": 1, "corpus": "RAVDESS speech", "label_key": "emo",
     "labels": ["neutral", "calm", ...], "group_kind": "actor group",
     "groups": {"actors01-04": "actors01-04.json", ...},
     "protocol": {"name": "leave_one_group_out"},
     "modalities": ["speech", "text"], "text_carries_emotion": false,
     "counts": {"actors01-04": {"neutral": 16, ...}, ...}}
"""
import json
import os
import re

from mmer_lobes.errors import ProjectError

CORPUS_FILE = "corpus.json"
FORMAT_VERSION = 1
PROTOCOLS = ("leave_one_group_out", "speaker_folds", "official")
MODALITIES = ("speech", "text")
OFFICIAL_SPLITS = ("train", "holdout", "test")


class CorpusError(ProjectError, ValueError):
    """A ``corpus.json`` is missing or malformed, or a protocol does not fit the corpus."""


def corpus_description(name, labels, groups, protocol, group_kind, modalities=MODALITIES,
                       text_carries_emotion=True, counts=None, label_key="emo", language="en"):
    """A checked ``corpus.json`` dictionary.

    Arguments
    ---------
    name : str
        The corpus, as reports name it.
    labels : list of str
        The native labels the manifests hold (before any label map).
    groups : dict
        Group name -> manifest file name, in the corpus's order.
    protocol : dict
        The default protocol (see the module docstring).
    group_kind : str
        What a group is ("session", "actor group", "speaker", "partition").
    modalities : sequence of str
        ``speech`` (entries have ``wav`` and ``duration``) and/or ``text`` (``transcript``).
    text_carries_emotion : bool
        False when the text is fixed sentences read in every emotion (RAVDESS, CREMA-D):
        a text branch trained on it could only learn the speakers' or sentences' priors.
    counts : dict, optional
        Group -> label -> utterances.
    label_key : str
        The manifest field that holds the label.
    language : str
        The ISO 639-1 code of the speech and text (model cards name it).

    Example
    -------
    >>> d = corpus_description("mini", ["ang", "sad"], {"a": "a.json", "b": "b.json"},
    ...                        {"name": "leave_one_group_out"}, "speaker")
    >>> d["protocol"], d["modalities"]
    ({'name': 'leave_one_group_out'}, ['speech', 'text'])
    """
    description = {
        "format_version": FORMAT_VERSION, "corpus": str(name), "label_key": label_key,
        "labels": [str(label) for label in labels], "group_kind": group_kind,
        "groups": {str(group): str(file) for group, file in groups.items()},
        "protocol": dict(protocol), "modalities": list(modalities),
        "text_carries_emotion": bool(text_carries_emotion), "counts": counts or {}, "language": str(language),
    }
    check_description(description, "corpus description")
    return description


def check_description(description, source):
    """Raises a :class:`CorpusError` naming ``source`` when ``description`` is not a valid
    ``corpus.json``.

    Example
    -------
    >>> check_description({"format_version": 1}, "corpus.json")
    Traceback (most recent call last):
    ...
    mmer_lobes.corpora.CorpusError: corpus.json lacks corpus, label_key, labels, group_kind, groups, protocol, modalities, text_carries_emotion
    """
    required = ("format_version", "corpus", "label_key", "labels", "group_kind", "groups", "protocol",
                "modalities", "text_carries_emotion")
    missing = [key for key in required if key not in description]
    if missing:
        raise CorpusError(f"{source} lacks {', '.join(missing)}")
    if description["format_version"] != FORMAT_VERSION:
        raise CorpusError(f"{source} has format_version {description['format_version']}, this code reads "
                          f"{FORMAT_VERSION}: prepare the corpus again")
    if not isinstance(description["groups"], dict) or not description["groups"]:
        raise CorpusError(f"{source} names no group")
    unknown = [m for m in description["modalities"] if m not in MODALITIES]
    if unknown or not description["modalities"]:
        raise CorpusError(f"{source}: modalities must be some of {list(MODALITIES)}, got {description['modalities']}")
    resolve_protocol(description, source=source)


def load_corpus(manifest_folder):
    """Reads and checks ``<manifest_folder>/corpus.json``.

    Example
    -------
    >>> import tempfile
    >>> load_corpus(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    mmer_lobes.corpora.CorpusError: no corpus.json in ...: run the corpus's prepare script (data_prep/*_prepare.py) first
    """
    path = os.path.join(manifest_folder, CORPUS_FILE)
    if not os.path.isfile(path):
        raise CorpusError(f"no {CORPUS_FILE} in {manifest_folder}: run the corpus's prepare script "
                          "(data_prep/*_prepare.py) first")
    try:
        with open(path, encoding="utf-8") as handle:
            description = json.load(handle)
    except json.JSONDecodeError as error:
        raise CorpusError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(description, dict):
        raise CorpusError(f"{path} does not hold a JSON object")
    check_description(description, path)
    return description


def resolve_protocol(corpus, protocol=None, n_folds=None, source=CORPUS_FILE):
    """The protocol to run: the corpus's default, or the one named by ``protocol`` (with
    ``n_folds`` for ``speaker_folds``). Returns a protocol dictionary.

    Example
    -------
    >>> corpus = {"groups": {"1": "S1.json", "2": "S2.json"}, "protocol": {"name": "leave_one_group_out"}}
    >>> resolve_protocol(corpus)
    {'name': 'leave_one_group_out'}
    >>> resolve_protocol(corpus, "speaker_folds", 4)
    {'name': 'speaker_folds', 'folds': 4}
    >>> resolve_protocol(corpus, "official")
    Traceback (most recent call last):
    ...
    mmer_lobes.corpora.CorpusError: protocol official needs the corpus's train, holdout and test groups, which corpus.json does not name
    """
    default = dict(corpus["protocol"])
    if protocol is None or protocol == default.get("name"):
        chosen = default
    else:  # the official partition exists only where the corpus names it
        chosen = {"name": protocol}
    if chosen["name"] == "speaker_folds" and n_folds:
        chosen["folds"] = int(n_folds)
    name = chosen.get("name")
    if name not in PROTOCOLS:
        raise CorpusError(f"{source}: protocol must be one of {list(PROTOCOLS)}, got {name!r}")
    groups = corpus["groups"]
    if name == "speaker_folds":
        chosen.setdefault("folds", 5)
        if int(chosen["folds"]) < 2:
            raise CorpusError(f"{source}: speaker_folds needs at least 2 folds, got {chosen['folds']}")
        chosen["folds"] = int(chosen["folds"])
    if name == "official":
        if not all(chosen.get(split) for split in OFFICIAL_SPLITS):
            raise CorpusError(f"protocol official needs the corpus's train, holdout and test groups, which "
                              f"{source} does not name")
        unknown = [g for split in OFFICIAL_SPLITS for g in chosen[split] if g not in groups]
        if unknown:
            raise CorpusError(f"{source}: the official protocol names groups {unknown} that are not in "
                              f"groups {list(groups)}")
    return chosen


def fold_names(corpus, protocol=None, n_folds=None):
    """The folds of a protocol, as strings: the groups (leave-one-group-out), ``1`` ...
    ``k`` (speaker folds), or the test groups joined by ``+`` (official).

    Example
    -------
    >>> corpus = {"groups": {"1": "Session1.json", "2": "Session2.json"},
    ...           "protocol": {"name": "leave_one_group_out"}}
    >>> fold_names(corpus), fold_names(corpus, "speaker_folds", 3)
    (['1', '2'], ['1', '2', '3'])
    """
    chosen = resolve_protocol(corpus, protocol, n_folds)
    if chosen["name"] == "leave_one_group_out":
        if len(corpus["groups"]) < 2:
            raise CorpusError(f"leave_one_group_out needs at least 2 groups, the corpus has {list(corpus['groups'])}")
        return list(corpus["groups"])
    if chosen["name"] == "speaker_folds":
        return [str(k) for k in range(1, chosen["folds"] + 1)]
    return ["+".join(chosen["test"])]


def fold_folder_name(fold):
    """The folder name of a fold's results: ``fold<name>``, with every character that is not a
    letter, digit, ``.``, ``_``, ``+`` or ``-`` replaced by ``_`` (group names come from the
    corpus, and a ``/`` or ``..`` would leave the output folder).

    Example
    -------
    >>> fold_folder_name("5"), fold_folder_name("site/B"), fold_folder_name("..")
    ('fold5', 'foldsite_B', 'fold..')
    """
    return "fold" + re.sub(r"[^A-Za-z0-9._+-]", "_", str(fold))


def describe_protocol(corpus, protocol=None, n_folds=None):
    """One line naming the corpus and the protocol, for reports and logs.

    Example
    -------
    >>> corpus = {"corpus": "IEMOCAP", "group_kind": "session", "groups": {"1": "S1.json", "2": "S2.json"},
    ...           "protocol": {"name": "leave_one_group_out"}}
    >>> describe_protocol(corpus)
    'IEMOCAP, leave one session out (2 folds)'
    """
    chosen = resolve_protocol(corpus, protocol, n_folds)
    if chosen["name"] == "leave_one_group_out":
        how = f"leave one {corpus['group_kind']} out ({len(corpus['groups'])} folds)"
    elif chosen["name"] == "speaker_folds":
        how = f"{chosen['folds']} speaker-independent folds, stratified by class"
    else:
        how = (f"official partition: train {'+'.join(chosen['train'])}, hold-out {'+'.join(chosen['holdout'])}, "
               f"test {'+'.join(chosen['test'])}")
    return f"{corpus['corpus']}, {how}"


def fold_heading(corpus, protocol=None, n_folds=None):
    """What a fold's column is called in reports: the group kind for leave-one-group-out,
    else ``fold``.

    Example
    -------
    >>> fold_heading({"group_kind": "session", "groups": {"1": "a", "2": "b"},
    ...               "protocol": {"name": "leave_one_group_out"}})
    'session'
    """
    chosen = resolve_protocol(corpus, protocol, n_folds)
    return corpus["group_kind"] if chosen["name"] == "leave_one_group_out" else "fold"


def check_modality(corpus, modality):
    """Refuses, with one line, a branch the corpus cannot train: no such modality, or text
    that carries no emotion.

    Example
    -------
    >>> corpus = {"corpus": "RAVDESS speech", "modalities": ["speech", "text"], "text_carries_emotion": False}
    >>> check_modality(corpus, "text")
    Traceback (most recent call last):
    ...
    mmer_lobes.corpora.CorpusError: RAVDESS speech: its text is the same sentences read in every emotion, so a text branch would learn nothing about emotion; run the speech branch only (modalities: [speech])
    """
    if modality not in corpus["modalities"]:
        raise CorpusError(f"{corpus['corpus']} was prepared without {modality} (its modalities: "
                          f"{corpus['modalities']}), so no {modality} branch can run on it")
    if modality == "text" and not corpus["text_carries_emotion"]:
        raise CorpusError(f"{corpus['corpus']}: its text is the same sentences read in every emotion, so a text "
                          "branch would learn nothing about emotion; run the speech branch only (modalities: [speech])")


def prepare_corpus(dotted_name, data_folder, save_folder, options=None):
    """Runs the prepare function named by a dotted path (the YAMLs' ``prepare_corpus``, e.g.
    ``data_prep.ravdess_prepare.prepare_ravdess``) as
    ``prepare(data_folder, save_folder, **options)``; a name that is not a function, or
    options it does not take, are one-line errors.

    Example
    -------
    >>> prepare_corpus("data_prep.nothing.prepare", "corpus", "manifests")
    Traceback (most recent call last):
    ...
    mmer_lobes.corpora.CorpusError: prepare_corpus data_prep.nothing.prepare: no module data_prep.nothing
    >>> prepare_corpus("data_prep.ravdess_prepare.prepare_ravdess", "corpus", "manifests", {"sessions": [1]})
    Traceback (most recent call last):
    ...
    mmer_lobes.corpora.CorpusError: prepare_options {'sessions': [1]} do not fit data_prep.ravdess_prepare.prepare_ravdess(data_folder, save_folder, vocal_channel='speech', actors_per_group=4, skip_prep=False, expect_full_corpus=None): got an unexpected keyword argument 'sessions'
    """
    import importlib
    import inspect

    module_name, _, function_name = str(dotted_name).rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:  # the module exists; one of its imports does not
            raise
        raise CorpusError(f"prepare_corpus {dotted_name}: no module {module_name}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise CorpusError(f"prepare_corpus {dotted_name}: {module_name} has no function {function_name}")
    options = dict(options or {})
    try:
        inspect.signature(function).bind(data_folder, save_folder, **options)
    except TypeError as error:
        raise CorpusError(f"prepare_options {options} do not fit {dotted_name}{inspect.signature(function)}: "
                          f"{error}") from None
    return function(data_folder, save_folder, **options)
