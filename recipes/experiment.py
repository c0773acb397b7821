#!/usr/bin/env python3
"""The whole experiment on any prepared corpus: every fold of its protocol for speech (linear
probing and fine-tuning), text and their fusions, then a report.

    python recipes/experiment.py hparams/loso.yaml --data_folder <IEMOCAP_full_release> \\
        --pretrained_encoder results/speaker/encoder --output_folder results/loso [--jobs 2]
    python recipes/experiment.py hparams/ravdess.yaml --data_folder <RAVDESS> \\
        --pretrained_encoder <encoder folder>

The experiment YAML names the corpus's prepare function (``prepare_corpus``, a dotted name,
with ``prepare_options``), the fold definition (protocol, label map, hold-out) and the
``modalities`` to run; fusion runs when both are. ``recipes/loso.py``, the name of this
script when it ran IEMOCAP only, runs it too.

The named baselines of ``baselines`` (openSMILE eGeMAPS + logistic regression for speech,
TF-IDF + logistic regression for text; ``recipes/train_baseline.py``) run on the same folds
for the modalities that run, and lead the report, so that every figure is read against a
baseline from the same run. ``report_metrics`` chooses the report's figures (UA, WA,
weighted F1).

With ``speaker_data_folder`` set instead of ``pretrained_encoder``, the speaker encoder is
pretrained first (``recipes/train_speaker.py``). Every fold of every system runs as its own
recipe process, so folds can run in parallel (``--jobs N``). SpeechBrain's run options given
here (``--device``, ``--precision``, ``--eval_precision``, ``--debug``, ...) reach every job.

Each job records what defines it in ``job.json`` (see mmer_lobes.jobs): a rerun reuses a
finished job only when that record is unchanged, resumes an interrupted one, and reruns a
changed one from scratch, with every job that depends on it. Writes under the output folder:
``log.txt`` (the job list and what was reused or rerun), ``report.md``, ``results.json`` and
``confusion_<system>.png``.

Errors end the run with one line on the console, ``experiment.py: error: <message>``,
recorded in ``log.txt`` too (once the output folder exists), and one of two exit codes:

* 2 (mmer_lobes.errors.EXIT_BAD_INPUT), bad input: the experiment cannot start or go on
  with what it was given (an ExperimentError, a corpus that cannot be prepared, a branch the
  corpus cannot train, a fold that cannot be built, a score file that cannot be read, a file
  that cannot be read or written). As for every script of the project
  (mmer_lobes.errors.run_script).
* 1 (EXIT_JOB_FAILED), a job failed: the inputs were accepted, and a recipe run failed or
  finished without its results. The line names the job and its log (``stdout.log``, which
  says why); the jobs that finished are reused by the next run. A distinct code, so that a
  caller can tell "fix the command" from "look at that job's log".
"""
import json
import logging
import os
import sys

import speechbrain as sb
import yaml
from hyperpyyaml import load_hyperpyyaml
from hyperpyyaml.core import recursive_update
import ruamel.yaml
from ruamel.yaml import YAML

from mmer_lobes.corpora import (CORPUS_FILE, check_modality, describe_protocol, fold_heading, fold_names,
                                fold_folder_name, load_corpus, prepare_corpus, MODALITIES)
from mmer_lobes.encoder_folders import DEFINITION_FILE, template_path
from mmer_lobes.errors import ProjectError, one_line, run_script
from mmer_lobes.files import atomic_write_json, atomic_write_text
from mmer_lobes.folds import rename_legacy_overrides
from mmer_lobes.hparams_files import read_yaml_file
from mmer_lobes.jobs import Job, JobError, run_jobs, run_option_args
from mmer_lobes.metrics import plot_confusion_matrix
from mmer_lobes.report import METRICS as REPORT_METRICS
from mmer_lobes.report import render_report, subset_confusions, summarize_subsets, summarize_systems
from mmer_lobes.scores import read_scores
from mmer_lobes.transfer import ENCODER_FILE

logger = logging.getLogger(__name__)
# Writes to log.txt only: errors that run_script prints on the console are recorded there.
file_logger = logging.getLogger(f"{__name__}.log_file")
file_logger.propagate = False
RECIPES = os.path.dirname(os.path.abspath(__file__))

# The exit code of a run stopped by a failing job (bad input exits with EXIT_BAD_INPUT, 2).
EXIT_JOB_FAILED = 1


