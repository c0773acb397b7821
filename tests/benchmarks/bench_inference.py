#!/usr/bin/env python3
"""Inference speed of the paper's speech network against other implementations and the
machine's compute floor, and of the text models through the interface and raw.

    python tests/benchmarks/bench_inference.py --output results/bench.md   (make bench)

Every row is measured in the same run on the same inputs; each is given as a real-time factor
(processing seconds per audio second, lower is faster) and as a ratio against the first row
(its time over the row's time: above 1 is faster). The inputs:

* one 5 s clip (a typical IEMOCAP segment), one 60 s clip scored whole, and 32 clips of
  IEMOCAP-like durations (2-12 s, 7 s on average);
* the paper's network (32-64-128-256 channels, BasicBlocks 3-4-6-3, 128 mels, 512-d
  embedding, 4 classes) from its filterbank features (the sentence normalisation, encoder,
  FC layers and log-softmax: what ``speech.onnx`` holds), random weights (speed does not
  depend on them);
* wespeaker's own ResNet34 (``wespeaker-unofficial``'s ``models/resnet.py``, m_channels 32,
  128-dim features, TSTP pooling) on the same features, one clip at a time;
* ``transformers``' wav2vec2-base (random weights, the default ``Wav2Vec2Config``) on the
  waveforms, one clip at a time, as the other common speech-emotion backbone.

The compute floor is the fastest throughput this machine reaches on one of the network's own
3x3 convolutions alone (each stage's shape for the 5 s clip, plain and channels_last, timed in
the same rounds as the rows); the network's FLOPs are counted by ``torch.utils.flop_counter``. On a CUDA device the speech table is measured again there.
"""
import argparse
import contextlib
import copy
import os
import platform
import sys
import tempfile
import time

import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))  # wespeaker_reference

from bench_onnx import best_times  # noqa: E402  (this script's folder is on sys.path; steps take turns)
from mmer_lobes.files import atomic_write_text  # noqa: E402
from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder  # noqa: E402

SAMPLE_RATE, FRAMES_PER_SECOND, N_MELS = 16000, 100, 128
REPEATS = 3
SMALL_TABLE_REPEATS = 7  # the overhead tables are cheap; their ratios are a few per cent, so more rounds
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
COMPILE_TIMEOUT = 300  # seconds for torch.compile's first call
SENTENCE = "I can't believe you did that to me, again."


def iemocap_like_seconds(count=32, seed=0):
    """``count`` durations of 2-12 s."""
    gen = torch.Generator().manual_seed(seed)
    return (2 + 10 * torch.rand(count, generator=gen)).tolist()


def paper_modules(device):
    """The paper's speech network with random weights and batch-norm statistics, in eval mode."""
    from speechbrain.processing.features import InputNormalization

    torch.manual_seed(0)
    encoder = ResNetEncoder(n_mels=N_MELS)
    classifier = EmbeddingClassifier(encoder.output_size, 4, 512)
    norm = InputNormalization(norm_type="sentence", std_norm=True)
    return {"mean_var_norm": norm.to(device).eval(), "encoder": encoder.to(device).eval(),
            "classifier": classifier.to(device).eval()}


def scorer(modules):
    """features, relative lengths -> log-posteriors, as the recipe and the interface run it."""
    def score(feats, lengths):
        feats = modules["mean_var_norm"](feats, lengths)
        return torch.log_softmax(modules["classifier"](modules["encoder"](feats, lengths)), dim=-1)
    return score


def padded(clips, device):
    """A padded batch of feature clips ``(1, T, n_mels)`` and its relative lengths."""
    longest = max(c.shape[1] for c in clips)
    batch = torch.zeros(len(clips), longest, clips[0].shape[2], device=device)
    for row, clip in enumerate(clips):
        batch[row, :clip.shape[1]] = clip[0]
    return batch, torch.tensor([c.shape[1] / longest for c in clips], device=device)


def batched_runner(score, clips, batch_size, device):
    """Scores ``clips`` ``batch_size`` at a time, longest first (as the interfaces batch)."""
    from mmer_lobes.batching import length_sorted_batches

    batches = [padded([clips[i] for i in group], device)
               for group in length_sorted_batches([c.shape[1] for c in clips], batch_size)]
    return lambda: [score(feats, lengths) for feats, lengths in batches]


