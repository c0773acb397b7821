"""Speech emotion recognition with the ResNet34 model of ``recipes/train.py``.

It follows SpeechBrain's ``EncoderClassifier``, so it can stand in for
``speechbrain/emotion-recognition-wav2vec2-IEMOCAP`` in existing code::

    model = SpeechEmotionRecognizer.from_hparams(source="models/mmer_speech")
    out_prob, score, index, text_lab = model.classify_file("clip.wav")

``out_prob`` holds log-posteriors, as in SpeechBrain's emotion model. The rich result (flags,
duration) comes from :meth:`SpeechEmotionRecognizer.predict_file` / ``predict_batch``.

The computation is the recipe's evaluation: Fbank -> InputNormalization (per sentence) ->
ResNetEncoder -> EmbeddingClassifier -> log-softmax, each clip alone at its own length (zero
padding would reach the valid frames through the convolutions, so in a padded batch a score
would depend on the other clips). Short and long clips are handled as
:mod:`mmer_lobes.interfaces.inputs` describes.
"""
import math

import torch

from mmer_lobes.interfaces.inputs import (
    INPUT_HANDLING,
    InputHandling,
    absolute_lengths,
    check_batch,
    read_audio_file,
    rms_about_mean,
)
from mmer_lobes.interfaces.loading import FolderInterface, label_order
from mmer_lobes.interfaces.results import BatchPrediction
from mmer_lobes.kaldi_features import features_and_lengths