class ExperimentError(ProjectError, ValueError):
    """The experiment YAML asks for something that cannot be run."""


# The fold definition (hparams/folds.yaml) every fold job gets.
FOLD_KEYS = ("emotions", "label_map", "protocol", "n_folds", "holdout", "holdout_share", "fold_seed")
# What else every fold job gets from the experiment, the same for both modalities.
JOB_KEYS = ("data_folder", "manifest_folder", "skip_prep", "test_fold")
# Folders given to the jobs: made absolute, so that "results/x/", "./results/x" and the
# absolute path name the same job (a job's definition holds its overrides).
PATH_KEYS = ("data_folder", "manifest_folder", "output_folder", "pretrained_encoder", "speaker_data_folder")


def build_jobs(hparams, corpus, run_args=()):
    """The speaker, fold and fusion jobs of the experiment on ``corpus`` (its
    ``corpus.json``), each given ``run_args``, and ``{system: {fold: folder}}`` of the folders
    that hold every system's fold results."""
    hparams = {**hparams, **{k: os.path.abspath(hparams[k]) for k in PATH_KEYS if hparams.get(k)}}
    out = hparams["output_folder"]
    modalities = list(hparams["modalities"])
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise ExperimentError(f"modalities must be some of {list(MODALITIES)}, got {hparams['modalities']}")
    for system in ("speech", "text", "baseline"):  # every job must cut every fold the same way
        shared = sorted(set(hparams[f"{system}_overrides"]) & {*FOLD_KEYS, *JOB_KEYS})
        if shared:
            raise ExperimentError(f"{system}_overrides sets {', '.join(shared)}, which every fold job shares: "
                                  "set it at the top level of the experiment")
    for modality in modalities:
        check_modality(corpus, modality)
    metrics = hparams["report_metrics"]
    if not isinstance(metrics, list) or not metrics or any(m not in REPORT_METRICS for m in metrics):
        raise ExperimentError(f"report_metrics must be a list of some of {list(REPORT_METRICS)}, got {metrics!r}")
    speech_modes = hparams["speech_modes"] if "speech" in modalities else []
    if "speech" in modalities and not speech_modes:
        raise ExperimentError("speech_modes is empty: name at least one of scratch, linear_probe, finetune, or "
                              "drop speech from modalities")
    fused = "speech" in modalities and "text" in modalities
    if fused and hparams["fusion_speech_mode"] not in speech_modes:
        raise ExperimentError(f"fusion_speech_mode {hparams['fusion_speech_mode']!r} is not one of "
                              f"speech_modes {speech_modes}")
    folds = fold_names(corpus, hparams["protocol"], hparams["n_folds"])
    test_folds = folds if hparams["test_folds"] is None else [str(f) for f in hparams["test_folds"]]
    if len({fold_folder_name(f) for f in test_folds}) < len(test_folds):
        raise ExperimentError(f"the folds {test_folds} do not give distinct folder names "
                              f"({[fold_folder_name(f) for f in test_folds]}): rename the corpus's groups")
    unknown = [f for f in test_folds if f not in folds]
    if unknown:
        raise ExperimentError(f"test_folds {unknown} are not folds of "
                              f"{describe_protocol(corpus, hparams['protocol'], hparams['n_folds'])}: {folds}")

    def job(name, script, yaml_file, overrides, folder, done_files, depends_on=(), input_files=()):
        # Relative to the repository when not found from the current folder.
        hparams_file = yaml_file if os.path.isfile(yaml_file) else os.path.join(os.path.dirname(RECIPES), yaml_file)
        if not os.path.isfile(hparams_file):
            raise ExperimentError(f"{name}: no such YAML file: {yaml_file}")
        return Job(name, os.path.join(RECIPES, script), hparams_file, overrides, folder,
                   done_files, run_args, depends_on, input_files)

    encoder, encoder_files = hparams.get("pretrained_encoder"), []
    speaker_jobs = []
    if all(mode == "scratch" for mode in speech_modes):
        encoder = None  # nothing to transfer
    elif encoder:  # an encoder folder: its definition and its weights
        encoder_files = [os.path.join(encoder, name) for name in (DEFINITION_FILE, ENCODER_FILE)]
        missing = [os.path.basename(path) for path in encoder_files if not os.path.isfile(path)]
        if missing:
            raise ExperimentError(f"pretrained_encoder {encoder} holds no {' or '.join(missing)}: an encoder "
                                  "folder is written by recipes/train_speaker.py or mmer-import-encoder")
    else:
        if not hparams["speaker_data_folder"]:
            raise ExperimentError("set pretrained_encoder, or speaker_data_folder to pretrain one")
        speaker_folder = os.path.join(out, "speaker")
        speaker_hparams = hparams["speaker_hparams"]
        if not os.path.isfile(speaker_hparams):
            speaker_hparams = os.path.join(os.path.dirname(RECIPES), speaker_hparams)
        # The recipe loads its encoder template at run time (not an include): a change of it
        # changes the job too.
        template = hparams["speaker_overrides"].get("encoder_template") or \
            read_yaml_file(speaker_hparams).get("encoder_template", "paper_resnet34")
        speaker_jobs.append(job(
            "speaker pretraining", "train_speaker.py", hparams["speaker_hparams"],
            {"data_folder": hparams["speaker_data_folder"], **hparams["speaker_overrides"]},
            speaker_folder, ["verification.json", f"encoder/{DEFINITION_FILE}", f"encoder/{ENCODER_FILE}"],
            input_files=[template_path(template)],
        ))
        encoder = os.path.join(speaker_folder, "encoder")
    # The fold definition goes to both modalities, so their hold-out sets (which fusion is
    # trained on) are the same utterances.
    common = {"data_folder": hparams["data_folder"], "manifest_folder": hparams["manifest_folder"],
              "skip_prep": True, **{key: hparams[key] for key in FOLD_KEYS}}
    manifests = [os.path.join(hparams["manifest_folder"], name)
                 for name in (CORPUS_FILE, *corpus["groups"].values())]
    baselines = baseline_modalities(hparams["baselines"], modalities)
    fold_jobs, fusion_jobs, folders = [], [], {}
    for fold in test_folds:
        for name, (yaml_file, modality) in baselines.items():  # first: the report's first rows
            baseline = job(
                f"{name} fold {fold}", "train_baseline.py", yaml_file,
                {**common, "test_fold": fold, **hparams["baseline_overrides"]},
                os.path.join(out, name, fold_folder_name(fold)), ["metrics_test.json"], input_files=manifests,
            )
            folders.setdefault(name, {})[fold] = baseline.output_folder
            fold_jobs.append(baseline)
        speech = {}
        for mode in speech_modes:
            speech[mode] = job(
                f"speech_{mode} fold {fold}", "train.py", hparams["speech_hparams"],
                {**common, "test_fold": fold, "mode": mode, "pretrained_encoder": encoder,
                 **hparams["speech_overrides"]},
                os.path.join(out, f"speech_{mode}", fold_folder_name(fold)), ["metrics_test.json"],
                depends_on=speaker_jobs, input_files=manifests + encoder_files,
            )
            folders.setdefault(f"speech_{mode}", {})[fold] = speech[mode].output_folder
        fold_jobs += speech.values()
        if "text" in modalities:
            text = job(
                f"text fold {fold}", "train_text.py", hparams["text_hparams"],
                {**common, "test_fold": fold, **hparams["text_overrides"]},
                os.path.join(out, "text", fold_folder_name(fold)), ["metrics_test.json"],
                input_files=manifests,
            )
            folders.setdefault("text", {})[fold] = text.output_folder
            fold_jobs.append(text)
        if fused:
            fused_speech = speech[hparams["fusion_speech_mode"]]
            fusion = job(
                f"fusion fold {fold}", "fuse.py", hparams["fusion_hparams"],
                {"speech_folder": fused_speech.output_folder, "text_folder": text.output_folder,
                 **hparams["fusion_overrides"]},
                os.path.join(out, "fusion", fold_folder_name(fold)),
                [f"{method}/metrics_test.json" for method in hparams["fusion_methods"]],
                depends_on=[fused_speech, text],
            )
            fusion_jobs.append(fusion)
            for method in hparams["fusion_methods"]:
                folders.setdefault(f"fusion_{method}", {})[fold] = os.path.join(fusion.output_folder, method)
    return speaker_jobs, fold_jobs, fusion_jobs, folders


