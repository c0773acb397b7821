#!/usr/bin/env python3
"""Speech emotion recognition on one fold of a prepared corpus (IEMOCAP by default, one
session left out), by transfer from the ResNet34 speaker encoder (scratch, linear probing or
fine-tuning).

    python recipes/train.py hparams/resnet_ser.yaml --data_folder <IEMOCAP_full_release> \\
        --test_fold 5 --mode finetune --pretrained_encoder results/speaker/encoder \\
        --output_folder results/ser/fold5

Trains on random chunks with SpecAugment copies, selects the checkpoint with the lowest
hold-out error, evaluates whole segments of the hold-out and test sets, and writes the score
files, UA/WA and confusion matrices (see mmer_lobes.evaluation). A killed run resumes.

On several processes (DDP; on CPUs add ``--distributed_backend gloo``)::

    torchrun --nproc_per_node=2 recipes/train.py hparams/resnet_ser.yaml ...

each process trains on its share of every epoch; every process scores the whole hold-out and
test sets (SpeechBrain does not shard them) and the main process alone writes the files.

Bad input (a corpus, fold, label encoder, audio file or pretrained encoder that cannot be
used; a mode without its encoder) ends the run with one line, ``train.py: error: <message>``,
and exit status 2 (mmer_lobes.errors.run_script).
"""
import logging
import os
import sys

import torch
import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import ddp_init_group, run_on_main

from mmer_lobes.audio import audio_pipeline
from mmer_lobes.batching import eval_loader_options
from mmer_lobes.distributed import CpuDistributedBrain
from mmer_lobes.encoder_folders import DEFINITION_FILE, check_encoder_overrides
from mmer_lobes.errors import ProjectError, run_script
from mmer_lobes.evaluation import ScoreCollector
from mmer_lobes.files import atomic_write_text
from mmer_lobes.folds import fold_dataset, prepare_recipe_fold, rename_legacy_overrides
from mmer_lobes.hparams_files import parse_yaml_tree
from mmer_lobes.kaldi_features import features_and_lengths
from mmer_lobes.labels import load_label_encoder
from mmer_lobes.resnet import count_parameters
from mmer_lobes.transfer import load_pretrained_encoder, transfer_param_groups

logger = logging.getLogger(__name__)
# The keys that choose the template and its values: an encoder folder decides instead.
ENCODER_SETTINGS = ("encoder_values", "encoder_template", "features", "architecture")


