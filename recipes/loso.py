#!/usr/bin/env python3
"""The whole experiment: leave-one-session-out over IEMOCAP for speech (linear probing and
fine-tuning), text and their fusions, then a Table-2-style report.

    python recipes/loso.py hparams/loso.yaml --data_folder <IEMOCAP_full_release> \\
        --pretrained_encoder results/speaker/encoder --output_folder results/loso [--jobs 2]

With ``speaker_data_folder`` set instead of ``pretrained_encoder``, the speaker encoder is
pretrained first (``recipes/train_speaker.py``). Every fold of every system runs as its own
recipe process, so folds can run in parallel (``--jobs N``) and a finished fold (its
``metrics_test.json`` exists) is never run again. Writes under the output folder:
``report.md``, ``results.json`` and ``confusion_<system>.png``.
"""
import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml
import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from tqdm import tqdm

from data_prep.iemocap_prepare import prepare_iemocap
from mmer_lobes.files import atomic_write_json, atomic_write_text
from mmer_lobes.metrics import plot_confusion_matrix
from mmer_lobes.report import render_report, summarize_systems

logger = logging.getLogger(__name__)
RECIPES = os.path.dirname(os.path.abspath(__file__))


class Job:
    """One recipe run: a command, the folder it writes, and the files that mark it done."""

    def __init__(self, name, script, hparams_file, overrides, output_folder, done_files):
        self.name = name
        self.output_folder = output_folder
        self.done_files = [os.path.join(output_folder, f) for f in done_files]
        if not os.path.isfile(hparams_file):
            # Relative to the repository when not found from the current folder.
            hparams_file = os.path.join(os.path.dirname(RECIPES), hparams_file)
        self.command = [sys.executable, os.path.join(RECIPES, script), hparams_file]
        for key, value in overrides.items():
            self.command.append(f"--{key}={_yaml_value(value)}")
        self.command.append(f"--output_folder={output_folder}")

    def done(self):
        """True when every file that marks the job as finished exists."""
        return all(os.path.isfile(path) for path in self.done_files)