class SpeechEmotionRecognizer(FolderInterface):
    """Speech emotion recognition (see the module docstring).

    Example
    -------
    >>> from mmer_lobes.interfaces.examples import speech_hparams, speech_modules
    >>> model = SpeechEmotionRecognizer(modules=speech_modules(), hparams=speech_hparams())
    >>> out_prob, score, index, text_lab = model.classify_batch(torch.rand(2, 16000) - 0.5)
    >>> out_prob.shape, index.shape, len(text_lab)
    (torch.Size([2, 2]), torch.Size([2]), 2)
    >>> model.encode_batch(torch.rand(2, 16000) - 0.5).shape
    torch.Size([2, 1, 8])
    >>> model.predict_batch(torch.rand(2, 16000) - 0.5, torch.tensor([1.0, 0.25])).flags
    [[], ['padded_short_clip']]
    >>> model.predict_batch(torch.zeros(1, 16000)).flags
    [['silent_input']]
    """

    MODULES_NEEDED = ["compute_features", "mean_var_norm", "encoder", "classifier"]
    HPARAMS_NEEDED = ["label_encoder", "log_softmax", "sample_rate", *INPUT_HANDLING]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.classes = label_order(self.hparams.label_encoder, getattr(self.hparams, "n_classes", None))
        self.sample_rate = int(self.hparams.sample_rate)
        self.input_handling = InputHandling.from_hparams(self.hparams)

    # ------------------------------------------------------------ SpeechBrain API ----

    def encode_batch(self, wavs, wav_lens=None):
        """Emotion embeddings ``(batch, 1, embedding_size)`` (the classifier's embedding
        layer), each clip computed alone; windows of a long clip are averaged."""
        embeddings, _ = self._per_clip(wavs, wav_lens, self._embed, renormalise=False)
        return embeddings.unsqueeze(1)

    def classify_batch(self, wavs, wav_lens=None):
        """``(out_prob, score, index, text_lab)`` of a padded batch ``(batch, time)`` of mono
        waveforms at the model's rate with relative lengths ``wav_lens``: the
        log-posteriors, the best one, its index and its label."""
        return self.predict_batch(wavs, wav_lens).as_speechbrain()

    def classify_file(self, path):
        """``(out_prob, score, index, text_lab)`` of one audio file (any rate, any channels)."""
        signal, _ = read_audio_file(path, self.sample_rate)
        return self.classify_batch(signal.unsqueeze(0))

    def forward(self, wavs, wav_lens=None):
        """Runs :meth:`classify_batch`."""
        return self.classify_batch(wavs, wav_lens)

    # ------------------------------------------------------------- rich results ----

    def predict_batch(self, wavs, wav_lens=None):
        """A :class:`~mmer_lobes.interfaces.results.BatchPrediction` of a padded batch."""
        scores, flags = self.log_posteriors(wavs, wav_lens)
        scores = scores.cpu()
        labels = [self.classes[i] for i in scores.argmax(dim=1).tolist()]
        return BatchPrediction(list(self.classes), scores, labels, ["speech"] * len(labels), scores, None, flags)

    def predict_file(self, path):
        """An :class:`~mmer_lobes.interfaces.results.EmotionPrediction` of one audio file,
        with the reading flags (``resampled``, ``downmixed``, ``truncated_file``)."""
        signal, flags = read_audio_file(path, self.sample_rate)
        result = self.predict_batch(signal.unsqueeze(0)).predictions()[0]
        result.flags = flags + result.flags
        result.duration = signal.shape[0] / self.sample_rate
        return result

    def log_posteriors(self, wavs, wav_lens=None):
        """Log-posteriors ``(batch, classes)`` and the input-handling flags of each clip."""
        return self._per_clip(wavs, wav_lens, self._log_posteriors, renormalise=True)

    # ---------------------------------------------------------------- internals ----

    def _features(self, wavs, wav_lens):
        wavs, wav_lens = wavs.to(self.device).float(), wav_lens.to(self.device).float()
        feats, wav_lens = features_and_lengths(self.mods.compute_features, wavs, wav_lens)
        feats = self.mods.mean_var_norm(feats, wav_lens)
        return self.mods.encoder(feats, wav_lens)

    def _log_posteriors(self, wavs, wav_lens):
        return self.hparams.log_softmax(self.mods.classifier(self._features(wavs, wav_lens)))

    def _embed(self, wavs, wav_lens):
        return self.mods.classifier.embed(self._features(wavs, wav_lens))

    def _per_clip(self, wavs, wav_lens, network, renormalise):
        """Runs ``network`` on each clip alone (short clips padded, long ones windowed);
        returns the stacked rows and each clip's flags."""
        wavs, wav_lens = check_batch(wavs, wav_lens)
        settings = self.input_handling
        min_len = int(math.ceil(settings.min_duration * self.sample_rate))
        max_len = int(round(settings.max_duration * self.sample_rate))
        rows, flags = [], []
        with torch.no_grad():
            for i, length in enumerate(absolute_lengths(wavs, wav_lens)):
                signal, clip_flags = wavs[i, :length], []
                relative = torch.ones(1)
                if length < min_len:
                    signal = torch.nn.functional.pad(signal, (0, min_len - length))
                    relative = torch.tensor([length / min_len])
                    clip_flags.append("padded_short_clip")
                if length > max_len:
                    rows.append(self._windowed(signal, network, renormalise))
                    clip_flags.append("windowed_long_clip")
                else:
                    rows.append(network(signal.unsqueeze(0), relative)[0])
                if rms_about_mean(wavs[i, :length]) < settings.silence_rms:
                    clip_flags.append("silent_input")
                flags.append(clip_flags)
        return torch.stack(rows).float(), flags

    def _windowed(self, signal, network, renormalise):
        """The mean of ``network`` over fixed windows of a long signal (renormalised as
        log-posteriors when ``renormalise``)."""
        settings = self.input_handling
        window = int(round(settings.window_duration * self.sample_rate))
        starts = settings.window_starts(signal.shape[0], self.sample_rate)
        batch_size = int(settings.window_batch_size)
        total = None
        for first in range(0, len(starts), batch_size):
            chunk = torch.stack([signal[s:s + window] for s in starts[first:first + batch_size]])
            rows = network(chunk, torch.ones(chunk.shape[0])).sum(dim=0)
            total = rows if total is None else total + rows
        mean = total / len(starts)
        return torch.log_softmax(mean, dim=-1) if renormalise else mean

