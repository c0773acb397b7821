"""Writing a prepared corpus: one manifest per group, ``corpus.json``, the count table and
the check against the full corpus's known counts. Every prepare script but VoxCeleb's starts
with :func:`current_prepared_corpus` (the skip pattern of :mod:`data_prep.prepare_common`) and
ends with :func:`finish_preparation` (IEMOCAP's with :func:`write_prepared_corpus`).
"""
import json
import logging
import os
from collections import Counter

from data_prep import prepare_common
from mmer_lobes.corpora import CORPUS_FILE
from mmer_lobes.files import atomic_write_json

logger = logging.getLogger(__name__)


def manifest_paths(save_folder, groups):
    """``{group: path}`` of the group manifests named in ``groups`` (group -> file name).

    Example
    -------
    >>> manifest_paths("m", {"train": "train.json"})
    {'train': 'm/train.json'}
    """
    return {group: os.path.join(save_folder, file) for group, file in groups.items()}


def current_prepared_corpus(save_folder, options):
    """``{group: manifest path}``, after logging and printing that the work is skipped, when
    ``save_folder`` holds a ``corpus.json``, every group manifest it names, and the options
    file of a run with the same ``options``; None when the corpus must be prepared.

    Example
    -------
    >>> import tempfile
    >>> current_prepared_corpus(tempfile.mkdtemp(), {"seed": 1}) is None
    True
    """
    corpus_path = os.path.join(save_folder, CORPUS_FILE)
    try:
        with open(corpus_path, encoding="utf-8") as handle:
            groups = json.load(handle)["groups"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    paths = manifest_paths(save_folder, groups)
    options_path = os.path.join(save_folder, prepare_common.OPTIONS_FILE)
    if not prepare_common.preparation_is_done(options_path, [corpus_path, *paths.values()], options):
        return None
    message = f"manifests in {save_folder} are up to date (same options): skipping preparation"
    logger.info(message)
    print(message)
    return paths


def write_prepared_corpus(save_folder, manifests, description, options, error_class):
    """Writes every group manifest and ``corpus.json`` atomically, then the options file that
    marks the work done; returns ``{group: manifest path}``.

    Arguments
    ---------
    save_folder : str
    manifests : dict
        Group -> {utterance id: entry}; every group of ``description`` must be here.
    description : dict
        From :func:`mmer_lobes.corpora.corpus_description`; its ``counts`` are filled here.
    options : dict
        The preparation's options (see :func:`current_prepared_corpus`).
    error_class : type
        Raised, naming the folder, when the save folder cannot be created.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> from mmer_lobes.corpora import corpus_description
    >>> description = corpus_description("mini", ["ang"], {"a": "a.json", "b": "b.json"},
    ...                                  {"name": "leave_one_group_out"}, "speaker")
    >>> manifests = {"a": {"u1": {"emo": "ang"}}, "b": {"u2": {"emo": "ang"}}}
    >>> paths = write_prepared_corpus(folder, manifests, description, {"x": 1}, ValueError)
    >>> sorted(os.listdir(folder)), current_prepared_corpus(folder, {"x": 1}) == paths
    manifests in ... are up to date (same options): skipping preparation
    (['a.json', 'b.json', 'corpus.json', 'prepare_opts.json'], True)
    """
    paths = manifest_paths(save_folder, description["groups"])
    label_key = description["label_key"]
    description = {**description, "counts": {
        group: dict(sorted(Counter(entry[label_key] for entry in manifests[group].values()).items()))
        for group in description["groups"]}}

    def write_outputs():
        for group, path in paths.items():
            atomic_write_json(path, dict(sorted(manifests[group].items())))
        atomic_write_json(os.path.join(save_folder, CORPUS_FILE), description)

    options_path = os.path.join(save_folder, prepare_common.OPTIONS_FILE)
    prepare_common.write_outputs_then_options(save_folder, options_path, options, write_outputs, error_class)
    return paths


def summarize_groups(corpus_name, manifests, labels, dropped, save_folder, label_key="emo"):
    """The count table a prepare script prints: utterances per group and label, the total,
    and what was dropped.

    Example
    -------
    >>> manifests = {"a": {"u1": {"emo": "ang"}, "u2": {"emo": "sad"}}, "b": {"u3": {"emo": "ang"}}}
    >>> print(summarize_groups("mini", manifests, ["ang", "sad"], Counter(fea=2), "out"))
    mini: 3 utterances in 2 groups -> out
              ang  sad  total
    a           1    1      2
    b           1    0      1
    total       2    1      3
    dropped: fea 2
    """
    found = {entry[label_key] for entries in manifests.values() for entry in entries.values()}
    labels = [*labels, *sorted(found - set(labels))]  # a label left out would vanish from the totals
    rows, total = [], Counter()
    for group, entries in manifests.items():
        counts = Counter(entry[label_key] for entry in entries.values())
        rows.append((str(group), counts))
        total.update(counts)
    rows.append(("total", total))
    dropped_text = ", ".join(f"{label} {n}" for label, n in Counter(dropped).most_common())
    return (f"{corpus_name}: {sum(total.values())} utterances in {len(manifests)} groups -> {save_folder}\n"
            + prepare_common.format_count_table(rows, list(labels))
            + f"\ndropped: {dropped_text or 'none'}")


def check_known_counts(corpus_name, found, expected, what="the full corpus"):
    """Compares label counts with a corpus's published ones; a mismatch is a loud warning
    (the copy is incomplete or damaged, or was parsed wrongly). Returns True on a match.

    Example
    -------
    >>> check_known_counts("EmoDB", Counter(anger=127), {"anger": 127})
    True
    >>> check_known_counts("EmoDB", Counter(anger=120), {"anger": 127})
    False
    """
    found = {label: int(n) for label, n in found.items() if n}
    expected = {label: int(n) for label, n in expected.items() if n}
    if found == expected:
        return True

    def describe(counts):
        return " / ".join(f"{label} {n}" for label, n in counts.items()) + f" = {sum(counts.values())}"

    banner = "!" * 78
    logger.warning("\n%s\n%s COUNTS DO NOT MATCH %s\n  expected: %s\n  found:    %s\n"
                   "The copy is incomplete or damaged, or its files were parsed wrongly.\n%s",
                   banner, corpus_name.upper(), what.upper(), describe(expected), describe(found), banner)
    return False


def finish_preparation(save_folder, manifests, description, options, dropped, error_class):
    """What every prepare script ends with: :func:`write_prepared_corpus`, then the count
    table (:func:`summarize_groups`) logged and printed. Returns ``{group: manifest path}``.

    Example
    -------
    >>> import contextlib, io, tempfile
    >>> from mmer_lobes.corpora import corpus_description
    >>> description = corpus_description("mini", ["ang"], {"a": "a.json", "b": "b.json"},
    ...                                  {"name": "leave_one_group_out"}, "speaker")
    >>> manifests = {"a": {"u1": {"emo": "ang"}}, "b": {"u2": {"emo": "ang"}}}
    >>> out = io.StringIO()
    >>> with contextlib.redirect_stdout(out):
    ...     paths = finish_preparation(tempfile.mkdtemp(), manifests, description, {}, {}, ValueError)
    >>> sorted(paths), out.getvalue().splitlines()[-2]
    (['a', 'b'], 'total       2      2')
    """
    paths = write_prepared_corpus(save_folder, manifests, description, options, error_class)
    summary = summarize_groups(description["corpus"], manifests, description["labels"], dropped, save_folder,
                               description["label_key"])
    logger.info("%s", summary)
    print(summary)
    return paths
