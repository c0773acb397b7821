#!/usr/bin/env python3
"""The whole experiment: leave-one-session-out over IEMOCAP for speech (linear probing and
fine-tuning), text and their fusions, then a Table-2-style report.

    python recipes/loso.py hparams/loso.yaml --data_folder <IEMOCAP_full_release> \\
        --pretrained_encoder results/speaker/encoder --output_folder results/loso [--jobs 2]

With ``speaker_data_folder`` set instead of ``pretrained_encoder``, the speaker encoder is
pretrained first (``recipes/train_speaker.py``). Every fold of every system runs as its own
recipe process, so folds can run in parallel (``--jobs N``). SpeechBrain's run options given
here (``--device``, ``--precision``, ``--eval_precision``, ``--debug``, ...) reach every job.

Each job records what defines it in ``job.json`` (see mmer_lobes.jobs): a rerun reuses a
finished job only when that record is unchanged, resumes an interrupted one, and reruns a
changed one from scratch, with every job that depends on it. Writes under the output folder:
``log.txt`` (the job list and what was reused or rerun), ``report.md``, ``results.json`` and
``confusion_<system>.png``. A failing job stops the run with one line naming its log.
"""
import json
import logging
import os
import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml

from data_prep.iemocap_prepare import IemocapPrepError, prepare_iemocap
from mmer_lobes.files import atomic_write_json, atomic_write_text
from mmer_lobes.folds import FoldError
from mmer_lobes.jobs import Job, JobError, run_jobs, run_option_args
from mmer_lobes.metrics import plot_confusion_matrix
from mmer_lobes.report import render_report, subset_confusions, summarize_subsets, summarize_systems
from mmer_lobes.scores import ScoreFileError, read_scores

logger = logging.getLogger(__name__)
RECIPES = os.path.dirname(os.path.abspath(__file__))


def build_jobs(hparams, run_args=()):
    """The speaker, fold and fusion jobs of the experiment, each given ``run_args``."""
    out = hparams["output_folder"]

    def job(name, script, hparams_key, overrides, folder, done_files, depends_on=()):
        hparams_file = hparams[hparams_key]
        if not os.path.isfile(hparams_file):
            # Relative to the repository when not found from the current folder.
            hparams_file = os.path.join(os.path.dirname(RECIPES), hparams_file)
        return Job(name, os.path.join(RECIPES, script), hparams_file, overrides, folder,
                   done_files, run_args, depends_on)

    encoder = hparams["pretrained_encoder"]
    speaker_jobs = []
    if not encoder:
        if not hparams["speaker_data_folder"]:
            raise SystemExit("loso.py: error: set pretrained_encoder, or speaker_data_folder to pretrain one")
        speaker_folder = os.path.join(out, "speaker")
        speaker_jobs.append(job(
            "speaker pretraining", "train_speaker.py", "speaker_hparams",
            {"data_folder": hparams["speaker_data_folder"], **hparams["speaker_overrides"]},
            speaker_folder, ["verification.json", "encoder/encoder.ckpt"],
        ))
        encoder = os.path.join(speaker_folder, "encoder")
    # The fold definition goes to both modalities, so their hold-out sets (which fusion is
    # trained on) are the same utterances.
    common = {"data_folder": hparams["data_folder"], "manifest_folder": hparams["manifest_folder"],
              "skip_prep": True, "sessions": hparams["sessions"], "emotions": hparams["emotions"],
              "holdout": hparams["holdout"], "holdout_share": hparams["holdout_share"],
              "fold_seed": hparams["fold_seed"]}
    fold_jobs, fusion_jobs = [], []
    for session in hparams["test_sessions"]:
        speech = {}
        for mode in hparams["speech_modes"]:
            speech[mode] = job(
                f"speech_{mode} fold {session}", "train.py", "speech_hparams",
                {**common, "test_session": session, "mode": mode, "pretrained_encoder": encoder,
                 **hparams["speech_overrides"]},
                os.path.join(out, f"speech_{mode}", f"fold{session}"), ["metrics_test.json"],
                depends_on=speaker_jobs,
            )
        text = job(
            f"text fold {session}", "train_text.py", "text_hparams",
            {**common, "test_session": session, **hparams["text_overrides"]},
            os.path.join(out, "text", f"fold{session}"), ["metrics_test.json"],
        )
        fold_jobs += [*speech.values(), text]
        fused_speech = speech[hparams["fusion_speech_mode"]]
        fusion_jobs.append(job(
            f"fusion fold {session}", "fuse.py", "fusion_hparams",
            {"speech_folder": fused_speech.output_folder, "text_folder": text.output_folder,
             **hparams["fusion_overrides"]},
            os.path.join(out, "fusion", f"fold{session}"),
            [f"{method}/metrics_test.json" for method in hparams["fusion_methods"]],
            depends_on=[fused_speech, text],
        ))
    return speaker_jobs, fold_jobs, fusion_jobs


