#!/usr/bin/env python3
"""Speed of the exported speech network (features -> log-posteriors) on this CPU.

    python tests/benchmarks/bench_onnx.py [--seconds 5 60] [--no-int8]

The paper's network (ResNetEncoder defaults: 128 mels, 32-64-128-256 channels, 3-4-6-3
blocks; EmbeddingClassifier(encoder.output_size, 4)) with random weights, one clip at a time
(100 frames per second; the filterbank is not timed, and a long clip is one pass, not the
interface's windows): PyTorch fp32 under ``torch.no_grad`` (the baseline), ONNX Runtime fp32,
ONNX Runtime int8 (static QDQ, per-channel, calibrated on random clips) and PyTorch bf16
autocast where the CPU has bf16 instructions. Each figure is the real-time factor
(processing s / audio s, lower is faster), best of 3 after one warm-up run, with the largest
absolute difference of its log-posteriors from the baseline's on the same clip. The systems
take turns within each round of runs (:func:`best_times`).
``int8_drift`` compares int8 with fp32 on more random clips (random weights: the accuracy on
real data is measured on the demo folds, not here).
"""
import argparse
import os
import platform
import tempfile
import time

import torch
from speechbrain.processing.features import InputNormalization

from mmer_lobes.onnx_speech import (OnnxSpeechScorer, SpeechScoringGraph, export_speech_onnx, padded_example,
                                    quantize_int8)
from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder

N_MELS, FRAMES_PER_SECOND, REPEATS = 128, 100, 3
CLIP_SECONDS = (5.0, 60.0)


def best_times(steps, repeats=REPEATS, sync=lambda: None):
    """``{name: fastest of repeats runs}`` of ``steps`` ``{name: step}``, after one warm-up run
    of each. The runs take turns (one of each step per round), so that a load that comes and
    goes on the machine, or the process warming up, does not fall on one step only. ``sync``
    waits for the device (``torch.cuda.synchronize`` on a GPU) after each run."""
    for step in steps.values():
        step()
        sync()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def cpu_has_bf16():
    """Whether the CPU has bf16 instructions (avx512_bf16 or AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = set(next((line for line in handle if line.startswith("flags")), "").split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def random_clip(seconds, seed):
    """Un-normalised filterbank-like features of one clip ``(1, frames, N_MELS)``."""
    return padded_example(N_MELS, int(seconds * FRAMES_PER_SECOND), [1.0], seed=seed)[0]


def randomise_batch_norm(module, seed):
    """Non-trivial running statistics and affine parameters for every batch norm (as
    tests/test_resnet.py does), so that folding them into the convolutions is exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=gen))
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


def paper_models(folder, int8=True, seed=0, logit_spread=4.0):
    """The paper's network with random weights: ``(graph, {name: onnx path})``.

    Random batch norms, and the output layer scaled so that the logits of a random clip have
    a standard deviation of ``logit_spread`` (an untrained network's are nearly equal, and any
    error would look small against log-posteriors that all sit at log(1/4))."""
    torch.manual_seed(seed)
    encoder = ResNetEncoder()
    modules = {"mean_var_norm": InputNormalization(norm_type="sentence", std_norm=True), "encoder": encoder,
               "classifier": EmbeddingClassifier(encoder.output_size, 4)}
    randomise_batch_norm(encoder, seed)
    randomise_batch_norm(modules["classifier"], seed + 1)
    graph = SpeechScoringGraph(**modules).eval()
    with torch.no_grad():
        logits = graph.classifier(graph.encoder(graph.mean_var_norm(random_clip(3.0, seed=7), torch.ones(1))))
        graph.classifier.output.weight.mul_(logit_spread / logits.std().clamp(min=1e-6))
    paths = {"fp32": export_speech_onnx(modules, os.path.join(folder, "speech.onnx"), N_MELS)}
    if int8:
        calibration = [random_clip(seconds, 100 + i) for i, seconds in enumerate((2.0, 4.0, 6.0, 8.0))]
        paths["int8"] = quantize_int8(paths["fp32"], os.path.join(folder, "speech_int8.onnx"), calibration)
    return graph, paths