def one_at_a_time(score, clips, device):
    ones = torch.ones(1, device=device)
    return lambda: [score(clip, ones) for clip in clips]


@contextlib.contextmanager
def wespeaker_model():
    """wespeaker's ResNet34 at the paper's configuration, or None when not installed."""
    from wespeaker_reference import wespeaker_resnet_module

    with wespeaker_resnet_module() as module:
        if module is None:
            yield None
            return
        torch.manual_seed(0)
        yield module.ResNet34(feat_dim=N_MELS, embed_dim=512, pooling_func="TSTP", two_emb_layer=False).eval()


def wav2vec2_model():
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    return Wav2Vec2Model(Wav2Vec2Config()).eval()


def conv_floor_steps(device, frames):
    """{(layout, stage): (step, FLOPs)}: one 3x3 conv2d at the shape of each stage of the
    paper's network on a clip of ``frames`` (channels 32-64-128-256 on 128, 64, 32, 16 mel rows
    and ``frames`` halved from stage 2 on), in the plain and the channels_last layout. The
    fastest of them is the compute floor: the best this machine does on the network's own
    dominant operation, timed in the same rounds as the rows."""
    steps = {}
    for stage, channels in enumerate((32, 64, 128, 256)):
        rows, columns = N_MELS >> stage, -(-frames // (1 << stage))  # stride 2 from stage 2 on
        for layout in (torch.contiguous_format, torch.channels_last):
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device).eval()
            conv.to(memory_format=layout)
            x = torch.randn(1, channels, rows, columns, device=device).contiguous(memory_format=layout)
            name = ("channels_last" if layout is torch.channels_last else "plain", channels)
            steps[name] = ((lambda conv=conv, x=x: conv(x)), 2 * channels * channels * 9 * rows * columns)
    return steps


def count_flops(score, feats, lengths):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        score(feats, lengths)
    return counter.get_total_flops()