class EmotionBrain(CpuDistributedBrain):
    """ResNet34 encoder + new FC layers, trained on emotion labels."""

    def compute_forward(self, batch, stage):
        """Log-mel -> (training view) -> encoder -> FC layers -> log-posteriors."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        feats, lens = features_and_lengths(self.hparams.compute_features, wavs, lens)
        feats = self.modules.mean_var_norm(feats, lens)
        if stage == sb.Stage.TRAIN:
            feats, lens = self.hparams.train_view(feats, lens)
        if self.hparams.mode == "linear_probe":
            # A frozen encoder keeps its batch-norm statistics too, and needs no graph.
            self.modules.encoder.eval()
            with torch.no_grad():
                pooled = self.modules.encoder(feats, lens)
        else:
            pooled = self.modules.encoder(feats, lens)
        # Log-posteriors in float32 under any --precision / --eval_precision (on a CPU,
        # autocast would leave a bf16 log-softmax, and the score files would keep its rounding).
        return self.hparams.log_softmax(self.modules.classifier(pooled).float())

    def compute_objectives(self, predictions, batch, stage):
        """Cross-entropy against the emotion labels; collects scores outside training."""
        emo, _ = batch.emo_encoded
        if stage == sb.Stage.TRAIN:
            emo = self.hparams.train_view.replicate_labels(emo)
        loss = self.hparams.compute_cost(predictions, emo.squeeze(1))
        if stage != sb.Stage.TRAIN:
            self.error_metrics.append(batch.id, predictions.unsqueeze(1), emo)
            self.collector.append(batch.id, predictions, emo)
        return loss

    def init_optimizers(self):
        """One SGD optimizer whose parameter groups carry the mode's learning rates."""
        groups = transfer_param_groups(
            self.modules.encoder, self.modules.classifier, self.hparams.mode,
            head_lr=self.hparams.head_lr, encoder_lr=self.hparams.encoder_lr,
            scratch_lr=self.hparams.scratch_lr,
        )
        self.optimizer = self.opt_class(groups)
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def on_fit_start(self):
        """Applies the scheduled lr of the (possibly resumed) first epoch."""
        super().on_fit_start()
        self.hparams.lr_schedule(self.optimizer, self.hparams.epoch_counter.current + 1)

    def on_stage_start(self, stage, epoch=None):
        """Fresh error statistics and score collector for every evaluation pass."""
        if stage != sb.Stage.TRAIN:
            self.error_metrics = self.hparams.error_stats()
            self.collector = ScoreCollector(self.hparams.emotions)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs UA/WA, schedules the lr, checkpoints, and writes the evaluation results."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        metrics = self.collector.metrics()
        stats = {"loss": stage_loss, "error_rate": self.error_metrics.summarize("average"),
                 "UA": metrics["UA"], "WA": metrics["WA"]}
        if stage == sb.Stage.VALID:
            lrs = self.hparams.lr_schedule(self.optimizer, epoch + 1)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lrs[-1]},
                train_stats={"loss": self.train_loss}, valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(meta={"error_rate": stats["error_rate"]}, min_keys=["error_rate"])
        else:
            self.collector.write_results(self.hparams.output_folder, self.eval_split)
            self.hparams.train_logger.log_stats(
                stats_meta={"split": self.eval_split, "epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )


def dataio_prep(hparams, fold_paths):
    """Datasets of the fold's train / hold-out / test splits with audio and label pipelines."""
    label_encoder = load_label_encoder(
        os.path.join(hparams["save_folder"], "label_encoder.txt"), hparams["emotions"],
        hparams["label_encoder"],
    )

    @sb.utils.data_pipeline.takes("emo")
    @sb.utils.data_pipeline.provides("emo_encoded")
    def label_pipeline(emo):
        return label_encoder.encode_sequence_torch([emo])

    datasets = {}
    for split, path in fold_paths.items():
        datasets[split] = fold_dataset(
            path, hparams["data_folder"],
            [audio_pipeline(hparams["speech_encoder"]["sample_rate"]), label_pipeline], ["id", "sig", "emo_encoded"],
        )
    # Evaluation batches of similar durations waste less padding.
    for split in ("holdout", "test"):
        datasets[split] = datasets[split].filtered_sorted(sort_key="duration")
    return datasets


def main(argv=None):
    """Prepares the corpus, builds the fold, transfers the encoder, trains and evaluates.

    ``argv`` (default ``sys.argv[1:]``) is the recipe's command line. Bad input raises a
    :class:`~mmer_lobes.errors.ProjectError` (IemocapPrepError, FoldError, LabelOrderError,
    AudioError, EncoderMismatchError...)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    # Under torchrun (RANK and LOCAL_RANK set), joins the process group before any file is
    # written: run_on_main and the checkpointer need it. Nothing happens in a plain run.
    ddp_init_group(run_opts)
    overrides = rename_legacy_overrides(overrides)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    # An encoder folder defines the features and the architecture: refuse a flag against it.
    check_encoder_overrides(parse_yaml_tree(overrides or "{}") or {}, hparams["speech_encoder"],
                            [*hparams["encoder_values"], *ENCODER_SETTINGS])
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    if torch.distributed.is_initialized():
        logger.info("Distributed run: %d processes, %s backend", torch.distributed.get_world_size(),
                    torch.distributed.get_backend())
    # The encoder definition this fold used, for recipes/export.py and for the record.
    run_on_main(atomic_write_text, args=[os.path.join(hparams["output_folder"], DEFINITION_FILE),
                                         hparams["speech_encoder"].text])
    datasets = dataio_prep(hparams, prepare_recipe_fold(hparams, "speech"))

    mode = hparams["mode"]
    if mode != "scratch" and hparams["use_pretrained"]:
        if not hparams["pretrained_encoder"]:
            raise ProjectError(
                f"mode {mode} transfers a speaker encoder: pass --pretrained_encoder <encoder folder> "
                "(from recipes/train_speaker.py or mmer-import-encoder), or --use_pretrained False"
            )
        load_pretrained_encoder(hparams["encoder"], hparams["pretrained_encoder"],
                                os.path.join(hparams["save_folder"], "pretrained"))
    logger.info("Mode %s: encoder %d parameters, FC layers %d", mode,
                count_parameters(hparams["encoder"]), count_parameters(hparams["classifier"]))

    brain = EmotionBrain(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
        run_opts=run_opts, checkpointer=hparams["checkpointer"],
    )
    eval_opts = eval_loader_options(hparams, brain.device)
    logger.info("Evaluation batches of %d clips on %s", eval_opts["batch_size"], brain.device)
    brain.fit(
        brain.hparams.epoch_counter, datasets["train"], datasets["holdout"],
        train_loader_kwargs=hparams["train_dataloader_opts"], valid_loader_kwargs=eval_opts,
    )
    for split in ("holdout", "test"):
        brain.eval_split = split
        brain.evaluate(datasets[split], min_key="error_rate", test_loader_kwargs=eval_opts)


if __name__ == "__main__":
    # Bad input gets one clear line, not a traceback from deep inside the toolkit.
    sys.exit(run_script(main, "train.py"))
