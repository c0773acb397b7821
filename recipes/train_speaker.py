#!/usr/bin/env python3
"""Speaker-recognition pretraining of the paper's ResNet34 on VoxCeleb.

    python recipes/train_speaker.py hparams/resnet_speaker.yaml \\
        --data_folder <VoxCeleb1> --output_folder results/speaker

Trains speaker classification (AAM-softmax or softmax) on random chunks, validates on whole
utterances, then scores the trial list with cosine similarity of the 512-d embeddings and
writes EER / minDCF to ``<output_folder>/verification.json``. The encoder (ResNet trunk +
pooling) is written to the encoder folder ``<output_folder>/encoder`` (``encoder.yaml`` +
``encoder.ckpt``, :mod:`mmer_lobes.encoder_folders`) for ``recipes/train.py
--pretrained_encoder``. A killed run resumes from its last checkpoint.

On several processes (DDP; on CPUs add ``--distributed_backend gloo``)::

    torchrun --nproc_per_node=2 recipes/train_speaker.py hparams/resnet_speaker.yaml ...

each process trains on its share of every epoch and embeds the trial utterances; the main
process alone writes ``verification.json`` and the encoder folder.

Bad input (a VoxCeleb tree that cannot be prepared, an empty training manifest, an unreadable
audio file) ends the run with one line, ``train_speaker.py: error: <message>``, and exit
status 2 (mmer_lobes.errors.run_script).
"""
import logging
import os
import sys

import torch
import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import ddp_init_group, run_on_main
from speechbrain.utils.metric_stats import EER, minDCF
from tqdm import tqdm

from data_prep.voxceleb_prepare import VoxcelebPrepError, prepare_voxceleb
from mmer_lobes.audio import audio_pipeline
from mmer_lobes.batching import eval_loader_options
from mmer_lobes.distributed import CpuDistributedBrain, unwrap
from mmer_lobes.encoder_folders import write_encoder_folder
from mmer_lobes.errors import run_script
from mmer_lobes.files import atomic_write_json
from mmer_lobes.kaldi_features import features_and_lengths
from mmer_lobes.resnet import count_parameters

logger = logging.getLogger(__name__)


