"""Exact batched scoring: 32 clips of 1-12 s scored in one padded batch get the
log-posteriors each gets alone (within 1e-5), through the speech interface's whole pipeline
(filterbank, sentence normalisation, the masked ResNet trunk, pooling, FC layers), for
SpeechBrain's Fbank and for the Kaldi front end of imported wespeaker models."""
import pytest
import torch
import torch.nn as nn
from speechbrain.lobes.features import Fbank
from speechbrain.processing.features import InputNormalization

from mmer_lobes.batching import eval_batch_size, length_sorted_batches
from mmer_lobes.embedding_encoder import EmbeddingEncoder
from mmer_lobes.interfaces import SpeechEmotionRecognizer
from mmer_lobes.interfaces.examples import speech_hparams
from mmer_lobes.kaldi_features import KaldiFbank, features_and_lengths
from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder

SAMPLE_RATE = 16000


def randomise(module, seed):
    """Non-trivial batch-norm statistics and large output weights, so that the
    log-posteriors spread out and a leak of padding could not hide behind them."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
    return module


def recognizer(front_end):
    torch.manual_seed(0)
    encoder = randomise(ResNetEncoder(n_mels=32, channels=[4, 8, 8, 16], blocks=[1, 2, 1, 1]), 1)
    classifier = randomise(EmbeddingClassifier(encoder.output_size, 4, embedding_size=16), 2)
    with torch.no_grad():
        classifier.output.weight.mul_(20)
    if front_end == "fbank":
        features, norm = Fbank(n_mels=32), InputNormalization(norm_type="sentence", std_norm=True)
    else:
        features, norm = KaldiFbank(n_mels=32), InputNormalization(norm_type="sentence", std_norm=False)
    modules = {"compute_features": features, "mean_var_norm": norm, "encoder": encoder, "classifier": classifier}
    model = SpeechEmotionRecognizer(modules=modules, hparams=speech_hparams(("ang", "hap", "neu", "sad")),
                                    run_opts={"device": "cpu"})
    return model.eval()


def clips_of_1_to_12_seconds():
    """32 clips, 1-12 s, at lengths that are no multiple of the frame shift, in a padded batch."""
    gen = torch.Generator().manual_seed(5)
    lengths = (SAMPLE_RATE * (1 + 11 * torch.rand(32, generator=gen))).long()
    lengths[0], lengths[1] = SAMPLE_RATE + 7, 12 * SAMPLE_RATE  # the two ends of the range
    wavs = torch.zeros(32, int(lengths.max()))
    for row, length in enumerate(lengths.tolist()):
        wavs[row, :length] = 0.1 * torch.randn(length, generator=gen)
    return wavs, lengths.double() / wavs.shape[1]


@pytest.fixture(scope="module")
def clips():
    return clips_of_1_to_12_seconds()


@pytest.mark.parametrize("front_end", ["fbank", "kaldi"])
def test_32_clips_in_one_padded_batch_score_as_alone(front_end, clips):
    model = recognizer(front_end)
    wavs, lens = clips
    model.max_batch_size = 32
    together = model.log_posteriors(wavs, lens)[0]
    model.max_batch_size = 1
    alone = model.log_posteriors(wavs, lens)[0]
    assert together.shape == (32, 4) and torch.isfinite(together).all()
    assert (together - alone).abs().max() <= 1e-5
    assert (alone.max(1).values - alone.min(1).values).min() > 1  # far from uniform: errors would show
    # the same network without the lengths (padding counted as signal) is visibly different:
    # the figure above is not small for lack of a difference to find
    with torch.no_grad():
        feats, frame_lens = features_and_lengths(model.mods.compute_features, wavs, lens.float())
        feats = model.mods.mean_var_norm(feats, frame_lens)
        unmasked = model.hparams.log_softmax(model.mods.classifier(model.mods.encoder(feats)))
    assert (unmasked - alone).abs().max() > 0.1


def test_a_clip_too_short_for_a_kaldi_window_is_named_by_its_index_in_the_callers_batch():
    from mmer_lobes.kaldi_features import ClipTooShortError

    model = recognizer("kaldi")
    wavs = 0.1 * torch.randn(3, 2 * SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    # the short clip (300 samples) is row 2 of the caller's batch; it is scored in a
    # length-sorted group of its own (one clip at a time on a CPU), where its row is 0
    lens = torch.tensor([0.5, 1.0, 300 / (2 * SAMPLE_RATE)], dtype=torch.float64)
    with pytest.raises(ClipTooShortError, match=r"clip 2 of the batch has 300 samples"):
        model.log_posteriors(wavs, lens)


def test_fbank_frame_lengths_are_the_frames_of_each_clip_alone(clips):
    """The relative frame lengths of a padded batch select exactly the frames each clip has
    alone (1 + samples // hop for SpeechBrain's centred STFT), and those frames are equal."""
    wavs, lens = clips
    fbank = Fbank(n_mels=32)
    feats, frame_lens = features_and_lengths(fbank, wavs, lens.float())
    counts = torch.round(frame_lens * feats.shape[1]).long()
    for row in (0, 1, 7):
        samples = int(round(float(lens[row]) * wavs.shape[1]))
        alone = fbank(wavs[row:row + 1, :samples])[0]
        assert counts[row] == alone.shape[0] == 1 + samples // 160
        assert torch.allclose(feats[row, :alone.shape[0]], alone, atol=1e-4, rtol=0)


def test_batch_size_by_device_and_for_inexact_encoders():
    model = recognizer("fbank")
    assert model.batch_size == 1  # the examples' hparams name no size: 1 on the CPU
    model.speed["cpu_batch_size"] = 8
    assert model.batch_size == 8
    assert eval_batch_size(model.mods.encoder, "cuda:0", 32, 8) == 32
    ecapa_like = EmbeddingEncoder(nn.Identity(), 4)  # not exact in a padded batch: one at a time
    assert eval_batch_size(ecapa_like, "cuda:0", 32, 8) == 1
    model.max_batch_size = 0
    with pytest.raises(ValueError, match="max_batch_size must be at least 1"):
        model.batch_size


def test_length_sorted_batches_cover_every_clip_once():
    lengths = [5, 1, 9, 9, 3, 7, 2]
    batches = length_sorted_batches(lengths, 3)
    assert sorted(i for batch in batches for i in batch) == list(range(7))
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(lengths, reverse=True)
