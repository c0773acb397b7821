#!/usr/bin/env python3
"""ONNX Runtime int8 (static QDQ) against fp32 for the speech model, on the demo's folds.

    .venv/bin/python tests/benchmarks/bench_int8_demo.py --output results/int8_demo.md

Needs a finished ``make demo`` (``results/demo``). For each fold of each speech system
(``speech_finetune`` and ``speech_linear_probe``):

1. ``recipes/export.py hparams/export.yaml --speech_folder <fold> --onnx=True`` writes a
   speech-only interface folder with ``speech.onnx`` into a temporary folder, loaded with
   ``SpeechEmotionRecognizer.from_hparams`` on the CPU;
2. ``quantize_int8`` writes ``speech_int8.onnx``, calibrated (min / max) on the network
   inputs of up to ``--calibration`` clips of the fold's ``train.json`` (never test clips),
   each the features the interface itself computes for the clip (filterbank, padding of a
   short clip to ``min_duration``, windows of a long one);
3. every clip of the fold's ``test.json`` is scored one at a time through
   ``model.log_posteriors`` with three backends: PyTorch fp32, ONNX Runtime fp32
   (``model.use_onnx``) and ONNX Runtime int8 (``model.onnx_scorer`` swapped), so the input
   handling is the same for all three;
4. the test set is scored again, each backend in turn, ``--repeats`` times (best kept):
   end to end (``log_posteriors``: filterbank + network, what ``mmer-predict`` runs) and the
   network alone (the recorded ONNX inputs replayed into each session).

UA / WA (%) come from :func:`mmer_lobes.metrics.classification_metrics`, per fold and pooled
over the folds (one confusion matrix of all test clips). The issue's rule: offer
``--backend onnx-int8`` only if int8 is at least 1.5x faster than ONNX Runtime fp32 with at
most 0.5 UA points lost (pooled, and on every fold).

The demo corpora are synthetic (``data_prep/mini_corpora.py``) and the demo network tiny
(4-8-16-32 channels, 64 mels): a smoke test of the pipeline, not a benchmark.
"""
import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

import torch

from mmer_lobes.files import atomic_write_text
from mmer_lobes.interfaces import SpeechEmotionRecognizer
from mmer_lobes.interfaces.inputs import read_audio_file
from mmer_lobes.metrics import classification_metrics
from mmer_lobes.onnx_speech import OnnxSpeechScorer, SpeechScoringGraph, quantize_int8

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_onnx import best_times  # noqa: E402  (steps taking turns, after a warm-up)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEMS = ("speech_finetune", "speech_linear_probe")
FOLDS = ("fold1", "fold2", "fold3", "fold4", "fold5")
BACKENDS = ("torch", "ort_fp32", "ort_int8")
LABEL_KEY = "emo"
MAX_UA_LOSS, MIN_SPEEDUP = 0.5, 1.5


class RecordingScorer:
    """Wraps an :class:`~mmer_lobes.onnx_speech.OnnxSpeechScorer` and keeps a copy of every
    ``(features, lengths)`` input it gets: the exact network inputs of the interface (after
    its filterbank, padding and windowing), for calibration and for timing the network alone.

    Example
    -------
    >>> recorder = RecordingScorer(lambda feats, lengths: feats.sum(dim=(1, 2)))
    >>> recorder(torch.ones(1, 3, 2), torch.ones(1)).tolist(), len(recorder.inputs)
    ([6.0], 1)
    """

    def __init__(self, scorer):
        self.scorer = scorer
        self.inputs = []

    def __call__(self, feats, lengths=None):
        feats = torch.as_tensor(feats).detach().cpu().clone()
        lengths = None if lengths is None else torch.as_tensor(lengths).detach().cpu().clone()
        self.inputs.append((feats, lengths))
        return self.scorer(feats, lengths)