class SpeakerBrain(CpuDistributedBrain):
    """Speaker classification with the ResNet34 encoder."""

    def compute_forward(self, batch, stage):
        """Log-mel -> (training view) -> encoder -> speaker scores."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        feats, lens = features_and_lengths(self.hparams.compute_features, wavs, lens)
        feats = self.modules.mean_var_norm(feats, lens)
        if stage == sb.Stage.TRAIN:
            feats, lens = self.hparams.train_view(feats, lens)
        return self.modules.classifier(self.modules.encoder(feats, lens))

    def compute_objectives(self, predictions, batch, stage):
        """AAM-softmax or softmax loss against the speaker ids."""
        spk_id, _ = batch.spk_id_encoded
        if stage == sb.Stage.TRAIN:
            spk_id = self.hparams.train_view.replicate_labels(spk_id)
        loss = self.hparams.compute_cost(predictions.unsqueeze(1), spk_id)
        if stage != sb.Stage.TRAIN:
            self.error_metrics.append(batch.id, predictions.unsqueeze(1), spk_id)
        return loss

    def on_stage_start(self, stage, epoch=None):
        """Resets the error statistics of validation."""
        if stage != sb.Stage.TRAIN:
            self.error_metrics = self.hparams.error_stats()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, applies the lr schedule and checkpoints on validation error."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        error = self.error_metrics.summarize("average")
        if stage == sb.Stage.VALID:
            lrs = self.hparams.lr_schedule(self.optimizer, epoch + 1)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lrs[0]},
                train_stats={"loss": self.train_loss},
                valid_stats={"loss": stage_loss, "error_rate": error},
            )
            self.checkpointer.save_and_keep_only(
                meta={"error_rate": error}, min_keys=["error_rate"]
            )

    def on_fit_start(self):
        """Applies the scheduled lr of the (possibly resumed) first epoch."""
        super().on_fit_start()
        self.hparams.lr_schedule(self.optimizer, self.hparams.epoch_counter.current + 1)

    def embed(self, dataset):
        """512-d embeddings of every utterance of ``dataset`` (whole segments). Under DDP every
        process embeds them all, with the modules outside their DDP wrappers."""
        self.modules.eval()
        encoder, classifier = unwrap(self.modules.encoder), unwrap(self.modules.classifier)
        loader = sb.dataio.dataloader.make_dataloader(dataset, **eval_loader_options(self.hparams, self.device))
        embeddings = {}
        with torch.no_grad():
            for batch in tqdm(loader, desc="embedding trial utterances", dynamic_ncols=True,
                              disable=self.noprogressbar or not sb.utils.distributed.if_main_process()):
                batch = batch.to(self.device)
                wavs, lens = batch.sig
                feats, lens = features_and_lengths(self.hparams.compute_features, wavs, lens)
                feats = self.modules.mean_var_norm(feats, lens)
                vectors = classifier.embed(encoder(feats, lens))
                for utt_id, vector in zip(batch.id, vectors.cpu()):
                    embeddings[utt_id] = vector
        return embeddings


def dataio_prep(hparams):
    """Train / valid / trial datasets with the audio and speaker-label pipelines."""
    manifests = hparams["manifest_folder"]
    replacements = {"data_root": hparams["data_folder"]}
    segments = hparams["segment_seconds"] is not None
    datasets = {}
    for split in ("train", "valid", "test"):
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_json(
            os.path.join(manifests, f"{split}.json"), replacements=replacements
        )
    if len(datasets["train"]) == 0:
        raise VoxcelebPrepError(f"the training manifest {manifests}/train.json is empty")
    speaker_encoder = hparams["speaker_encoder"]

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label_pipeline(spk_id):
        return speaker_encoder.encode_sequence_torch([spk_id])

    for split in ("train", "valid"):
        sb.dataio.dataset.add_dynamic_item([datasets[split]], audio_pipeline(hparams["speech_encoder"]["sample_rate"], segments))
        sb.dataio.dataset.add_dynamic_item([datasets[split]], label_pipeline)
        sb.dataio.dataset.set_output_keys([datasets[split]], ["id", "sig", "spk_id_encoded"])
    sb.dataio.dataset.add_dynamic_item([datasets["test"]], audio_pipeline(hparams["speech_encoder"]["sample_rate"]))
    sb.dataio.dataset.set_output_keys([datasets["test"]], ["id", "sig"])
    # Evaluation batches of similar durations waste less padding.
    for split in ("valid", "test"):
        datasets[split] = datasets[split].filtered_sorted(sort_key="duration")
    speaker_encoder.load_or_create(
        path=os.path.join(hparams["save_folder"], "speaker_encoder.txt"),
        from_didatasets=[datasets["train"]],
        output_key="spk_id",
    )
    return datasets


def verification_scores(embeddings, trials_path):
    """Cosine scores of the trial list, split into target and non-target scores."""
    positives, negatives = [], []
    with open(trials_path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            label, enrol, test = line.split()
            score = torch.nn.functional.cosine_similarity(
                embeddings[enrol], embeddings[test], dim=0
            ).item()
            (positives if label == "1" else negatives).append(score)
    return torch.tensor(positives), torch.tensor(negatives)


def main(argv=None):
    """Prepares VoxCeleb, trains the speaker model, scores the trials, exports the encoder.

    ``argv`` (default ``sys.argv[1:]``) is the recipe's command line. Bad input raises a
    :class:`~mmer_lobes.errors.ProjectError` (VoxcelebPrepError, AudioError...)."""
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    # Under torchrun (RANK and LOCAL_RANK set), joins the process group before any file is
    # written: run_on_main and the checkpointer need it. Nothing happens in a plain run.
    ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    if torch.distributed.is_initialized():
        logger.info("Distributed run: %d processes, %s backend", torch.distributed.get_world_size(),
                    torch.distributed.get_backend())
    verification_file = hparams["verification_file"]
    if not hparams["skip_prep"]:
        run_on_main(
            prepare_voxceleb,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["manifest_folder"],
                "verification_pairs_file": verification_file,
                "split_ratio": (100 - hparams["valid_share"], hparams["valid_share"]),
                "seg_dur": hparams["segment_seconds"],
            },
        )
    datasets = dataio_prep(hparams)
    n_speakers = len(hparams["speaker_encoder"])
    modules = dict(hparams["modules"])
    modules["classifier"] = hparams["classifier"](n_classes=n_speakers)
    if modules["classifier"].cosine:
        # The cosine (AAM) output skips the PReLU: it never gets a gradient nor changes, but
        # DistributedDataParallel refuses a trained parameter outside the loss. Frozen, it is
        # left out of DDP's reduction; training and the checkpoint keys stay the same.
        modules["classifier"].activation.requires_grad_(False)
    hparams["checkpointer"].add_recoverable("classifier", modules["classifier"])
    if hparams["use_aam"]:
        compute_cost = sb.nnet.losses.LogSoftmaxWrapper(
            sb.nnet.losses.AdditiveAngularMargin(margin=hparams["aam_margin"], scale=hparams["aam_scale"])
        )
    else:
        compute_cost = sb.nnet.losses.LogSoftmaxWrapper(torch.nn.Identity())
    hparams["compute_cost"] = compute_cost
    logger.info(
        "ResNet encoder: %d parameters (convolutions), classifier: %d, speakers: %d",
        count_parameters(modules["encoder"]), count_parameters(modules["classifier"]), n_speakers,
    )

    brain = SpeakerBrain(
        modules=modules,
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_opts"],
        valid_loader_kwargs=eval_loader_options(hparams, brain.device),
    )

    # Verification and export use the checkpoint with the lowest validation error.
    brain.checkpointer.recover_if_possible(min_key="error_rate")
    embeddings = brain.embed(datasets["test"])
    positives, negatives = verification_scores(
        embeddings, os.path.join(hparams["manifest_folder"], "trials.txt")
    )
    eer, _ = EER(positives, negatives)
    min_dcf, _ = minDCF(
        positives, negatives,
        c_miss=hparams["dcf_c_miss"], c_fa=hparams["dcf_c_fa"], p_target=hparams["dcf_p_target"],
    )
    results = {
        "EER": 100.0 * float(eer),
        "minDCF": float(min_dcf),
        "target_trials": len(positives),
        "nontarget_trials": len(negatives),
        "p_target": hparams["dcf_p_target"],
    }
    # Files are written by the main process only (each DDP process reaches this point).
    run_on_main(atomic_write_json, args=[os.path.join(hparams["output_folder"], "verification.json"), results])
    logger.info("Verification: EER %.2f %%, minDCF %.4f", results["EER"], results["minDCF"])
    hparams["train_logger"].log_stats(
        stats_meta={"verification": "cosine"}, test_stats={"EER": results["EER"], "minDCF": results["minDCF"]}
    )
    # The encoder folder of recipes/train.py --pretrained_encoder: its definition and weights.
    folder = os.path.join(hparams["output_folder"], "encoder")
    run_on_main(write_encoder_folder, args=[folder, hparams["speech_encoder"].text, modules["encoder"].state_dict()],
                kwargs={"origin": f"the speaker encoder trained in {hparams['output_folder']}", "overwrite": True})
    logger.info("Encoder folder written to %s", folder)


if __name__ == "__main__":
    # Bad input gets one clear line, not a traceback from deep inside the toolkit.
    sys.exit(run_script(main, "train_speaker.py"))
