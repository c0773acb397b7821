"""Score files: the contract between the modalities and fusion.

One CSV per fold and split, one row per utterance: ``id``, ``label`` (the true class
name), then the log-posterior of every class, in the label encoder's order::

    id,label,ang,hap,neu,sad
    Ses05F_impro01_F000,neu,-2.31,-1.20,-0.52,-3.01

Fusion reads nothing else, so any classifier that writes this file can be fused.
"""
import csv
import math
from dataclasses import dataclass

import numpy as np

from mmer_lobes.errors import ProjectError
from mmer_lobes.files import atomic_open


class ScoreFileError(ProjectError, ValueError):
    """A score file is missing, malformed, or does not match another one."""


@dataclass
class ScoreSet:
    """The content of one score file.

    Arguments
    ---------
    ids : list of str
        Utterance ids, one per row.
    labels : list of str
        True class name of every utterance.
    scores : numpy.ndarray
        ``(len(ids), len(classes))`` log-posteriors.
    classes : list of str
        Class names, in the column order of ``scores``.

    Example
    -------
    >>> s = ScoreSet(["u1"], ["ang"], np.log([[0.7, 0.3]]), ["ang", "sad"])
    >>> s.label_indices().tolist()
    [0]
    """

    ids: list
    labels: list
    scores: np.ndarray
    classes: list

    def label_indices(self):
        """Returns the true labels as indices into ``classes``.

        Example
        -------
        >>> ScoreSet(["a", "b"], ["sad", "ang"], np.zeros((2, 2)), ["ang", "sad"]).label_indices().tolist()
        [1, 0]
        """
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[label] for label in self.labels], dtype=np.int64)


def write_scores(path, ids, labels, log_posteriors, classes):
    """Writes a score file atomically.

    Arguments
    ---------
    path : str
        Output CSV path.
    ids : list of str
        Utterance ids.
    labels : list of str
        True class names.
    log_posteriors : array-like
        ``(N, C)`` log-posteriors in the order of ``classes``.
    classes : list of str
        Class names.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "test_scores.csv")
    >>> write_scores(path, ["u1", "u2"], ["ang", "sad"], np.log([[0.9, 0.1], [0.2, 0.8]]), ["ang", "sad"])
    >>> read_scores(path).ids
    ['u1', 'u2']
    """
    log_posteriors = np.asarray(log_posteriors, dtype=np.float64)
    if log_posteriors.shape != (len(ids), len(classes)) or len(labels) != len(ids):
        raise ScoreFileError(
            f"{path}: {len(ids)} ids and {len(labels)} labels need scores of shape "
            f"({len(ids)}, {len(classes)}), got {log_posteriors.shape}"
        )
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ScoreFileError(f"{path}: labels {unknown} are not among the classes {list(classes)}")
    with atomic_open(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "label", *classes])
        for utt_id, label, row in zip(ids, labels, log_posteriors):
            writer.writerow([utt_id, label, *(f"{value:.6f}" for value in row)])


def read_scores(path):
    """Reads and validates a score file written by :func:`write_scores`.

    Arguments
    ---------
    path : str
        The CSV file.

    Returns
    -------
    ScoreSet

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "s.csv")
    >>> _ = open(path, "w").write("id,label,ang,sad\\nu1,sad,-2.3,-0.1\\n")
    >>> read_scores(path).scores.tolist()
    [[-2.3, -0.1]]
    """
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as error:
        raise ScoreFileError(f"cannot open score file {path}: {error.strerror}") from None
    with handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0][:2] != ["id", "label"] or len(rows[0]) < 3:
        raise ScoreFileError(f"{path}: the header must be 'id,label,<class>,...'")
    classes = rows[0][2:]
    if len(set(classes)) != len(classes):
        raise ScoreFileError(f"{path}: the header repeats a class: {classes}")
    ids, labels, scores, first_line = [], [], [], {}
    for line_number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(classes) + 2:
            raise ScoreFileError(
                f"{path}, line {line_number}: expected {len(classes) + 2} fields, got {len(row)}"
            )
        try:
            values = [float(value) for value in row[2:]]
        except ValueError:
            raise ScoreFileError(f"{path}, line {line_number}: scores must be numbers") from None
        if not all(math.isfinite(v) for v in values):
            raise ScoreFileError(f"{path}, line {line_number}: scores must be finite")
        if row[1] not in classes:
            raise ScoreFileError(
                f"{path}, line {line_number}: label '{row[1]}' is not one of {classes}"
            )
        if row[0] in first_line:
            raise ScoreFileError(
                f"{path}, line {line_number}: duplicate utterance id {row[0]} "
                f"(first on line {first_line[row[0]]})"
            )
        first_line[row[0]] = line_number
        ids.append(row[0])
        labels.append(row[1])
        scores.append(values)
    if not ids:
        raise ScoreFileError(f"{path}: no utterances")
    return ScoreSet(ids, labels, np.array(scores, dtype=np.float64), classes)
