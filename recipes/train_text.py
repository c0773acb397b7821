#!/usr/bin/env python3
r"""Text emotion recognition on one fold of a prepared corpus (IEMOCAP by default, one
session left out).

A pre-trained BERT-style encoder is fine-tuned with a new FC head on the transcripts
(Padi et al. 2022). The model with the lowest hold-out error is kept, and its
log-posteriors on the hold-out and test splits are written as score files for fusion.

Usage::

    python recipes/train_text.py hparams/bert_text.yaml \
        --data_folder /path/to/IEMOCAP_full_release --test_fold 5 \
        --output_folder results/text/fold5

Writes under ``output_folder``: ``manifests/`` (unless ``--manifest_folder`` points
elsewhere), ``fold/{train,holdout,test}.json``, ``save/`` (checkpoints: a killed run
resumes), ``train_log.txt``, ``label_encoder.txt``, and for each of ``holdout`` and
``test``: ``scores/<split>.csv``, ``metrics_<split>.json``, ``confusion_<split>.png``.

On several processes (DDP; on CPUs add ``--distributed_backend gloo``)::

    torchrun --nproc_per_node=2 recipes/train_text.py hparams/bert_text.yaml ...

each process fine-tunes on its share of every epoch; every process scores the whole hold-out
and test sets (SpeechBrain does not shard them) and the main process alone writes the files.

Bad input (a text model that cannot be loaded, a corpus or fold that cannot be built, a
reused label encoder in another order, ``n_classes`` unlike ``emotions``) ends the run with
one line, ``train_text.py: error: <message>``, and exit status 2
(mmer_lobes.errors.run_script).
"""
import logging
import os
import sys

import torch
from hyperpyyaml import load_hyperpyyaml

import speechbrain as sb
from speechbrain.utils.distributed import ddp_init_group

from mmer_lobes.errors import ProjectError, run_script
from mmer_lobes.evaluation import ScoreCollector
from mmer_lobes.folds import fold_dataset, prepare_recipe_fold, rename_legacy_overrides
from mmer_lobes.labels import load_label_encoder
from mmer_lobes.text import text_pipeline

logger = logging.getLogger(__name__)


class TextEmotionBrain(sb.Brain):
    """Fine-tunes the text classifier; scores the hold-out every epoch.

    ``eval_split`` names the split that :meth:`evaluate` is run on ("holdout" or "test"),
    so that the score files of the TEST stage get the right name.
    """

    eval_split = "test"

    def compute_forward(self, batch, stage):
        """Log-posteriors ``(batch, classes)`` of the padded token ids."""
        batch = batch.to(self.device)
        tokens, lengths = batch.tokens
        return self.modules.model(tokens, lengths)

    def compute_objectives(self, predictions, batch, stage):
        """NLL of the true class; outside training, also collects the scores."""
        labels, _ = batch.emo_encoded
        labels = labels.reshape(-1)
        loss = self.hparams.compute_cost(predictions, labels)
        if stage != sb.Stage.TRAIN:
            self.collector.append(batch.id, predictions, labels)
        return loss

    def on_fit_start(self):
        """Recovers the latest checkpoint (through the Brain) and says where training stands."""
        super().on_fit_start()
        counter = self.hparams.epoch_counter
        if counter.current >= counter.limit:
            logger.info(
                "Resumed from checkpoint: training already finished (epoch %d of %d); "
                "no epoch is run, going on to evaluation.", counter.current, counter.limit,
            )
        elif counter.current > 0:
            logger.info(
                "Resumed from checkpoint after epoch %d of %d.", counter.current, counter.limit
            )

    def on_stage_start(self, stage, epoch=None):
        """Starts a new score collector for hold-out and test passes."""
        if stage != sb.Stage.TRAIN:
            self.collector = ScoreCollector(self.hparams.classes)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs loss, UA and WA; checkpoints on the hold-out error; writes the results."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        metrics = self.collector.metrics()
        stats = {
            "loss": stage_loss,
            # A fraction, as SpeechBrain's MetricStats gives it (and the speech recipe).
            "error_rate": 1.0 - metrics["WA"] / 100.0,
            "UA": metrics["UA"],
            "WA": metrics["WA"],
        }
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]},
                train_stats={"loss": self.train_loss},
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"error_rate": stats["error_rate"]}, min_keys=["error_rate"]
            )
        elif stage == sb.Stage.TEST:
            self.collector.write_results(self.hparams.output_folder, self.eval_split)
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "split": self.eval_split,
                    "best epoch loaded": self.hparams.epoch_counter.current,
                },
                test_stats=stats,
            )


def dataio_prep(hparams, fold_paths):
    """Datasets of the fold's splits with the items ``tokens`` and ``emo_encoded``.

    Returns
    -------
    dict
        ``{"train", "holdout", "test"}`` of :class:`DynamicItemDataset`, and the label
        encoder under ``"label_encoder"``.
    """
    label_encoder = load_label_encoder(
        hparams["label_encoder_file"], hparams["emotions"], hparams["label_encoder"]
    )

    @sb.utils.data_pipeline.takes("emo")
    @sb.utils.data_pipeline.provides("emo_encoded")
    def label_pipeline(emo):
        """The class index of the emotion label."""
        return torch.LongTensor([label_encoder.encode_label(emo)])

    tokens_pipeline = text_pipeline(hparams["tokenizer"], hparams["max_length"])
    datasets = {}
    for split, path in fold_paths.items():
        datasets[split] = fold_dataset(path, hparams["data_folder"], [tokens_pipeline, label_pipeline],
                                       ["id", "tokens", "emo_encoded"])
    datasets["label_encoder"] = label_encoder
    return datasets


def main(argv=None):
    """Prepares the manifests and the fold, trains, and evaluates the best checkpoint.

    ``argv`` (default ``sys.argv[1:]``) is the recipe's command line. Bad input raises a
    :class:`~mmer_lobes.errors.ProjectError` (TextModelError, IemocapPrepError, CorpusError, FoldError,
    LabelOrderError...)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    # Under torchrun (RANK and LOCAL_RANK set), joins the process group before any file is
    # written: run_on_main and the checkpointer need it. Nothing happens in a plain run.
    ddp_init_group(run_opts)
    overrides = rename_legacy_overrides(overrides)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)  # a missing text model: TextModelError
    if hparams["n_classes"] != len(hparams["emotions"]):
        raise ProjectError(
            f"n_classes is {hparams['n_classes']} but emotions lists "
            f"{len(hparams['emotions'])} classes: {hparams['emotions']}"
        )

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    if torch.distributed.is_initialized():
        logger.info("Distributed run: %d processes, %s backend", torch.distributed.get_world_size(),
                    torch.distributed.get_backend())

    # The same call as the speech recipe's, so both modalities get the same splits.
    fold_paths = prepare_recipe_fold(hparams, "text")
    datasets = dataio_prep(hparams, fold_paths)
    label_encoder = datasets["label_encoder"]
    hparams["classes"] = [label_encoder.ind2lab[i] for i in range(len(label_encoder))]

    brain = TextEmotionBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["holdout"],
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["eval_dataloader_options"],
    )
    for split in ("holdout", "test"):
        brain.eval_split = split
        brain.evaluate(
            datasets[split],
            min_key="error_rate",
            test_loader_kwargs=hparams["eval_dataloader_options"],
        )


if __name__ == "__main__":
    sys.exit(run_script(main, "train_text.py"))
