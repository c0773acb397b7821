#!/usr/bin/env python3
"""Training and inference speed of the speech and text models on this machine.

    python tests/benchmarks/bench_speed.py --output results/bench.md

Speech figures are audio seconds processed per wall second (a batch of 32 segments of 2 s,
log-mel features precomputed); the named baseline, run in the same process on the same
input, is SpeechBrain's ECAPA-TDNN speaker encoder (lobes.models.ECAPA_TDNN, its recipe's
default size), so each row also reads as a ratio against it. Text figures are utterances
per second with the default MiniLM model. The filterbank front ends are timed on a padded
batch of clips of mixed lengths, against a per-utterance loop of torchaudio's Kaldi filterbank.

The real-time factor (processing seconds per audio second, lower is faster) of
``classify_file`` is measured on the interfaces of mmer_lobes.interfaces built from
hparams/inference/speech.yaml and text.yaml as they stand (the default architecture and input
handling; untrained weights: speed does not depend on them), on wav files of several lengths; the baseline is SpeechBrain's own ``EncoderClassifier.classify_file`` with
the ECAPA-TDNN above, on the same files.
"""
import argparse
import os
import platform
import tempfile
import time

import numpy as np
import soundfile
import torch
from hyperpyyaml import load_hyperpyyaml

from mmer_lobes.files import atomic_write_text
from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder

BATCH, SECONDS, FRAMES_PER_SECOND, REPEATS = 32, 2.0, 100, 3
FRONT_END_REPEATS = 20  # the front ends take tens of milliseconds: best of 3 is noise
CLIP_SECONDS = (5.0, 60.0)  # a typical IEMOCAP segment; a long recording (windowed)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def best_time(step, repeats=REPEATS):
    """Fastest of ``repeats`` runs of ``step`` after one warm-up run."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def speech_rates(encoder, head, n_mels):
    """(train, inference) audio seconds per second of an encoder + head."""
    feats = torch.randn(BATCH, int(SECONDS * FRAMES_PER_SECOND), n_mels)
    labels = torch.randint(0, 4, (BATCH,))
    lengths = torch.ones(BATCH)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=1e-3)

    def train_step():
        encoder.train(), head.train()
        loss = torch.nn.functional.cross_entropy(head(encoder(feats, lengths).squeeze(1)), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def infer_step():
        encoder.eval(), head.eval()
        with torch.no_grad():
            head(encoder(feats, lengths).squeeze(1))

    audio = BATCH * SECONDS
    return audio / best_time(train_step), audio / best_time(infer_step)


def text_rates():
    """(train, inference) utterances per second of the default BERT emotion classifier."""
    from mmer_lobes.text import BertEmotionClassifier, default_text_model_path, encode_texts, load_tokenizer

    source = default_text_model_path()
    tokenizer = load_tokenizer(source)
    model = BertEmotionClassifier(source, n_classes=4)
    texts = ["I can't believe you did that to me, again."] * BATCH
    tokens, lengths = encode_texts(tokenizer, texts, max_length=128)
    labels = torch.randint(0, 4, (BATCH,))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-5)

    def train_step():
        model.train()
        loss = torch.nn.functional.nll_loss(model(tokens, lengths), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def infer_step():
        model.eval()
        with torch.no_grad():
            model(tokens, lengths)

    return BATCH / best_time(train_step), BATCH / best_time(infer_step)


def _load_yaml(name, overrides):
    with open(os.path.join(REPO_ROOT, "hparams", name), encoding="utf-8") as handle:
        return load_hyperpyyaml(handle, overrides)


def default_interfaces():
    """(speech-only, speech + text) recognizers built from hparams/inference/speech.yaml and
    text.yaml as they stand (the paper's architecture, untrained: no pretrainer is run)."""
    from mmer_lobes.interfaces import MultimodalEmotionRecognizer, SpeechEmotionRecognizer

    classes = ["ang", "hap", "neu", "sad"]
    parts = {}
    for kind in ("speech", "text"):
        parts[kind] = _load_yaml(os.path.join("inference", f"{kind}.yaml"), {})
        parts[kind]["label_encoder"].update_from_iterable(classes)
    run_opts = {"device": "cpu"}
    speech_only = SpeechEmotionRecognizer(modules=parts["speech"]["modules"], hparams=parts["speech"],
                                          run_opts=run_opts)
    both = MultimodalEmotionRecognizer(
        modules={**parts["speech"]["modules"], **parts["text"]["modules"]},
        hparams={**parts, "fusion_params": {"method": "weighted", "classes": classes, "weight": 0.5}},
        run_opts=run_opts,
    )
    return speech_only, both


def ecapa_classifier(ecapa):
    """SpeechBrain's EncoderClassifier around the ECAPA-TDNN: the baseline interface."""
    from speechbrain.dataio.encoder import CategoricalEncoder
    from speechbrain.inference.classifiers import EncoderClassifier
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    from speechbrain.processing.features import InputNormalization

    labels = CategoricalEncoder()
    labels.update_from_iterable(["ang", "hap", "neu", "sad"])
    labels.expect_len(4)
    modules = {"compute_features": Fbank(n_mels=80), "mean_var_norm": InputNormalization(norm_type="sentence"),
               "embedding_model": ecapa, "classifier": Classifier(192, out_neurons=4)}
    return EncoderClassifier(modules=modules, hparams={"label_encoder": labels}, run_opts={"device": "cpu"})


def real_time_factors(ecapa):
    """{clip seconds: {system: processing seconds / audio seconds}} of classify_file."""
    speech_only, both = default_interfaces()
    baseline = ecapa_classifier(ecapa)
    systems = {
        "ECAPA-TDNN EncoderClassifier (SpeechBrain) — baseline": lambda p: baseline.classify_file(p),
        "mmer SpeechEmotionRecognizer (speech only)": lambda p: speech_only.classify_file(p),
        "mmer MultimodalEmotionRecognizer (speech + text)":
            lambda p: both.classify_file(p, text="I can't believe you did that to me, again."),
    }
    factors = {}
    with tempfile.TemporaryDirectory() as folder:
        for seconds in CLIP_SECONDS:
            path = os.path.join(folder, f"clip{seconds:.0f}s.wav")
            noise = np.random.RandomState(0).randn(int(seconds * 16000)).astype(np.float32) * 0.1
            soundfile.write(path, noise, 16000)
            factors[seconds] = {
                name: best_time(lambda: classify(path)) / seconds for name, classify in systems.items()
            }
    return factors


class _EcapaHead(torch.nn.Module):
    def __init__(self, size):
        super().__init__()
        self.linear = torch.nn.Linear(size, 4)

    def forward(self, x):
        return self.linear(x.reshape(x.shape[0], -1))


def front_end_times():
    """Seconds for the filterbanks of a padded batch of 32 clips of 2-12 s (IEMOCAP-like):
    ``{name: seconds}``, the first the baseline: a per-utterance loop of torchaudio's Kaldi
    filterbank over each clip alone (as wespeaker computes them), padded into a batch."""
    import torchaudio.compliance.kaldi as kaldi
    from speechbrain.lobes.features import Fbank

    from mmer_lobes.kaldi_features import KaldiFbank

    gen = torch.Generator().manual_seed(0)
    samples = [int(16000 * s) for s in (2 + 10 * torch.rand(BATCH, generator=gen)).tolist()]
    clips = [torch.randn(n, generator=gen) * 0.1 for n in samples]
    wavs = torch.zeros(BATCH, max(samples))
    for row, clip in enumerate(clips):
        wavs[row, : len(clip)] = clip
    lens = torch.tensor(samples, dtype=torch.float32) / max(samples)
    fbank, sb_fbank = KaldiFbank().eval(), Fbank(n_mels=80)

    def loop():
        return [kaldi.fbank(clip[None] * 32768, num_mel_bins=80, window_type="hamming", use_energy=False)
                for clip in clips]

    with torch.no_grad():
        return {
            "torchaudio kaldi.fbank, one clip at a time, then padded into a batch — baseline":
                best_time(lambda: torch.nn.utils.rnn.pad_sequence(loop(), batch_first=True), FRONT_END_REPEATS),
            "torchaudio kaldi.fbank, one clip at a time, left unpadded (the floor)": best_time(loop, FRONT_END_REPEATS),
            "mmer KaldiFbank, the padded batch (exact frame lengths)":
                best_time(lambda: fbank(wavs, lens), FRONT_END_REPEATS),
            "SpeechBrain Fbank, the padded batch (80 mels; padding computed too)":
                best_time(lambda: sb_fbank(wavs), FRONT_END_REPEATS),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="results/bench.md")
    args = parser.parse_args()
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    torch.manual_seed(0)
    rows = []
    ecapa = ECAPA_TDNN(input_size=80, lin_neurons=192)
    base_train, base_infer = speech_rates(ecapa, _EcapaHead(192), 80)
    rows.append(("ECAPA-TDNN (SpeechBrain, 80 fbank) — baseline", base_train, base_infer))
    for label, n_mels, channels in (
        ("ResNet34 default (128 mels, 32-64-128-256)", 128, [32, 64, 128, 256]),
        ("ResNet34 demo (64 mels, 4-8-16-32)", 64, [4, 8, 16, 32]),
    ):
        encoder = ResNetEncoder(n_mels, channels)
        head = EmbeddingClassifier(encoder.output_size, 4, 512 if channels[0] == 32 else 64)
        train, infer = speech_rates(encoder, head, n_mels)
        rows.append((label, train, infer))
    text_train, text_infer = text_rates()
    factors = real_time_factors(ecapa)
    front_ends = front_end_times()

    lines = [
        "# Speed benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads. Command: `make bench`.",
        "",
        f"Speech: batch of {BATCH} segments of {SECONDS:.0f} s (precomputed features), best of {REPEATS}.",
        "",
        "| model | train (audio s / s) | × baseline | inference (audio s / s) | × baseline |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, train, infer in rows:
        lines.append(f"| {label} | {train:.1f} | {train / base_train:.2f} | {infer:.1f} | {infer / base_infer:.2f} |")
    lines += [
        "",
        f"Text (default all-MiniLM-L6-v2, batch {BATCH}, a 10-word sentence):",
        f"training {text_train:.1f} utterances/s, inference {text_infer:.1f} utterances/s.",
        "",
        "Real-time factor of `classify_file` (processing s / audio s, lower is faster; "
        f"default architecture, untrained weights, best of {REPEATS}):",
        "",
        "| interface | " + " | ".join(f"{s:.0f} s clip | × baseline" for s in CLIP_SECONDS) + " |",
        "| --- |" + " --- | --- |" * len(CLIP_SECONDS),
    ]
    for name in factors[CLIP_SECONDS[0]]:
        cells = []
        for seconds in CLIP_SECONDS:
            base = next(iter(factors[seconds].values()))
            cells.append(f"{factors[seconds][name]:.3f} | {factors[seconds][name] / base:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    base = next(iter(front_ends.values()))
    lines += [
        "",
        f"Filterbanks of a padded batch of {BATCH} clips of 2-12 s ("
        f"best of {FRONT_END_REPEATS}; × baseline is time over the baseline's, lower is faster):",
        "",
        "| front end | seconds | × baseline |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {seconds:.3f} | {seconds / base:.2f} |" for name, seconds in front_ends.items()]
    lines.append("")
    report = "\n".join(lines)
    atomic_write_text(args.output, report)
    print(report)


if __name__ == "__main__":
    main()
