#!/usr/bin/env python3
"""Late fusion of a speech and a text emotion classifier for one fold.

Reads the score files that the speech and the text recipes wrote for one fold
(``<folder>/scores/holdout.csv`` and ``<folder>/scores/test.csv``), fits every fusion method
of the YAML on the hold-out scores, applies it to the hold-out and test scores, and writes::

    <output_folder>/
        hyperparams.yaml              the YAML with the command-line overrides applied
        summary.json                  hold-out and test UA/WA of both modalities and every method,
                                      and the classes missing from the hold-out
        <method>/                     one per method (weighted, znorm, logreg)
            scores/holdout.csv        fused log-posteriors (log-softmax normalised), same contract
            scores/test.csv
            metrics_holdout.json      WA, UA, recall, confusion, n, classes
            metrics_test.json
            confusion_test.png
            fusion_params.json        method, learned parameters, hold-out objective, classes
                                      missing from the hold-out (and, for znorm, the
                                      floored standard deviations: params.floored_columns)

Usage::

    python recipes/fuse.py hparams/fusion.yaml --speech_folder <speech fold output> \\
        --text_folder <text fold output> --output_folder <output> [--key value ...]

Any YAML key can be overridden with ``--key value`` (e.g. ``--objective WA``). A wrong
command line or YAML, missing or mismatched score files, and a file that cannot be read or
written end the script with one line, ``fuse.py: error: <message>``, and exit code 2
(mmer_lobes.errors.run_script). A class with no hold-out utterance is left out of the
hold-out UA (the objective), with a warning.
"""
import logging
import os
import sys

import numpy as np
import speechbrain as sb
import yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references

from mmer_lobes.errors import ProjectError, one_line, run_script
from mmer_lobes.files import atomic_write_json, atomic_write_text
from mmer_lobes.fusion import (
    FusionError,
    WeightedFusion,
    ZNormFusion,
    align_score_sets,
    log_softmax,
    make_fusion,
    missing_classes,
)
from mmer_lobes.metrics import confusion_matrix, plot_confusion_matrix, summarize_confusion
from mmer_lobes.scores import read_scores, write_scores

SPLITS = ("holdout", "test")
PATH_KEYS = ("speech_folder", "text_folder", "output_folder")
USAGE = (
    "usage: python recipes/fuse.py hparams/fusion.yaml --speech_folder DIR "
    "--text_folder DIR --output_folder DIR [--key value ...]"
)


class UsageError(ProjectError, ValueError):
    """The command line or the YAML is wrong, or a file cannot be read or written."""


def parse_command_line(argv):
    """Splits ``argv`` into the YAML path and the YAML overrides, with SpeechBrain's own
    parser, so SpeechBrain's run options (``--device``, ...) are accepted as in every recipe
    (fusion itself runs in numpy on the CPU)."""
    if not argv or argv[0] in ("-h", "--help"):
        raise UsageError(USAGE)
    hparams_file, _, overrides = sb.parse_arguments(argv)
    return hparams_file, overrides