def export_interface(fold_folder, output_folder):
    """Runs ``recipes/export.py`` (speech only, ``--onnx=True``) on a fold's output folder;
    returns ``output_folder``. Raises ``RuntimeError`` with the exporter's output on failure."""
    command = [sys.executable, "recipes/export.py", "hparams/export.yaml", "--speech_folder", fold_folder,
               "--output_folder", output_folder, "--onnx=True"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"export of {fold_folder} failed (rc {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return output_folder


def read_split(fold_folder, split, data_folder):
    """``[(utterance id, wav path, label)]`` of a fold's ``fold/<split>.json``, ``{data_root}``
    replaced by ``data_folder`` (relative to the repository root unless absolute)."""
    with open(os.path.join(fold_folder, "fold", f"{split}.json"), encoding="utf-8") as handle:
        entries = json.load(handle)
    root = data_folder if os.path.isabs(data_folder) else os.path.join(REPO_ROOT, data_folder)
    return [(uid, entry["wav"].replace("{data_root}", root), entry[LABEL_KEY]) for uid, entry in entries.items()]


def calibration_entries(train, test, limit, seed=0):
    """Up to ``limit`` training entries, a seeded sample, none of them a test utterance.

    Example
    -------
    >>> train = [(f"u{i}", f"u{i}.wav", "ang") for i in range(10)]
    >>> picked = calibration_entries(train, [("u3", "u3.wav", "ang")], 4)
    >>> len(picked), any(uid == "u3" for uid, _, _ in picked)
    (4, False)
    """
    test_ids = {uid for uid, _, _ in test}
    test_wavs = {wav for _, wav, _ in test}
    pool = sorted(e for e in train if e[0] not in test_ids and e[1] not in test_wavs)
    return random.Random(seed).sample(pool, min(limit, len(pool)))


def load_clips(entries, sample_rate):
    """The waveforms ``(time,)`` of ``entries`` read as the interface reads files (mono, at
    ``sample_rate``)."""
    return [read_audio_file(wav, sample_rate)[0] for _, wav, _ in entries]


def score_clips(model, clips):
    """Log-posteriors ``(clips, classes)`` and flags, one clip at a time (relative length 1),
    through ``model.log_posteriors`` with whatever backend the model has."""
    rows, flags = [], []
    for clip in clips:
        scores, clip_flags = model.log_posteriors(clip.unsqueeze(0))
        rows.append(scores[0].cpu())
        flags.append(clip_flags[0])
    return torch.stack(rows), flags


def with_backend(model, scorer):
    """Sets the model's network backend: ``None`` for PyTorch, else an ONNX scorer; returns
    the model."""
    model.onnx_scorer = scorer
    return model


def evaluate_fold(fold_folder, scratch, n_calibration, repeats, threads=None):
    """Exports, quantises and scores one fold; returns its labels, scores per backend,
    timings, the recipe's own test UA / WA and the interface's class order."""
    iface = export_interface(fold_folder, os.path.join(scratch, "iface"))
    with open(os.path.join(iface, "export_info.json"), encoding="utf-8") as handle:
        info = json.load(handle)
    data_folder = info["speech"]["data_folder"]
    model = SpeechEmotionRecognizer.from_hparams(source=iface, run_opts={"device": "cpu"})
    fp32_path = os.path.join(iface, "speech.onnx")
    int8_path = os.path.join(scratch, "speech_int8.onnx")

    test = read_split(fold_folder, "test", data_folder)
    calibration = calibration_entries(read_split(fold_folder, "train", data_folder), test, n_calibration)
    sample_rate = model.sample_rate
    test_clips, calibration_clips = load_clips(test, sample_rate), load_clips(calibration, sample_rate)

    fp32 = OnnxSpeechScorer(fp32_path, threads)
    recorder = RecordingScorer(fp32)
    score_clips(with_backend(model, recorder), calibration_clips)
    quantize_int8(fp32_path, int8_path, recorder.inputs)
    int8 = OnnxSpeechScorer(int8_path, threads)

    scorers = {"torch": None, "ort_fp32": fp32, "ort_int8": int8}
    scores, flags = {}, None
    for name, scorer in scorers.items():
        scores[name], flags = score_clips(with_backend(model, scorer), test_clips)
    test_recorder = RecordingScorer(fp32)
    score_clips(with_backend(model, test_recorder), test_clips)  # the network inputs of the test set

    graph = SpeechScoringGraph(model.mods.mean_var_norm, model.mods.encoder, model.mods.classifier).eval()

    def torch_network():
        with torch.no_grad():
            for feats, lengths in test_recorder.inputs:
                graph(feats, lengths)

    def ort_network(scorer):
        for feats, lengths in test_recorder.inputs:
            scorer(feats, lengths)

    end_to_end = best_times({name: (lambda s=scorer: score_clips(with_backend(model, s), test_clips))
                             for name, scorer in scorers.items()}, repeats)
    network = best_times({"torch": torch_network, "ort_fp32": lambda: ort_network(fp32),
                          "ort_int8": lambda: ort_network(int8)}, repeats)
    with_backend(model, None)
    with open(os.path.join(fold_folder, "metrics_test.json"), encoding="utf-8") as handle:
        recipe = json.load(handle)
    return {
        "classes": list(model.classes), "labels": [model.classes.index(label) for _, _, label in test],
        "scores": scores, "end_to_end": end_to_end, "network": network,
        "audio_seconds": sum(clip.shape[0] for clip in test_clips) / sample_rate,
        "padded": sum("padded_short_clip" in f for f in flags), "windowed": sum("windowed_long_clip" in f for f in flags),
        "n_calibration": len(calibration), "recipe": {"UA": recipe.get("UA"), "WA": recipe.get("WA")},
        "onnx_sizes": {"ort_fp32": os.path.getsize(fp32_path), "ort_int8": os.path.getsize(int8_path)},
    }


def summarise(folds):
    """Metrics of a list of fold results (one fold, or all pooled): ``{"n", "metrics":
    {backend: classification_metrics}, "agree": {pair: share}, "max_diff": {pair: value},
    "end_to_end" / "network": {backend: seconds summed}, "audio_seconds", "recipe_UA"}``."""
    classes = folds[0]["classes"]
    if any(fold["classes"] != classes for fold in folds):
        raise ValueError(f"class orders differ across folds: {[fold['classes'] for fold in folds]}")
    labels = [label for fold in folds for label in fold["labels"]]
    scores = {name: torch.cat([fold["scores"][name] for fold in folds]) for name in BACKENDS}
    predictions = {name: values.argmax(dim=1) for name, values in scores.items()}
    pairs = (("ort_int8", "ort_fp32"), ("ort_fp32", "torch"), ("ort_int8", "torch"))
    recipe = [fold["recipe"]["UA"] for fold in folds]
    return {
        "n": len(labels),
        "metrics": {name: classification_metrics(labels, predictions[name].tolist(), classes) for name in BACKENDS},
        "agree": {pair: (predictions[pair[0]] == predictions[pair[1]]).float().mean().item() for pair in pairs},
        "max_diff": {pair: (scores[pair[0]] - scores[pair[1]]).abs().max().item() for pair in pairs},
        "end_to_end": {name: sum(fold["end_to_end"][name] for fold in folds) for name in BACKENDS},
        "network": {name: sum(fold["network"][name] for fold in folds) for name in BACKENDS},
        "audio_seconds": sum(fold["audio_seconds"] for fold in folds),
        "padded": sum(fold["padded"] for fold in folds), "windowed": sum(fold["windowed"] for fold in folds),
        "recipe_UA": recipe[0] if len(recipe) == 1 else None,
    }


def verdict(per_fold, pooled):
    """``(meets rule, reasons)`` of the issue's rule: int8 at least MIN_SPEEDUP times faster
    than ONNX Runtime fp32 (end to end and network alone, pooled) and at most MAX_UA_LOSS UA
    points lost against it, pooled and on every fold."""
    reasons = []

    def ua_loss(summary):
        return summary["metrics"]["ort_fp32"]["UA"] - summary["metrics"]["ort_int8"]["UA"]

    for kind in ("end_to_end", "network"):
        speedup = pooled[kind]["ort_fp32"] / pooled[kind]["ort_int8"]
        if speedup < MIN_SPEEDUP:
            reasons.append(f"int8 is {speedup:.2f}x as fast as fp32 ({kind.replace('_', ' ')}), under {MIN_SPEEDUP}x")
    losses = {"pooled": ua_loss(pooled), **{k: ua_loss(s) for k, s in per_fold.items()}}
    for where, loss in losses.items():
        if loss > MAX_UA_LOSS:
            reasons.append(f"{where}: {loss:.2f} UA points lost (> {MAX_UA_LOSS})")
    return not reasons, reasons


def system_tables(system, per_fold, pooled):
    """The markdown accuracy and speed tables of one system."""
    rows = list(per_fold.items()) + [("pooled", pooled)]
    lines = [f"### {system}", "",
             "| fold | clips | recipe UA | UA torch | UA ORT fp32 | UA ORT int8 | ΔUA int8−fp32 | WA torch | "
             "WA ORT fp32 | WA ORT int8 | ΔWA int8−fp32 | agree int8/fp32 | agree fp32/torch | "
             "max abs Δ log-post int8/fp32 | max abs Δ fp32/torch |",
             "| --- |" + " ---: |" * 14]
    for name, s in rows:
        m = s["metrics"]
        recipe = "" if s["recipe_UA"] is None else f"{s['recipe_UA']:.2f}"
        lines.append(
            f"| {name} | {s['n']} | {recipe} | {m['torch']['UA']:.2f} | {m['ort_fp32']['UA']:.2f} | "
            f"{m['ort_int8']['UA']:.2f} | {m['ort_int8']['UA'] - m['ort_fp32']['UA']:+.2f} | {m['torch']['WA']:.2f} | "
            f"{m['ort_fp32']['WA']:.2f} | {m['ort_int8']['WA']:.2f} | {m['ort_int8']['WA'] - m['ort_fp32']['WA']:+.2f} | "
            f"{s['agree'][('ort_int8', 'ort_fp32')]:.1%} | {s['agree'][('ort_fp32', 'torch')]:.1%} | "
            f"{s['max_diff'][('ort_int8', 'ort_fp32')]:.3g} | {s['max_diff'][('ort_fp32', 'torch')]:.2g} |")
    lines += ["", "| fold | audio s | e2e torch s | e2e ORT fp32 s | e2e ORT int8 s | e2e fp32/int8 | "
              "net torch s | net ORT fp32 s | net ORT int8 s | net fp32/int8 |", "| --- |" + " ---: |" * 9]
    for name, s in rows:
        e, n = s["end_to_end"], s["network"]
        lines.append(
            f"| {name} | {s['audio_seconds']:.1f} | {e['torch']:.3f} | {e['ort_fp32']:.3f} | {e['ort_int8']:.3f} | "
            f"{e['ort_fp32'] / e['ort_int8']:.2f}x | {n['torch']:.3f} | {n['ort_fp32']:.3f} | {n['ort_int8']:.3f} | "
            f"{n['ort_fp32'] / n['ort_int8']:.2f}x |")
    return lines


def report(results, settings):
    """The markdown report of ``{system: {fold: fold result}}``."""
    import onnxruntime

    lines = ["# ONNX Runtime int8 vs fp32 on the demo folds (speech model)", "",
             "**Synthetic demo corpora (data_prep/mini_corpora.py) and the tiny demo network "
             "(4-8-16-32 channels, 64 mels): a smoke test, not a benchmark.**", "",
             f"Command: `.venv/bin/python tests/benchmarks/bench_int8_demo.py {settings['argv']}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; torch {torch.__version__} "
             f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__} "
             f"({settings['threads'] or 'default'} intra-op threads). Load average (1 min) before / after: "
             f"{settings['load'][0]:.2f} / {os.getloadavg()[0]:.2f}.  ",
             f"Folds: `{settings['demo']}/<system>/{{{','.join(settings['folds'])}}}`, each exported by `recipes/export.py --onnx=True`; int8 = "
             "`quantize_int8` (static QDQ, per-channel Conv weights, MinMax) calibrated on up to "
             f"{settings['calibration']} training clips of the fold (never test clips), one clip per calibration batch.  ",
             "Scoring: each test clip alone through `model.log_posteriors` (same filterbank and input handling for "
             "every backend). UA / WA in %; *recipe UA* is the fold's `metrics_test.json` (the training recipe's "
             "own evaluation). Times: the whole test set scored one clip at a time, best of "
             f"{settings['repeats']} (backends taking turns); *e2e* = filterbank + network (`log_posteriors`), *net* = "
             "the network alone on the recorded ONNX inputs; pooled = sum over folds. *fp32/int8* above 1 means int8 "
             "is faster.", ""]
    for system, folds in results.items():
        per_fold = {k: summarise([fold]) for k, fold in folds.items()}
        pooled = summarise(list(folds.values()))
        lines += system_tables(system, per_fold, pooled)
        any_fold = next(iter(folds.values()))
        ok, reasons = verdict(per_fold, pooled)
        lines += ["", f"Clips padded to min_duration: {pooled['padded']}, windowed: {pooled['windowed']}. "
                  f"ONNX file sizes (last fold): fp32 {any_fold['onnx_sizes']['ort_fp32'] / 1024:.0f} KiB, "
                  f"int8 {any_fold['onnx_sizes']['ort_int8'] / 1024:.0f} KiB.  ",
                  f"**Rule (int8 ≥ {MIN_SPEEDUP}x faster than ORT fp32, ≤ {MAX_UA_LOSS} UA points lost, pooled and "
                  f"per fold): {'met' if ok else 'NOT met'}**" + ("" if ok else ": " + "; ".join(reasons) + "."), ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="results/demo", help="the demo's output folder")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    parser.add_argument("--folds", nargs="+", default=list(FOLDS), help="fold folder names")
    parser.add_argument("--calibration", type=int, default=64, help="training clips for int8 calibration, at most")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the test set (best kept)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads of torch and onnxruntime")
    parser.add_argument("--output", default="results/int8_demo.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {"argv": " ".join(sys.argv[1:]), "threads": args.threads, "load": os.getloadavg(),
                "demo": args.demo, "folds": args.folds, "calibration": args.calibration, "repeats": args.repeats}
    demo = args.demo if os.path.isabs(args.demo) else os.path.join(REPO_ROOT, args.demo)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as scratch:
        for system in args.systems:
            results[system] = {}
            for k in args.folds:
                fold_folder = os.path.join(demo, system, k)
                fold_scratch = os.path.join(scratch, system, k)
                os.makedirs(fold_scratch)
                start = time.perf_counter()
                results[system][k] = evaluate_fold(fold_folder, fold_scratch, args.calibration, args.repeats,
                                                   args.threads)
                print(f"{system} {k}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    text = report(results, settings)
    atomic_write_text(args.output, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
