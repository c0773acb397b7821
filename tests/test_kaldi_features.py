"""KaldiFbank: the features wespeaker's models were trained on, for a padded batch."""
import glob
import os

import pytest
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi
from speechbrain.processing.features import InputNormalization, make_padding_mask

from mmer_lobes.audio import load_audio
from mmer_lobes.errors import ProjectError
from mmer_lobes.kaldi_features import ClipTooShortError, KaldiFbank, kaldi_frame_count
from wespeaker_reference import SAMPLE_RATE, wespeaker_features


def sentence_mean_norm():
    """The project's per-utterance mean normalisation, as the recipes' ``mean_var_norm``."""
    return InputNormalization(norm_type="sentence", std_norm=False)


def padded_batch(clips):
    """Zero-padded ``(batch, samples)`` and SpeechBrain's relative lengths (float32)."""
    longest = max(len(clip) for clip in clips)
    wavs = torch.zeros(len(clips), longest)
    for row, clip in enumerate(clips):
        wavs[row, : len(clip)] = clip
    return wavs, torch.tensor([len(clip) for clip in clips]) / longest


def test_matches_wespeaker_on_a_corpus_wav(mini_corpora):
    path = sorted(glob.glob(os.path.join(mini_corpora, "IEMOCAP_full_release", "**", "*.wav"),
                            recursive=True))[0]
    pcm = torch.from_numpy(soundfile.read(path, dtype="int16")[0]).to(torch.float)[None]
    expected = wespeaker_features(pcm)

    wav = load_audio(path, SAMPLE_RATE)  # floats in [-1, 1), as the recipes read it
    wavs, wav_lens = wav[None], torch.ones(1)
    fbank = KaldiFbank().eval()
    feats = sentence_mean_norm()(fbank(wavs, wav_lens),
                                 fbank.relative_frame_lengths(wav_lens, wavs.shape[1]))

    assert feats.shape == (1, kaldi_frame_count(len(wav)), 80) == (1, *expected.shape)
    assert (feats[0] - expected).abs().max() <= 1e-4


def test_each_clip_of_a_padded_batch_is_computed_alone():
    torch.manual_seed(0)
    lengths = [16000, 12345, 7001, 560, 400]
    clips = [torch.randn(length) * 0.1 for length in lengths]
    wavs, wav_lens = padded_batch(clips)
    fbank = KaldiFbank().eval()
    feats = fbank(wavs, wav_lens)
    frame_lens = fbank.relative_frame_lengths(wav_lens, wavs.shape[1])
    normalised = sentence_mean_norm()(feats, frame_lens)

    assert feats.shape == (len(clips), kaldi_frame_count(16000), 80)
    assert fbank.frame_counts(wav_lens, wavs.shape[1]).tolist() == [98, 75, 42, 2, 1]
    for row, clip in enumerate(clips):
        alone = fbank(clip[None])[0]
        frames = kaldi_frame_count(len(clip))
        assert alone.shape == (frames, 80)
        assert (feats[row, :frames] - alone).abs().max() <= 1e-5
        assert feats[row, frames:].eq(0).all()
        assert (normalised[row, :frames] - (alone - alone.mean(0))).abs().max() <= 1e-5


def test_without_lengths_every_row_is_taken_whole():
    torch.manual_seed(1)
    wavs, _ = padded_batch([torch.randn(8000) * 0.1, torch.randn(3000) * 0.1])
    feats = KaldiFbank().eval()(wavs)
    padded_clip = kaldi.fbank(wavs[1:] * 32768, num_mel_bins=80, window_type="hamming",
                              use_energy=False)
    assert (feats[1] - padded_clip).abs().max() <= 1e-5


def test_relative_frame_lengths_select_exactly_the_real_frames():
    # f / F in float32 alone would let make_padding_mask count one padding frame in a few
    # percent of the pairs; the helper's lengths must select exactly f frames both there and
    # by rounding (the project's ResNet pooling).
    fbank = KaldiFbank()
    for num_samples, step in ((16000, 1), (48000, 1), (480_321, 53)):
        wav_lens = torch.arange(400, num_samples + 1, step) / num_samples
        frames = fbank.frame_counts(wav_lens, num_samples)
        lengths = fbank.relative_frame_lengths(wav_lens, num_samples)
        total = kaldi_frame_count(num_samples)
        assert lengths.dtype == torch.float32 and float(lengths.max()) == 1.0
        mask = make_padding_mask(torch.zeros(len(lengths), total), lengths)
        assert torch.equal(mask.sum(1), frames)
        assert torch.equal(torch.round(lengths * total).long(), frames)


def test_a_clip_shorter_than_one_frame_is_an_error_naming_its_length():
    fbank = KaldiFbank()
    with pytest.raises(ClipTooShortError, match=r"clip 0 of the batch has 399 samples "
                                                r"\(0\.025 s at 16000 Hz\).*at least 400"):
        fbank(torch.zeros(1, 399))
    wavs, wav_lens = padded_batch([torch.zeros(16000), torch.zeros(300)])
    with pytest.raises(ClipTooShortError, match="clip 1 of the batch has 300 samples"):
        fbank(wavs, wav_lens)
    assert issubclass(ClipTooShortError, ProjectError) and issubclass(ClipTooShortError, ValueError)


def test_dither_only_in_training_mode():
    torch.manual_seed(2)
    wavs, wav_lens = padded_batch([torch.randn(8000) * 0.1, torch.randn(5000) * 0.1])
    fbank = KaldiFbank(dither=1.0)

    fbank.eval()
    clean = fbank(wavs, wav_lens)
    assert torch.equal(clean, fbank(wavs, wav_lens))
    assert torch.equal(clean, KaldiFbank(dither=0.0).train()(wavs, wav_lens))

    fbank.train()
    dithered = fbank(wavs, wav_lens)
    assert not torch.equal(dithered, fbank(wavs, wav_lens))
    assert not torch.equal(dithered, clean)
    frames = fbank.frame_counts(wav_lens, wavs.shape[1])
    assert dithered[1, frames[1]:].eq(0).all()  # padding frames stay padding