def system_folders(hparams):
    """``{system: {fold: folder}}`` of every system's fold results."""
    out, sessions = hparams["output_folder"], hparams["test_sessions"]
    folders = {f"speech_{mode}": {str(s): os.path.join(out, f"speech_{mode}", f"fold{s}") for s in sessions}
               for mode in hparams["speech_modes"]}
    folders["text"] = {str(s): os.path.join(out, "text", f"fold{s}") for s in sessions}
    for method in hparams["fusion_methods"]:
        folders[f"fusion_{method}"] = {str(s): os.path.join(out, "fusion", f"fold{s}", method) for s in sessions}
    return folders


def collect_fold_metrics(hparams):
    """``{system: {fold: metrics}}`` read from every finished fold."""
    return {system: {fold: _read_json(os.path.join(folder, "metrics_test.json"))
                     for fold, folder in folds.items()}
            for system, folds in system_folders(hparams).items()}


def collect_subset_confusions(hparams):
    """``{system: {fold: {"improvised"|"scripted": confusion}}}`` from every system's test
    scores and the fold's test manifest; systems whose manifests lack ``improvised`` are
    left out."""
    manifests = {fold: _read_json(os.path.join(folder, "fold", "test.json"))
                 for fold, folder in system_folders(hparams)["text"].items()}
    confusions = {}
    for system, folds in system_folders(hparams).items():
        per_fold = {fold: subset_confusions(read_scores(os.path.join(folder, "scores", "test.csv")),
                                            manifests[fold])
                    for fold, folder in folds.items()}
        if all(value is not None for value in per_fold.values()):
            confusions[system] = per_fold
    return confusions


def _read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_report(hparams, fold_metrics, subset_confusions_by_system):
    """Writes results.json, report.md and the pooled confusion PNGs; returns the report."""
    out = hparams["output_folder"]
    results = summarize_systems(fold_metrics)
    for system, confusions in subset_confusions_by_system.items():
        results["systems"][system]["subsets"] = summarize_subsets(confusions)
    results["classes"] = hparams["emotions"]
    results["paper"] = hparams["paper_results"]
    atomic_write_json(os.path.join(out, "results.json"), results)
    for system, entry in results["systems"].items():
        pooled = entry["pooled"]
        plot_confusion_matrix(
            pooled["confusion"], hparams["emotions"], os.path.join(out, f"confusion_{system}.png"),
            f"{system}: pooled UA {pooled['UA']:.1f} %, WA {pooled['WA']:.1f} %",
        )
    report = render_report(results, hparams["emotions"], hparams["paper_results"],
                           hparams["report_title"], hparams["report_notes"])
    atomic_write_text(os.path.join(out, "report.md"), report)
    return report


def log_to_file(path):
    """Sends this run's log (job list, what was reused or rerun) to the console and ``path``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger().addHandler(handler)


def main(argv):
    """Runs every job of the experiment that is not finished with the same definition, then
    reports."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    os.makedirs(hparams["output_folder"], exist_ok=True)
    log_to_file(os.path.join(hparams["output_folder"], "log.txt"))
    logger.info("loso.py %s", " ".join(argv))
    prepare_iemocap(hparams["data_folder"], hparams["manifest_folder"], sessions=hparams["sessions"])
    run_args = run_option_args(run_opts)
    speaker_jobs, fold_jobs, fusion_jobs = build_jobs(hparams, run_args)
    logger.info("Jobs (SpeechBrain run options forwarded to each: %s):", " ".join(run_args) or "none")
    for job in speaker_jobs + fold_jobs + fusion_jobs:
        logger.info("  %s [%s]: %s", job.name, job.state(), " ".join(job.command))
    run_jobs(speaker_jobs, 1, "speaker pretraining")
    run_jobs(fold_jobs, hparams["jobs"], "speech and text folds")
    run_jobs(fusion_jobs, hparams["jobs"], "fusion")
    report = write_report(hparams, collect_fold_metrics(hparams), collect_subset_confusions(hparams))
    print(report)
    logger.info("Report written to %s", os.path.join(hparams["output_folder"], "report.md"))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (JobError, IemocapPrepError, FoldError, ScoreFileError) as error:
        # One line naming the job and its log, not a traceback of the runner.
        sys.exit(f"loso.py: error: {error}")