def baseline_modalities(baseline_files, modalities):
    """``{system name: (YAML file, modality)}`` of the baselines (recipes/train_baseline.py
    YAMLs) whose modality runs; a system is named after its file (``baseline_egemaps``)."""
    baselines, names = {}, set()
    for yaml_file in baseline_files or []:
        path = yaml_file if os.path.isfile(yaml_file) else os.path.join(os.path.dirname(RECIPES), yaml_file)
        if not os.path.isfile(path):
            raise ExperimentError(f"baselines: no such YAML file: {yaml_file}")
        modality = read_yaml_file(path).get("modality")
        if modality not in MODALITIES:
            raise ExperimentError(f"baselines: {yaml_file} names no modality (speech or text) of a baseline")
        name = os.path.splitext(os.path.basename(yaml_file))[0]
        if name in names:
            raise ExperimentError(f"baselines: two files are named {name}")
        if name in ("speaker", "text") or name.startswith(("speech_", "fusion")):
            raise ExperimentError(f"baselines: {yaml_file} would share its folders with the {name} system: rename it")
        names.add(name)
        if modality in modalities:
            baselines[name] = (yaml_file, modality)
    return baselines


def collect_fold_metrics(folders):
    """``{system: {fold: metrics}}`` read from every finished fold."""
    return {system: {fold: _read_json(os.path.join(folder, "metrics_test.json"))
                     for fold, folder in per_fold.items()}
            for system, per_fold in folders.items()}


