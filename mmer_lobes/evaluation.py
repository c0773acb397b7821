"""Collects a classifier's outputs over an evaluation pass and writes a fold's results.

Every classifying recipe (speech, text) evaluates the hold-out and test splits the same
way: it appends each batch's log-posteriors here, then :meth:`ScoreCollector.write_results`
writes, under the recipe's output folder::

    scores/<split>.csv         the score file (see mmer_lobes.scores)
    metrics_<split>.json       WA, UA, per-class recall, confusion counts
    confusion_<split>.png      the confusion matrix as a picture

Under DDP (``torchrun``), every process appends the batches it evaluated; :meth:`metrics` and
:meth:`write_results` first merge the processes' rows (:meth:`ScoreCollector.synchronize`), so
that every process gets the metrics of the whole split, and only the main process (rank 0)
writes the files. SpeechBrain 1.1.2 does not shard the valid and test loaders
(``Brain.make_dataloader`` adds a ``DistributedSampler`` to the TRAIN loader only), so each
process scores every utterance and the merge removes the copies; a loader sharded with
``DistributedSampler`` (interleaved, padded with repeats) is merged back into its order too.
"""
import logging
import os

import numpy as np
import torch
from speechbrain.utils.distributed import ddp_barrier

from mmer_lobes.files import atomic_write_json
from mmer_lobes.metrics import plot_confusion_matrix, summarize_confusion, confusion_matrix
from mmer_lobes.scores import write_scores

logger = logging.getLogger(__name__)
# Two processes' log-posteriors of one utterance farther apart than this are reported.
RANK_TOLERANCE = 1e-4


def _world_size():
    """The number of DDP processes, 1 when torch.distributed is not initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def _is_main_process():
    """True on rank 0, and in a run without DDP."""
    return _world_size() == 1 or torch.distributed.get_rank() == 0


def merge_rank_rows(parts):
    """Merges the ``(ids, labels, rows)`` of every process into one list of each.

    The processes' lists are read in turn, one utterance of each (rank 0 first), as a
    ``DistributedSampler`` without shuffling dealt them; an utterance already taken (the
    same split scored by every process, or the sampler's padding) is skipped, so every
    utterance appears once. When every process holds the whole split, the result is rank
    0's order.

    Returns ``(ids, labels, rows, disagreements)``: ``rows`` a list of ``(C,)`` arrays,
    ``disagreements`` the ids whose scores differ between processes.

    Example
    -------
    >>> a = (["u1", "u3"], ["ang", "sad"], [np.zeros(2), np.ones(2)])
    >>> b = (["u2", "u1"], ["sad", "ang"], [np.ones(2), np.zeros(2)])
    >>> ids, labels, rows, disagreements = merge_rank_rows([a, b])
    >>> ids, labels, disagreements
    (['u1', 'u2', 'u3'], ['ang', 'sad', 'sad'], [])
    """
    ids, labels, rows, disagreements, seen = [], [], [], [], {}
    longest = max((len(part[0]) for part in parts), default=0)
    for position in range(longest):
        for part_ids, part_labels, part_rows in parts:
            if position >= len(part_ids):
                continue
            utt_id, row = part_ids[position], np.asarray(part_rows[position])
            if utt_id in seen:
                kept = rows[seen[utt_id]]
                if kept.shape != row.shape or not np.allclose(kept, row, atol=RANK_TOLERANCE, rtol=0):
                    disagreements.append(utt_id)
                continue
            seen[utt_id] = len(ids)
            ids.append(utt_id)
            labels.append(part_labels[position])
            rows.append(row)
    return ids, labels, rows, disagreements


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
        self.synchronized = True  # nothing appended yet

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
        self.synchronized = False

    def synchronize(self):
        """Under DDP, replaces this process's rows by the rows of all processes, each
        utterance once (:func:`merge_rank_rows`). A collective call: every process must make
        it (:meth:`metrics` and :meth:`write_results` do), the same number of times. Does
        nothing without DDP, or when nothing was appended since the last call."""
        if self.synchronized:
            return
        self.synchronized = True
        if _world_size() == 1:
            return
        local = (list(self.ids), list(self.labels), list(self.log_posteriors()))
        parts = [None] * _world_size()
        torch.distributed.all_gather_object(parts, local)
        self.ids, self.labels, rows, disagreements = merge_rank_rows(parts)
        self.rows = [np.stack(rows)] if rows else []
        if disagreements:
            logger.warning(
                "%d utterances got other scores on another process (beyond %g), rank 0's kept: %s",
                len(disagreements), RANK_TOLERANCE, ", ".join(disagreements[:5]),
            )

    def log_posteriors(self):
        """All appended log-posteriors as one ``(N, C)`` array."""
        return np.concatenate(self.rows) if self.rows else np.zeros((0, len(self.classes)))

    def metrics(self):
        """WA, UA, per-class recall and confusion counts of the argmax decisions (of all
        processes' utterances, under DDP)."""
        self.synchronize()
        index = {name: i for i, name in enumerate(self.classes)}
        truth = [index[label] for label in self.labels]
        predicted = self.log_posteriors().argmax(axis=1)
        return summarize_confusion(
            confusion_matrix(truth, predicted, len(self.classes)), self.classes
        )

    def write_results(self, output_folder, split, title=""):
        """Writes the score file, the metrics JSON and the confusion PNG of ``split``.

        Under DDP every process must call it: the rows of all processes are merged, and the
        main process alone writes, while the others wait. Returns the metrics dict (on every
        process).
        """
        self.synchronize()
        if not self.ids:
            raise ValueError(f"no utterance was evaluated on the {split} split")
        metrics = self.metrics()
        metrics["classes"] = self.classes
        if _is_main_process():
            self._write(output_folder, split, metrics, title)
        ddp_barrier()  # under DDP, the files exist for every process after the call
        return metrics

    def _write(self, output_folder, split, metrics, title):
        """The files of :meth:`write_results` (main process)."""
        write_scores(
            os.path.join(output_folder, "scores", f"{split}.csv"),
            self.ids, self.labels, self.log_posteriors(), self.classes,
        )
        atomic_write_json(os.path.join(output_folder, f"metrics_{split}.json"), metrics)
        plot_confusion_matrix(
            metrics["confusion"], self.classes,
            os.path.join(output_folder, f"confusion_{split}.png"),
            title or f"{split}: UA {metrics['UA']:.1f} %, WA {metrics['WA']:.1f} %",
        )