def onnx_rows(clip_seconds=CLIP_SECONDS, repeats=REPEATS, int8=True, bf16=None, threads=None, folder=None):
    """``[(system, {seconds: real-time factor}, {seconds: max abs diff from PyTorch fp32})]``,
    the PyTorch fp32 baseline first. ``bf16=None`` times bf16 when the CPU has it; ``threads``
    sets PyTorch's and onnxruntime's intra-op threads (None: their defaults)."""
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as scratch:
        graph, paths = paper_models(folder or scratch, int8)
        scorers = {name: OnnxSpeechScorer(path, threads) for name, path in paths.items()}
        clips = {seconds: random_clip(seconds, seed=int(seconds)) for seconds in clip_seconds}
        ones = torch.ones(1)

        def pytorch(feats, dtype=None):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                return graph(feats, ones).float()

        systems = {"PyTorch fp32 (no_grad) — baseline": pytorch,
                   "ONNX Runtime fp32": lambda feats: scorers["fp32"](feats, ones)}
        if "int8" in scorers:
            systems["ONNX Runtime int8 (static QDQ, per-channel Conv)"] = lambda feats: scorers["int8"](feats, ones)
        if cpu_has_bf16() if bf16 is None else bf16:
            systems["PyTorch bf16 (autocast, no_grad)"] = lambda feats: pytorch(feats, torch.bfloat16)
        factors, diffs = {name: {} for name in systems}, {name: {} for name in systems}
        for seconds, feats in clips.items():
            reference = pytorch(feats)
            best = best_times({name: (lambda run=run: run(feats)) for name, run in systems.items()}, repeats)
            for name, run in systems.items():
                factors[name][seconds] = best[name] / seconds
                diffs[name][seconds] = (run(feats) - reference).abs().max().item()
    return [(name, factors[name], diffs[name]) for name in systems]


def int8_drift(n_clips=8, seconds_range=(1.0, 8.0), folder=None):
    """``{"max_abs_diff", "argmax_agreement", "spread", "clips"}`` of int8 against ONNX Runtime
    fp32 on random clips of the paper's network with random weights; ``spread`` is the largest
    range of a clip's fp32 log-posteriors, the scale to read the difference against."""
    with tempfile.TemporaryDirectory() as scratch:
        _, paths = paper_models(folder or scratch, int8=True)
        fp32, int8 = OnnxSpeechScorer(paths["fp32"]), OnnxSpeechScorer(paths["int8"])
        low, high = seconds_range
        gen = torch.Generator().manual_seed(1)
        diffs, agree, spread = [], 0, 0.0
        for i in range(n_clips):
            seconds = low + (high - low) * torch.rand(1, generator=gen).item()
            feats = random_clip(seconds, seed=1000 + i)  # other clips than the calibration ones
            a, b = fp32(feats), int8(feats)
            diffs.append((a - b).abs().max().item())
            agree += int(a.argmax() == b.argmax())
            spread = max(spread, (a.max() - a.min()).item())
    return {"max_abs_diff": max(diffs), "argmax_agreement": agree / n_clips, "spread": spread, "clips": n_clips}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=list(CLIP_SECONDS))
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--drift-clips", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads of both (default: theirs)")
    args = parser.parse_args()
    import onnxruntime

    load_before = os.getloadavg()[0]
    rows = onnx_rows(tuple(args.seconds), int8=not args.no_int8, threads=args.threads)
    seconds = tuple(args.seconds)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, bf16 instructions: {cpu_has_bf16()}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__} "
          f"({args.threads or 'default'} intra-op threads). Load average (1 min) before / after: {load_before:.2f} / "
          f"{os.getloadavg()[0]:.2f}.\n")
    print("| system | " + " | ".join(f"RTF {s:g} s | × baseline | max abs diff" for s in seconds) + " |")
    print("| --- |" + " --- | --- | --- |" * len(seconds))
    base = rows[0][1]
    for name, factors, diffs in rows:
        cells = [f"{factors[s]:.4f} | {factors[s] / base[s]:.2f} | {diffs[s]:.2g}" for s in seconds]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if not args.no_int8 and args.drift_clips:
        drift = int8_drift(args.drift_clips)
        print(f"\nint8 vs fp32 (ONNX Runtime), {drift['clips']} random clips of 1-8 s: max abs diff of the "
              f"log-posteriors {drift['max_abs_diff']:.3g} (their range within a clip: up to {drift['spread']:.3g}), "
              f"argmax agreement {drift['argmax_agreement']:.0%}")


if __name__ == "__main__":
    main()
