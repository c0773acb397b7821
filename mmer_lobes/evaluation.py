"""Collects a classifier's outputs over an evaluation pass and writes a fold's results.

Every classifying recipe (speech, text) evaluates the hold-out and test splits the same
way: it appends each batch's log-posteriors here, then :meth:`ScoreCollector.write_results`
writes, under the recipe's output folder::

    scores/<split>.csv         the score file (see mmer_lobes.scores)
    metrics_<split>.json       WA, UA, per-class recall, confusion counts
    confusion_<split>.png      the confusion matrix as a picture
"""
import os

import numpy as np
import torch

from mmer_lobes.files import atomic_write_json
from mmer_lobes.metrics import plot_confusion_matrix, summarize_confusion, confusion_matrix
from mmer_lobes.scores import write_scores


class ScoreCollector:
    """Accumulates ids, true labels and log-posteriors batch by batch.

    Arguments
    ---------
    classes : list of str
        Class names in the label encoder's order (the score columns).

    Example
    -------
    >>> collector = ScoreCollector(["ang", "sad"])
    >>> collector.append(["u1", "u2"], torch.log(torch.tensor([[0.9, 0.1], [0.6, 0.4]])), torch.tensor([0, 1]))
    >>> collector.metrics()["UA"]
    50.0
    """

    def __init__(self, classes):
        self.classes = list(classes)
        self.ids, self.labels, self.rows = [], [], []

    def append(self, ids, log_posteriors, label_indices):
        """Adds one batch: ``log_posteriors`` is ``(batch, classes)``, labels are indices."""
        log_posteriors = log_posteriors.detach().float().cpu().reshape(len(ids), -1)
        if log_posteriors.shape[1] != len(self.classes):
            raise ValueError(
                f"the model outputs {log_posteriors.shape[1]} classes, the encoder has "
                f"{len(self.classes)}: {self.classes}"
            )
        self.ids.extend(ids)
        self.labels.extend(self.classes[int(i)] for i in label_indices.reshape(-1).tolist())
        self.rows.append(log_posteriors.numpy())

    def log_posteriors(self):
        """All appended log-posteriors as one ``(N, C)`` array."""
        return np.concatenate(self.rows) if self.rows else np.zeros((0, len(self.classes)))

    def metrics(self):
        """WA, UA, per-class recall and confusion counts of the argmax decisions."""
        index = {name: i for i, name in enumerate(self.classes)}
        truth = [index[label] for label in self.labels]
        predicted = self.log_posteriors().argmax(axis=1)
        return summarize_confusion(
            confusion_matrix(truth, predicted, len(self.classes)), self.classes
        )

    def write_results(self, output_folder, split, title=""):
        """Writes the score file, the metrics JSON and the confusion PNG of ``split``.

        Returns the metrics dict.
        """
        if not self.ids:
            raise ValueError(f"no utterance was evaluated on the {split} split")
        write_scores(
            os.path.join(output_folder, "scores", f"{split}.csv"),
            self.ids, self.labels, self.log_posteriors(), self.classes,
        )
        metrics = self.metrics()
        metrics["classes"] = self.classes
        atomic_write_json(os.path.join(output_folder, f"metrics_{split}.json"), metrics)
        plot_confusion_matrix(
            metrics["confusion"], self.classes,
            os.path.join(output_folder, f"confusion_{split}.png"),
            title or f"{split}: UA {metrics['UA']:.1f} %, WA {metrics['WA']:.1f} %",
        )
        return metrics