def speech_table(device, scale=1.0):
    """Rows ``(name, {input: seconds})``, notes and figures of the speech table on ``device``
    (``scale`` shortens every clip, for a quick check of the script itself). Every cell, the
    batch-size sweep and the single-optimisation figures are timed in the same interleaved
    rounds (:func:`best_times`)."""
    on_cuda = str(device).startswith("cuda")
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    gen = torch.Generator().manual_seed(1)
    durations = {"5 s clip": [5.0 * scale], "60 s clip": [60.0 * scale],
                 "32 clips of 2-12 s": [s * scale for s in iemocap_like_seconds()]}
    feature_clips = {name: [torch.randn(1, int(s * FRAMES_PER_SECOND), N_MELS, generator=gen).to(device) for s in secs]
                     for name, secs in durations.items()}
    waves = {name: [torch.randn(1, int(s * SAMPLE_RATE), generator=gen).to(device) for s in secs]
             for name, secs in durations.items()}
    audio = {name: sum(secs) for name, secs in durations.items()}
    many = "32 clips of 2-12 s"
    modules = paper_modules(device)
    score = scorer(modules)
    fast_modules = copy.deepcopy(modules)
    fast_modules["encoder"].to(memory_format=torch.channels_last)
    fast_score = scorer(fast_modules)
    ones = torch.ones(1, device=device)

    # The 32 clips one at a time are the sweep's batches of 1.
    rows = {"mmer, one clip at a time": {k: one_at_a_time(score, c, device)
                                         for k, c in feature_clips.items() if k != many},
            "mmer + channels_last, one clip at a time": {k: one_at_a_time(fast_score, c, device)
                                                         for k, c in feature_clips.items() if k != many}}
    sweep = {("plain", size): batched_runner(score, feature_clips[many], size, device) for size in BATCH_SIZES}
    sweep.update({("channels_last", size): batched_runner(fast_score, feature_clips[many], size, device)
                  for size in (1, 32)})
    floor_convs = conv_floor_steps(device, feature_clips["5 s clip"][0].shape[1])
    single = {"torch.inference_mode": inference_mode_runner(score, feature_clips["5 s clip"][0], ones)}
    single.update({("floor", key): step for key, (step, _) in floor_convs.items()})
    notes = []
    with contextlib.ExitStack() as stack, torch.no_grad():
        if not on_cuda:
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            rows.update(onnx_rows(modules, feature_clips, folder))
        rows["PyTorch bf16 autocast (--eval_precision bf16), one clip at a time"] = {
            k: autocast_runner(score, c, device) for k, c in feature_clips.items()}
        wespeaker = stack.enter_context(wespeaker_model())
        if wespeaker is not None:
            wespeaker.to(device)
            rows["wespeaker's own ResNet34 (same configuration), one clip at a time"] = {
                k: (lambda c=c: [wespeaker(clip) for clip in c]) for k, c in feature_clips.items()}
        else:
            notes.append("wespeaker-unofficial is not installed: no wespeaker row")
        wav2vec2 = wav2vec2_model().to(device)
        rows["transformers wav2vec2-base (random weights), one clip at a time"] = {
            k: (lambda w=w: [wav2vec2(x) for x in w]) for k, w in waves.items()}
        steps = {(name, key): run for name, runners in rows.items() for key, run in runners.items()}
        steps.update({("sweep", key): run for key, run in sweep.items()})
        steps.update({("single", key): run for key, run in single.items()})
        seconds = best_times(steps, repeats=REPEATS, sync=sync)

    plain = {size: seconds[("sweep", ("plain", size))] for size in BATCH_SIZES}
    fast = {size: seconds[("sweep", ("channels_last", size))] for size in (1, 32)}
    best_batch = min(plain, key=plain.get)
    kept_batch = 32 if on_cuda else 1  # hparams/inference/speech.yaml: batch_size, cpu_batch_size
    table = [("mmer, one clip at a time", {k: seconds.get(("mmer, one clip at a time", k), plain[1]) / audio[k]
                                            for k in durations}),
             ("mmer, batched (32 clips in one padded batch)", {many: plain[32] / audio[many]}),
             (f"mmer, kept settings: channels_last, batches of {kept_batch} on {device}",
              {k: seconds.get(("mmer + channels_last, one clip at a time", k), fast[kept_batch]) / audio[k]
               for k in durations})]
    table += [(name, {k: seconds[(name, k)] / audio[k] for k in runners}) for name, runners in rows.items()
              if not name.startswith("mmer")]
    notes.append("batch sizes for the 32 clips (seconds, plain layout): "
                 + ", ".join(f"{size}: {value:.3f}" for size, value in plain.items())
                 + f"; fastest {best_batch}. channels_last: batches of 1 {fast[1]:.3f} s, of 32 {fast[32]:.3f} s")
    reference = seconds[("mmer, one clip at a time", "5 s clip")]
    single_figures = {"torch.no_grad (the reference)": reference,
                      "torch.inference_mode": seconds[("single", "torch.inference_mode")],
                      "channels_last": seconds[("mmer + channels_last, one clip at a time", "5 s clip")]}
    notes.append("one 5 s clip, each optimisation alone: " + "; ".join(
        f"{name}: {value:.3f} s ({reference / value:.2f}×)" for name, value in single_figures.items()))
    if not on_cuda:
        notes.append(compile_probe(feature_clips["5 s clip"][0].shape[1], scale))
    flops = count_flops(score, feature_clips["5 s clip"][0], ones)
    conv_rates = {key: flops / seconds[("single", ("floor", key))] / 1e9 for key, (_, flops) in floor_convs.items()}
    fastest_conv = max(conv_rates, key=conv_rates.get)
    floor = conv_rates[fastest_conv]
    notes.append("3x3 conv2d alone at each stage's shape (GFLOP/s): " + ", ".join(
        f"{channels} ch {layout}: {rate:.0f}" for (layout, channels), rate in conv_rates.items())
        + f"; the floor is the fastest, {fastest_conv[1]} channels {fastest_conv[0]}")
    return table, notes, {"gflop_per_audio_second": flops / audio["5 s clip"] / 1e9, "floor_gflops": floor,
                          "best_batch": best_batch}


def inference_mode_runner(score, clip, ones):
    def run():
        with torch.inference_mode():
            return score(clip, ones)
    return run