def collect_subset_confusions(folders):
    """``{system: {fold: {"improvised"|"scripted": confusion}}}`` from every system's test
    scores and the fold's test manifest; systems whose manifests lack ``improvised`` are
    left out."""
    # Every speech and text job writes the same fold; fusion folders hold none.
    with_fold = next(system for system in folders if not system.startswith("fusion_"))
    manifests = {fold: _read_json(os.path.join(folder, "fold", "test.json"))
                 for fold, folder in folders[with_fold].items()}
    confusions = {}
    for system, per_fold in folders.items():
        by_fold = {fold: subset_confusions(read_scores(os.path.join(folder, "scores", "test.csv")),
                                           manifests[fold])
                   for fold, folder in per_fold.items()}
        if all(value is not None for value in by_fold.values()):
            confusions[system] = by_fold
    return confusions


def _read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_report(hparams, corpus, fold_metrics, subset_confusions_by_system):
    """Writes results.json, report.md and the pooled confusion PNGs; returns the report."""
    out = hparams["output_folder"]
    results = summarize_systems(fold_metrics)
    results["corpus"] = describe_protocol(corpus, hparams["protocol"], hparams["n_folds"])
    for system, confusions in subset_confusions_by_system.items():
        results["systems"][system]["subsets"] = summarize_subsets(confusions)
    results["classes"] = hparams["emotions"]
    # The paper's figures are IEMOCAP's, leave one session out, 4 classes: beside any other
    # corpus or protocol they would mislead.
    paper_setting = corpus["corpus"] == "IEMOCAP" and hparams["protocol"] in (None, "leave_one_group_out") \
        and not hparams["label_map"]
    results["paper"] = hparams["paper_results"] if paper_setting else None
    atomic_write_json(os.path.join(out, "results.json"), results)
    for system, entry in results["systems"].items():
        pooled = entry["pooled"]
        plot_confusion_matrix(
            pooled["confusion"], hparams["emotions"], os.path.join(out, f"confusion_{system}.png"),
            f"{system}: pooled " + ", ".join(f"{m} {pooled[m]:.1f} %" for m in hparams["report_metrics"]),
        )
    report = render_report(results, hparams["emotions"], results["paper"],
                           hparams["report_title"], hparams["report_notes"],
                           fold_heading(corpus, hparams["protocol"], hparams["n_folds"]),
                           hparams["report_metrics"])
    atomic_write_text(os.path.join(out, "report.md"), report)
    return report