def load_hparams(hparams_file, overrides):
    """Loads the YAML with the overrides; checks the required keys."""
    try:
        with open(hparams_file, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise UsageError(f"cannot read {hparams_file}: {error.strerror}") from None
    try:
        hparams = load_hyperpyyaml(text, overrides)
        resolved = resolve_references(text, overrides).getvalue()
    except KeyError as error:
        raise UsageError(f"{hparams_file}: {error.args[0]}") from None
    except (yaml.YAMLError, ValueError) as error:
        raise UsageError(f"{hparams_file}: {error}") from None
    for key in PATH_KEYS:
        if hparams.get(key) in (None, ""):
            raise UsageError(f"--{key} is required; {USAGE}")
        hparams[key] = str(hparams[key])  # a folder named like a number is read as one
    for key in ("speech_folder", "text_folder"):
        if not os.path.isdir(hparams[key]):
            raise UsageError(f"{key} {hparams[key]} is not a folder")
    methods = hparams.get("methods")
    if not isinstance(methods, list) or not methods:
        raise UsageError(f"{hparams_file}: 'methods' must be a non-empty list")
    return hparams, resolved


def load_fold_scores(speech_folder, text_folder):
    """Reads and aligns both modalities' hold-out and test scores.

    Returns ``{split: (speech ScoreSet, text ScoreSet in the speech row order)}``.
    """
    pairs = {}
    for split in SPLITS:
        paths = [os.path.join(folder, "scores", f"{split}.csv") for folder in (speech_folder, text_folder)]
        speech, text = (read_scores(path) for path in paths)
        try:
            pairs[split] = align_score_sets(speech, text)
        except FusionError as error:
            raise FusionError(f"{paths[0]} and {paths[1]} do not match: {error}") from None
    holdout_classes, test_classes = pairs["holdout"][0].classes, pairs["test"][0].classes
    if list(holdout_classes) != list(test_classes):
        raise FusionError(
            f"the hold-out scores have classes {list(holdout_classes)}, the test scores "
            f"{list(test_classes)} (in {speech_folder})"
        )
    return pairs


def score_metrics(scores, score_set):
    """WA, UA, recall, confusion, n and classes of the argmax decisions of ``scores``."""
    counts = confusion_matrix(
        score_set.label_indices(), np.asarray(scores).argmax(axis=1), len(score_set.classes)
    )
    metrics = summarize_confusion(counts, score_set.classes)
    metrics["classes"] = list(score_set.classes)
    return metrics


def run_method(method, options, pairs, output_folder, objective):
    """Fits one fusion on the hold-out, writes its outputs; returns its summary row."""
    fusion = make_fusion(method, **options).fit(*pairs["holdout"])
    folder = os.path.join(output_folder, method)
    results = {}
    for split in SPLITS:
        speech, text = pairs[split]
        fused = log_softmax(fusion.apply(speech, text))
        write_scores(
            os.path.join(folder, "scores", f"{split}.csv"),
            speech.ids, speech.labels, fused, speech.classes,
        )
        metrics = score_metrics(fused, speech)
        atomic_write_json(os.path.join(folder, f"metrics_{split}.json"), metrics)
        results[split] = metrics
    test = results["test"]
    plot_confusion_matrix(
        test["confusion"], test["classes"], os.path.join(folder, "confusion_test.png"),
        f"{method} fusion, test: UA {test['UA']:.1f} %, WA {test['WA']:.1f} %",
    )
    weight = fusion.weight if isinstance(fusion, (WeightedFusion, ZNormFusion)) else None
    params = {
        "method": method,
        "params": fusion.to_dict(),
        "objective": objective,
        "objective_value": results["holdout"][objective],
        # the hold-out UA (and a UA objective) averages the recalls of the other classes
        "holdout_missing_classes": list(fusion.holdout_missing_classes),
        "holdout": {key: results["holdout"][key] for key in ("UA", "WA")},
        "test": {key: test[key] for key in ("UA", "WA")},
    }
    if isinstance(fusion, WeightedFusion):
        params["objective_value"] = fusion.holdout_objective
        params["holdout_curve"] = {"w1": fusion.grid.tolist(), objective: fusion.curve}
    if getattr(fusion, "converged", None) is not None:
        params["converged"] = fusion.converged
    atomic_write_json(os.path.join(folder, "fusion_params.json"), params)
    return {"w1": weight, **{f"{split}_{key}": results[split][key] for split in SPLITS for key in ("UA", "WA")}}


def format_table(rows):
    """The summary table: one line per modality and method."""
    lines = [f"{'':10s} {'w1':>5s} {'holdout UA':>11s} {'holdout WA':>11s} {'test UA':>8s} {'test WA':>8s}"]
    for name, row in rows.items():
        weight = "-" if row.get("w1") is None else f"{row['w1']:.2f}"
        lines.append(
            f"{name:10s} {weight:>5s} {row['holdout_UA']:11.2f} {row['holdout_WA']:11.2f} "
            f"{row['test_UA']:8.2f} {row['test_WA']:8.2f}"
        )
    return "\n".join(lines)


def fuse(hparams, resolved_yaml):
    """Runs every method of ``hparams``; returns the summary dict."""
    pairs = load_fold_scores(hparams["speech_folder"], hparams["text_folder"])
    output_folder = hparams["output_folder"]
    objective = str(hparams.get("objective", "UA")).upper()
    if objective not in ("UA", "WA"):
        raise UsageError(f"objective must be UA or WA, got '{hparams.get('objective')}'")
    options = hparams.get("fusion_options") or {}
    for method in hparams["methods"]:  # configuration errors before any work
        make_fusion(method, **(options.get(method) or {}))
    atomic_write_text(os.path.join(output_folder, "hyperparams.yaml"), resolved_yaml)
    rows = {}
    for modality, index in (("speech", 0), ("text", 1)):
        row = {"w1": None}
        for split in SPLITS:
            score_set = pairs[split][index]
            metrics = score_metrics(score_set.scores, score_set)
            row.update({f"{split}_UA": metrics["UA"], f"{split}_WA": metrics["WA"]})
        rows[modality] = row
    for method in hparams["methods"]:
        rows[method] = run_method(
            method, options.get(method) or {}, pairs, output_folder, objective
        )
    speech_holdout, speech_test = pairs["holdout"][0], pairs["test"][0]
    missing = missing_classes(speech_holdout.label_indices(), speech_holdout.classes)
    summary = {
        # absolute, so that recipes/export.py can check them from any working folder
        "speech_folder": os.path.abspath(hparams["speech_folder"]),
        "text_folder": os.path.abspath(hparams["text_folder"]),
        "classes": list(speech_test.classes),
        "n_holdout": len(speech_holdout.ids),
        "n_test": len(speech_test.ids),
        "objective": objective,
        # hold-out UAs (and a UA objective) are over the other classes
        "holdout_missing_classes": missing,
        "results": rows,
    }
    atomic_write_json(os.path.join(output_folder, "summary.json"), summary)
    print(
        f"fusion of speech {hparams['speech_folder']} and text {hparams['text_folder']}: "
        f"{len(speech_test.classes)} classes, {summary['n_holdout']} hold-out and "
        f"{summary['n_test']} test utterances, objective {objective}"
    )
    if missing:
        print(f"no hold-out utterance of {missing}: hold-out UAs are over the other classes")
    print(format_table(rows))
    print(f"results in {output_folder}")
    return summary


def main(argv=None):
    """Command-line entry point (``argv`` defaults to ``sys.argv[1:]``).

    Bad input raises a :class:`~mmer_lobes.errors.ProjectError` (:class:`UsageError`, a
    :class:`~mmer_lobes.scores.ScoreFileError` or FusionError), which
    :func:`~mmer_lobes.errors.run_script` prints on one line with exit code 2; a file that
    cannot be read or written (``OSError``) becomes a :class:`UsageError` naming it."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    try:
        hparams_file, overrides = parse_command_line(argv)
        hparams, resolved = load_hparams(hparams_file, overrides)
        fuse(hparams, resolved)
    except ProjectError:
        raise
    except OSError as error:
        message = f"{error.filename}: {error.strerror}" if error.filename else one_line(error)
        raise UsageError(message) from error
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main, "fuse.py"))