def autocast_runner(score, clips, device):
    """One clip at a time under bf16 autocast on ``device`` (``--eval_precision bf16``)."""
    ones = torch.ones(1, device=device)

    def run():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            return [score(clip, ones) for clip in clips]
    return run


def compile_probe(frames, scale, timeout=COMPILE_TIMEOUT):
    """A note on ``torch.compile`` (opt-in, dynamic shapes: clips differ in length) of the
    scorer, measured in a child process bounded by ``timeout`` seconds against eager PyTorch
    in that same process: inductor's first compilation on a small CPU can take longer than the
    whole benchmark, and that is itself the finding."""
    import json
    import subprocess

    command = [sys.executable, os.path.abspath(__file__), "--compile_probe", str(frames), "--scale", str(scale)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"torch.compile: not measured, its first call did not finish within {timeout} s"
    if done.returncode != 0:
        return f"torch.compile: failed, {(done.stderr.strip().splitlines() or ['?'])[-1][:160]}"
    f = json.loads(done.stdout.strip().splitlines()[-1])
    return (f"torch.compile (dynamic shapes; a child process, against eager PyTorch there): the first call "
            f"(compilation) {f['compile']:.1f} s, the first pass over the 32 clips {f['first_pass']:.1f} s "
            f"(eager {f['eager 32']:.1f} s); then the 5 s clip {f['compiled 5']:.3f} s against eager "
            f"{f['eager 5']:.3f} s ({f['eager 5'] / f['compiled 5']:.2f}×) and channels_last "
            f"{f['channels_last 5']:.3f} s ({f['channels_last 5'] / f['compiled 5']:.2f}×); the 32 clips "
            f"{f['compiled 32']:.3f} s against eager {f['eager 32']:.3f} s ({f['eager 32'] / f['compiled 32']:.2f}×) "
            f"and channels_last {f['channels_last 32']:.3f} s ({f['channels_last 32'] / f['compiled 32']:.2f}×)")


def run_compile_probe(frames, scale):
    """The child of :func:`compile_probe`: prints its figures (seconds) as JSON."""
    import json

    modules = paper_modules("cpu")
    eager, compiled = scorer(modules), torch.compile(scorer(modules), dynamic=True)
    fast_modules = copy.deepcopy(modules)
    fast_modules["encoder"].to(memory_format=torch.channels_last)
    fast = scorer(fast_modules)
    gen = torch.Generator().manual_seed(1)
    clip, ones = torch.randn(1, frames, N_MELS, generator=gen), torch.ones(1)
    clips = [torch.randn(1, int(s * scale * FRAMES_PER_SECOND), N_MELS, generator=gen) for s in iemocap_like_seconds()]
    figures = {}
    with torch.no_grad():
        start = time.perf_counter()
        compiled(clip, ones)
        figures["compile"] = time.perf_counter() - start
        start = time.perf_counter()
        for c in clips:  # every new length may compile again
            compiled(c, ones)
        figures["first_pass"] = time.perf_counter() - start
        figures.update(best_times({
            "eager 5": lambda: eager(clip, ones), "compiled 5": lambda: compiled(clip, ones),
            "channels_last 5": lambda: fast(clip, ones),
            "eager 32": lambda: [eager(c, ones) for c in clips], "compiled 32": lambda: [compiled(c, ones) for c in clips],
            "channels_last 32": lambda: [fast(c, ones) for c in clips]}))
    print(json.dumps(figures))


def onnx_rows(modules, feature_clips, folder):
    """{row name: {input: runner}} of ONNX Runtime (CPU) on the same clips, one at a time:
    fp32, and int8 (static, calibrated on 8 other random clips: speed only, the accuracy is
    measured on trained models by tests/benchmarks/bench_int8_demo.py); the models are
    written into ``folder``."""
    from mmer_lobes.onnx_speech import OnnxSpeechScorer, export_speech_onnx, quantize_int8

    gen = torch.Generator().manual_seed(7)
    calibration = [torch.randn(1, 300, N_MELS, generator=gen) for _ in range(8)]
    ones = torch.ones(1)
    fp32 = export_speech_onnx(modules, os.path.join(folder, "speech.onnx"), N_MELS)
    int8 = quantize_int8(fp32, os.path.join(folder, "speech_int8.onnx"), calibration)
    rows = {}
    for name, path in (("ONNX Runtime fp32 (speech.onnx)", fp32), ("ONNX Runtime int8 (static QDQ)", int8)):
        onnx = OnnxSpeechScorer(path)
        rows[name + ", one clip at a time"] = {k: (lambda c=c, onnx=onnx: [onnx(clip, ones) for clip in c])
                                               for k, c in feature_clips.items()}
    return rows


def text_rates():
    """{name: utterances per second} of a batch of 32 sentences, through the interface and raw."""
    from hyperpyyaml import load_hyperpyyaml
    from transformers import AutoModel, BertConfig, BertModel

    from mmer_lobes.interfaces import TextEmotionRecognizer
    from mmer_lobes.text import default_text_model_path, load_tokenizer

    texts = [SENTENCE] * 32
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        minilm = default_text_model_path()
        bert_base = os.path.join(folder, "bert-base")
        torch.manual_seed(0)
        BertModel(BertConfig()).save_pretrained(bert_base)  # bert-base-uncased's shape, random weights
        load_tokenizer(minilm).save_pretrained(bert_base)  # the same uncased WordPiece vocabulary
        for name, source in (("MiniLM-L6", minilm), ("bert-base (random weights)", bert_base)):
            with open(os.path.join(REPO_ROOT, "hparams", "inference", "text.yaml"), encoding="utf-8") as handle:
                hparams = load_hyperpyyaml(handle, {"text_model": source})
            hparams["label_encoder"].update_from_iterable(["ang", "hap", "neu", "sad"])
            interface = TextEmotionRecognizer(modules=hparams["modules"], hparams=hparams, run_opts={"device": "cpu"})
            tokenizer, raw = load_tokenizer(source), AutoModel.from_pretrained(source).eval()

            def raw_step():
                with torch.no_grad():
                    raw(**tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt"))

            seconds = best_times({"raw transformers (tokenizer + model)": raw_step,
                                  "mmer TextEmotionRecognizer.classify_batch": lambda: interface.classify_batch(texts)},
                                 repeats=SMALL_TABLE_REPEATS)
            rates[name] = {step: 32 / value for step, value in seconds.items()}
    return rates


def speech_interface_seconds(scale=1.0):
    """{input: (raw model seconds, interface seconds)} on the CPU: SpeechEmotionRecognizer
    built from hparams/inference/speech.yaml (the paper's network, random weights, its
    settings: one clip at a time on a CPU, channels_last) scoring waveforms with
    ``classify_batch``, against the same modules called directly, one clip at a time
    (filterbank, sentence normalisation, encoder, head, log-softmax)."""
    from bench_speed import default_interfaces  # this script's folder is on sys.path

    interface, _ = default_interfaces()
    mods, log_softmax = interface.mods, interface.hparams.log_softmax
    gen = torch.Generator().manual_seed(3)
    durations = {"5 s clip": [5.0 * scale], "32 clips of 2-12 s": [s * scale for s in iemocap_like_seconds()]}
    timings = {}
    for name, seconds in durations.items():
        waves = [torch.randn(int(s * SAMPLE_RATE), generator=gen) * 0.1 for s in seconds]
        longest = max(w.shape[0] for w in waves)
        batch = torch.zeros(len(waves), longest)
        for row, wave in enumerate(waves):
            batch[row, :wave.shape[0]] = wave
        relative = torch.tensor([w.shape[0] / longest for w in waves])

        def raw_step():
            with torch.no_grad():
                for wave in waves:
                    feats = mods.mean_var_norm(mods.compute_features(wave.unsqueeze(0)), torch.ones(1))
                    log_softmax(mods.classifier(mods.encoder(feats)))

        both = best_times({"raw": raw_step, "interface": lambda: interface.classify_batch(batch, relative)},
                          repeats=SMALL_TABLE_REPEATS)
        timings[name] = (both["raw"] / sum(seconds), both["interface"] / sum(seconds))
    return timings


def speech_interface_lines(timings):
    lines = ["### Speech interface overhead (CPU)", "",
             "SpeechEmotionRecognizer.classify_batch on padded waveforms against its own modules called "
             "directly on each clip (filterbank included), both one clip at a time with channels_last.", "",
             "| input | raw modules: RTF | interface: RTF | interface overhead |", "| --- | --- | --- | --- |"]
    for name, (raw, interface) in timings.items():
        lines.append(f"| {name} | {raw:.4f} | {interface:.4f} | {100 * (interface / raw - 1):+.1f} % |")
    return lines + [""]


def speech_lines(device, rows, notes, figures):
    keys = ["5 s clip", "60 s clip", "32 clips of 2-12 s"]
    base = rows[0][1]
    lines = [f"### Speech on {device}", "",
             "| system | " + " | ".join(f"{k}: RTF | × first row" for k in keys) + " |",
             "| --- |" + " --- | --- |" * len(keys)]
    for name, cells in rows:
        parts = []
        for key in keys:
            value = cells.get(key)
            parts.append("— | —" if value is None else f"{value:.4f} | {base[key] / value:.2f}")
        lines.append(f"| {name} | " + " | ".join(parts) + " |")
    achieved = figures["gflop_per_audio_second"] / base["5 s clip"]
    kept = rows[2][1]["5 s clip"]  # the row of the kept settings
    lines += ["",
              f"The network costs {figures['gflop_per_audio_second']:.2f} GFLOP per audio second. "
              f"The fastest of its 3x3 convolutions alone runs at {figures['floor_gflops']:.0f} GFLOP/s here (the compute floor: "
              f"RTF {figures['gflop_per_audio_second'] / figures['floor_gflops']:.4f}). The 5 s clip runs at "
              f"{achieved:.0f} GFLOP/s one clip at a time, and at "
              f"{figures['gflop_per_audio_second'] / kept:.0f} GFLOP/s with the kept settings: its RTF is "
              f"{kept / (figures['gflop_per_audio_second'] / figures['floor_gflops']):.2f}× the floor's.",
              ""]
    lines += [f"- {note}" for note in notes] + [""]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="results/bench.md")
    parser.add_argument("--quick", action="store_true", help="clips a tenth as long: checks the script, not the speed")
    parser.add_argument("--compile_probe", type=int, help=argparse.SUPPRESS)  # the child of compile_probe
    parser.add_argument("--scale", type=float, default=1.0, help=argparse.SUPPRESS)  # ... and its clips' scale
    args = parser.parse_args()
    if args.compile_probe:
        return run_compile_probe(args.compile_probe, args.scale)
    scale = 0.1 if args.quick else 1.0
    # The text models first, in a fresh process: after the speech table's large allocations
    # the same text step measured up to 1.7x slower in one run. The report keeps speech first.
    rates = text_rates()
    interface_timings = speech_interface_seconds(scale)
    lines = ["# Inference benchmark", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads. Command: `make bench`. Each figure is the best of {REPEATS} "
             f"rounds ({SMALL_TABLE_REPEATS} for the overhead tables) after a warm-up; within a table, every "
             "round runs every row once (interleaved).", ""]
    lines += speech_lines("cpu", *speech_table("cpu", scale))
    if torch.cuda.is_available():
        try:  # never run here (no GPU): a failure must not cost the CPU tables
            lines += speech_lines("cuda", *speech_table("cuda", scale))
        except Exception as error:  # noqa: BLE001 - reported in the file
            lines += [f"The CUDA speech table failed: {type(error).__name__}: {error}", ""]
    else:
        lines += ["No CUDA device here: the speech table was not measured on a GPU.", ""]
    lines += speech_interface_lines(interface_timings)
    lines += ["### Text (a batch of 32 sentences of 10 words, CPU)", "",
              "| model | raw transformers (utt/s) | interface (utt/s) | interface overhead |", "| --- | --- | --- | --- |"]
    for name, pair in rates.items():
        raw, interface = pair.values()
        lines.append(f"| {name} | {raw:.1f} | {interface:.1f} | {100 * (raw / interface - 1):+.1f} % |")
    lines.append("")
    report = "\n".join(lines)
    atomic_write_text(args.output, report)
    print(report)


if __name__ == "__main__":
    main()