def log_to_file(path):
    """Sends this run's log (job list, what was reused or rerun) to the console and ``path``,
    and what :data:`file_logger` gets to ``path`` only."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger().addHandler(handler)
    file_logger.addHandler(handler)


def load_experiment(hparams_file, overrides):
    """The experiment's YAML with the overrides; a file that cannot be read, a YAML error or
    an override of a key it does not have is an :class:`ExperimentError`.

    A file whose ``base`` names another experiment YAML (``hparams/loso_demo.yaml``:
    ``base: loso.yaml``) holds overrides of that one, in plain YAML; that one may name a
    ``base`` of its own (``hparams/ravdess_cpu.yaml``: ``base: ravdess.yaml``). Each file's
    overrides apply after its base's, and the command line's last."""
    try:
        plain_yaml = YAML(typ="safe", pure=True)  # YAML 1.2, as HyperPyYAML reads the base:
        layers, seen = [], set()                  # `no` stays a string, `08` a number
        while True:
            with open(hparams_file, encoding="utf-8") as fin:
                text = fin.read()
            data = YAML(typ="rt").load(text)
            if not (isinstance(data, dict) and "base" in data):
                break
            if os.path.abspath(hparams_file) in seen:
                raise ExperimentError(f"{hparams_file}: its chain of base files comes back to it")
            seen.add(os.path.abspath(hparams_file))
            changes = plain_yaml.load(text)
            layers.append(changes)
            hparams_file = os.path.join(os.path.dirname(os.path.abspath(hparams_file)), changes.pop("base"))
        if layers:
            merged = {}
            for changes in reversed(layers):  # the base's first
                recursive_update(merged, changes)
            recursive_update(merged, plain_yaml.load(overrides) or {} if overrides else {})
            overrides = merged
        with open(hparams_file, encoding="utf-8") as fin:
            return load_hyperpyyaml(fin, overrides)
    except OSError as error:
        raise ExperimentError(f"cannot read {hparams_file}: {error.strerror}") from error
    except KeyError as error:
        raise ExperimentError(f"{hparams_file}: {one_line(error)}") from error
    except (yaml.YAMLError, ruamel.yaml.YAMLError) as error:
        raise ExperimentError(f"{hparams_file}: {one_line(error)}") from error


def main(argv=None, script="experiment.py"):
    """Runs every job of the experiment that is not finished with the same definition, then
    reports. ``argv`` defaults to ``sys.argv[1:]``.

    Returns ``None`` (0) or :data:`EXIT_JOB_FAILED` when a job failed (after printing one
    line naming it and its log); bad input raises a :class:`~mmer_lobes.errors.ProjectError`
    for :func:`~mmer_lobes.errors.run_script`. Both are recorded in ``log.txt``, prefixed
    with ``script``.
    """
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams = load_experiment(hparams_file, rename_legacy_overrides(overrides))
    try:
        os.makedirs(hparams["output_folder"], exist_ok=True)
        log_to_file(os.path.join(hparams["output_folder"], "log.txt"))
    except OSError as error:
        raise ExperimentError(
            f"cannot write the output folder {hparams['output_folder']}: {error.strerror}"
        ) from error
    try:
        run_experiment(hparams, run_opts, [script, *argv])
    except JobError as error:
        message = f"{script}: error: {one_line(error)}"
        file_logger.error(message)
        print(message, file=sys.stderr)
        return EXIT_JOB_FAILED
    except ProjectError as error:
        file_logger.error("%s: error: %s", script, one_line(error))  # run_script prints it
        raise
    except OSError as error:  # a file of the experiment that cannot be read or written
        message = f"{error.filename}: {error.strerror}" if error.filename else one_line(error)
        file_logger.error("%s: error: %s", script, message)
        raise ExperimentError(message) from error
    return None


def run_experiment(hparams, run_opts, command):
    """Prepares the corpus, runs the jobs that are not done, writes the report."""
    logger.info("%s", " ".join(command))
    prepare_corpus(hparams["prepare_corpus"], hparams["data_folder"], hparams["manifest_folder"],
                   hparams["prepare_options"])
    corpus = load_corpus(hparams["manifest_folder"])
    logger.info("Corpus: %s", describe_protocol(corpus, hparams["protocol"], hparams["n_folds"]))
    run_args = run_option_args(run_opts)
    speaker_jobs, fold_jobs, fusion_jobs, folders = build_jobs(hparams, corpus, run_args)
    logger.info("Jobs (SpeechBrain run options forwarded to each: %s):", " ".join(run_args) or "none")
    for job in speaker_jobs + fold_jobs + fusion_jobs:
        logger.info("  %s [%s]: %s", job.name, job.state(), " ".join(job.command))
    run_jobs(speaker_jobs, 1, "speaker pretraining")
    run_jobs(fold_jobs, hparams["jobs"], "speech and text folds")
    run_jobs(fusion_jobs, hparams["jobs"], "fusion")
    report = write_report(hparams, corpus, collect_fold_metrics(folders), collect_subset_confusions(folders))
    print(report)
    logger.info("Report written to %s", os.path.join(hparams["output_folder"], "report.md"))


if __name__ == "__main__":
    # One line (naming the job and its log when a job failed), not a traceback of the runner.
    sys.exit(run_script(main, "experiment.py"))