def _yaml_value(value):
    """A value as SpeechBrain's command-line overrides expect it (YAML flow style)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


def run_job(job, quiet, threads):
    """Runs a job unless done; ``quiet`` sends its output to ``<output_folder>/stdout.log``."""
    if job.done():
        return "skipped"
    os.makedirs(job.output_folder, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log_path = os.path.join(job.output_folder, "stdout.log")
    if quiet:
        with open(log_path, "w", encoding="utf-8") as log:
            code = subprocess.call(job.command, stdout=log, stderr=subprocess.STDOUT, env=env)
    else:
        print(f"\n=== {job.name} ===\n{' '.join(job.command)}", flush=True)
        code = subprocess.call(job.command, env=env)
    if code != 0:
        tail = ""
        if quiet:
            with open(log_path, encoding="utf-8", errors="replace") as log:
                tail = "".join(log.readlines()[-25:])
        raise RuntimeError(f"{job.name} failed with exit code {code}: {' '.join(job.command)}\n{tail}")
    if not job.done():
        raise RuntimeError(f"{job.name} exited without writing {job.done_files}")
    return "ran"


def run_phase(jobs, n_jobs, description):
    """Runs jobs one after another (live output) or ``n_jobs`` at a time (logged output)."""
    pending = [job for job in jobs if not job.done()]
    for job in jobs:
        if job.done():
            logger.info("%s: already finished, not run again", job.name)
    if not pending:
        return
    threads = max(1, (os.cpu_count() or 1) // max(1, n_jobs))
    with tqdm(total=len(pending), desc=description, dynamic_ncols=True) as progress:
        if n_jobs <= 1:
            for job in pending:
                run_job(job, quiet=False, threads=threads)
                progress.update(1)
            return
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            futures = {pool.submit(run_job, job, True, threads): job for job in pending}
            for future in futures:
                future.result()
                progress.set_postfix_str(futures[future].name)
                progress.update(1)


def build_jobs(hparams):
    """The speaker, fold and fusion jobs of the experiment."""
    out = hparams["output_folder"]
    encoder = hparams["pretrained_encoder"]
    speaker_jobs = []
    if not encoder:
        if not hparams["speaker_data_folder"]:
            raise SystemExit("error: set pretrained_encoder, or speaker_data_folder to pretrain one")
        speaker_folder = os.path.join(out, "speaker")
        speaker_jobs.append(Job(
            "speaker pretraining", "train_speaker.py", hparams["speaker_hparams"],
            {"data_folder": hparams["speaker_data_folder"], **hparams["speaker_overrides"]},
            speaker_folder, ["verification.json", "encoder/encoder.ckpt"],
        ))
        encoder = os.path.join(speaker_folder, "encoder")
    # The fold definition goes to both modalities, so their hold-out sets (which fusion is
    # trained on) are the same utterances.
    common = {"data_folder": hparams["data_folder"], "manifest_folder": hparams["manifest_folder"],
              "skip_prep": True, "holdout": hparams["holdout"], "holdout_share": hparams["holdout_share"],
              "fold_seed": hparams["fold_seed"]}
    fold_jobs, fusion_jobs = [], []
    for session in hparams["test_sessions"]:
        for mode in hparams["speech_modes"]:
            fold_jobs.append(Job(
                f"speech_{mode} fold {session}", "train.py", hparams["speech_hparams"],
                {**common, "test_session": session, "mode": mode, "pretrained_encoder": encoder,
                 **hparams["speech_overrides"]},
                os.path.join(out, f"speech_{mode}", f"fold{session}"), ["metrics_test.json"],
            ))
        fold_jobs.append(Job(
            f"text fold {session}", "train_text.py", hparams["text_hparams"],
            {**common, "test_session": session, **hparams["text_overrides"]},
            os.path.join(out, "text", f"fold{session}"), ["metrics_test.json"],
        ))
        fusion_jobs.append(Job(
            f"fusion fold {session}", "fuse.py", hparams["fusion_hparams"],
            {"speech_folder": os.path.join(out, f"speech_{hparams['fusion_speech_mode']}", f"fold{session}"),
             "text_folder": os.path.join(out, "text", f"fold{session}"), **hparams["fusion_overrides"]},
            os.path.join(out, "fusion", f"fold{session}"),
            [f"{method}/metrics_test.json" for method in hparams["fusion_methods"]],
        ))
    return speaker_jobs, fold_jobs, fusion_jobs


def collect_fold_metrics(hparams):
    """``{system: {fold: metrics}}`` read from every finished fold."""
    out = hparams["output_folder"]
    folders = {f"speech_{mode}": os.path.join(out, f"speech_{mode}") for mode in hparams["speech_modes"]}
    folders["text"] = os.path.join(out, "text")
    metrics = {}
    for system, folder in folders.items():
        metrics[system] = {str(s): _read_json(os.path.join(folder, f"fold{s}", "metrics_test.json"))
                           for s in hparams["test_sessions"]}
    for method in hparams["fusion_methods"]:
        metrics[f"fusion_{method}"] = {
            str(s): _read_json(os.path.join(out, "fusion", f"fold{s}", method, "metrics_test.json"))
            for s in hparams["test_sessions"]
        }
    return metrics


def _read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_report(hparams, fold_metrics):
    """Writes results.json, report.md and the pooled confusion PNGs; returns the report."""
    out = hparams["output_folder"]
    results = summarize_systems(fold_metrics)
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


def main():
    """Runs every job of the experiment that is not finished yet, then reports."""
    hparams_file, _, overrides = sb.parse_arguments(sys.argv[1:])
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.makedirs(hparams["output_folder"], exist_ok=True)
    prepare_iemocap(hparams["data_folder"], hparams["manifest_folder"])
    speaker_jobs, fold_jobs, fusion_jobs = build_jobs(hparams)
    run_phase(speaker_jobs, 1, "speaker pretraining")
    run_phase(fold_jobs, hparams["jobs"], "speech and text folds")
    run_phase(fusion_jobs, hparams["jobs"], "fusion")
    report = write_report(hparams, collect_fold_metrics(hparams))
    print(report)
    print(f"Report written to {os.path.join(hparams['output_folder'], 'report.md')}")


if __name__ == "__main__":
    main()
