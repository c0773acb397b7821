"""Speech emotion recognition with the ResNet34 model of ``recipes/train.py``.

It follows SpeechBrain's ``EncoderClassifier``, so it can stand in for
``speechbrain/emotion-recognition-wav2vec2-IEMOCAP`` in existing code::

    model = SpeechEmotionRecognizer.from_hparams(source="models/mmer_speech")
    out_prob, score, index, text_lab = model.classify_file("clip.wav")

``out_prob`` holds log-posteriors, as in SpeechBrain's emotion model. The rich result (flags,
duration) comes from :meth:`SpeechEmotionRecognizer.predict_file` / ``predict_batch``.

The computation is the recipe's evaluation: Fbank -> InputNormalization (per sentence) ->
ResNetEncoder -> EmbeddingClassifier -> log-softmax. Clips run in batches of similar
durations (:mod:`mmer_lobes.batching`): the ResNet trunk zeroes the padding before every
convolution, so a clip's scores are those it gets alone, in any batch. The batch size is the
folder's ``batch_size`` on a GPU and ``cpu_batch_size`` on a CPU (each the fastest measured by
``make bench``), or :attr:`SpeechEmotionRecognizer.max_batch_size` where a caller sets it. Short
and long clips are handled as :mod:`mmer_lobes.interfaces.inputs` describes.
"""
import math

import torch

from mmer_lobes.batching import eval_batch_size, length_sorted_batches
from mmer_lobes.interfaces.inputs import (
    INPUT_HANDLING,
    InputHandling,
    InterfaceError,
    absolute_lengths,
    check_batch,
    read_audio_file,
    rms_about_mean,
)
from mmer_lobes.interfaces.loading import FolderInterface, label_order
from mmer_lobes.interfaces.results import BatchPrediction
from mmer_lobes.kaldi_features import features_and_lengths
from mmer_lobes.onnx_speech import OnnxSpeechScorer

# Speed settings of a folder's hyperparams, with the values a folder exported before them gets.
SPEED_SETTINGS = ("batch_size", "cpu_batch_size", "channels_last")
SPEED_DEFAULTS = dict(zip(SPEED_SETTINGS, (32, 1, False)))


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
    >>> model.max_batch_size = 4; model.batch_size
    4
    """

    MODULES_NEEDED = ["compute_features", "mean_var_norm", "encoder", "classifier"]
    HPARAMS_NEEDED = ["label_encoder", "log_softmax", "sample_rate", *INPUT_HANDLING]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.classes = label_order(self.hparams.label_encoder, getattr(self.hparams, "n_classes", None))
        self.sample_rate = int(self.hparams.sample_rate)
        self.input_handling = InputHandling.from_hparams(self.hparams)
        self.max_batch_size = None  # None: the folder's size for the device (batch_size)
        self.onnx_scorer = None  # use_onnx: the network on onnxruntime instead of PyTorch
        self.speed = {name: getattr(self.hparams, name, SPEED_DEFAULTS[name]) for name in SPEED_SETTINGS}
        if self.speed["channels_last"]:
            # The convolutions' memory layout: faster on a CPU (make bench); same numbers.
            self.mods.encoder.to(memory_format=torch.channels_last)

    @property
    def batch_size(self):
        """Clips scored at a time: :attr:`max_batch_size` if set, else the folder's
        ``batch_size`` (GPU) or ``cpu_batch_size`` (CPU); 1 for an encoder that is not exact
        in a padded batch (:func:`mmer_lobes.batching.eval_batch_size`)."""
        if self.max_batch_size is not None:
            size = int(self.max_batch_size)
            if size < 1:
                raise InterfaceError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
            return size if getattr(self.mods.encoder, "batch_exact", False) else 1
        return eval_batch_size(self.mods.encoder, self.device, self.speed["batch_size"], self.speed["cpu_batch_size"])

    def use_onnx(self, path):
        """Scores with the exported network ``path`` (``speech.onnx`` of ``recipes/export.py
        --onnx``) on onnxruntime's CPU provider: the filterbank and the input handling stay in
        PyTorch. Embeddings (:meth:`encode_batch`) still come from PyTorch."""
        self.onnx_scorer = OnnxSpeechScorer(path)
        return self

    # ------------------------------------------------------------ SpeechBrain API ----

    def encode_batch(self, wavs, wav_lens=None):
        """Emotion embeddings ``(batch, 1, embedding_size)`` (the classifier's embedding
        layer); windows of a long clip are averaged."""
        embeddings, _ = self._score_clips(wavs, wav_lens, self._embed, renormalise=False)
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
        return self._score_clips(wavs, wav_lens, self._log_posteriors, renormalise=True)

    # ---------------------------------------------------------------- internals ----

    def _filterbank(self, wavs, wav_lens):
        """Filterbank features on the model's device and their exact relative frame lengths."""
        wavs, wav_lens = wavs.to(self.device).float(), wav_lens.to(self.device).float()
        return features_and_lengths(self.mods.compute_features, wavs, wav_lens)

    def _features(self, wavs, wav_lens):
        feats, frame_lens = self._filterbank(wavs, wav_lens)
        return self.mods.encoder(self.mods.mean_var_norm(feats, frame_lens), frame_lens)

    def _log_posteriors(self, wavs, wav_lens):
        if self.onnx_scorer is not None:  # the graph holds the normalisation, encoder and head
            return self.onnx_scorer(*self._filterbank(wavs, wav_lens))
        return self.hparams.log_softmax(self.mods.classifier(self._features(wavs, wav_lens)))

    def _embed(self, wavs, wav_lens):
        return self.mods.classifier.embed(self._features(wavs, wav_lens))

    def _score_clips(self, wavs, wav_lens, network, renormalise):
        """Runs ``network`` on every clip: long ones windowed, the others (short ones padded
        to ``min_duration``) in batches of similar lengths; returns the rows in the input's
        order and each clip's flags."""
        wavs, wav_lens = check_batch(wavs, wav_lens)
        counts = getattr(self.mods.compute_features, "sample_counts", None)
        if counts is not None:  # a Kaldi front end names a clip shorter than one window by its
            counts(wav_lens, wavs.shape[1])  # index in this batch, before clips are regrouped
        settings = self.input_handling
        min_len = int(math.ceil(settings.min_duration * self.sample_rate))
        max_len = int(round(settings.max_duration * self.sample_rate))
        lengths = absolute_lengths(wavs, wav_lens)
        rows, flags, whole = [None] * len(lengths), [], []
        with torch.no_grad():
            for i, length in enumerate(lengths):
                clip_flags = ["padded_short_clip"] if length < min_len else []
                if length > max_len:
                    rows[i] = self._windowed(wavs[i, :length], network, renormalise)
                    clip_flags.append("windowed_long_clip")
                else:
                    whole.append(i)
                if rms_about_mean(wavs[i, :length]) < settings.silence_rms:
                    clip_flags.append("silent_input")
                flags.append(clip_flags)
            for group in length_sorted_batches([lengths[i] for i in whole], self.batch_size):
                members = [whole[g] for g in group]
                span = max(min_len, lengths[members[0]])
                batch = torch.zeros(len(members), span, dtype=wavs.dtype)
                for row, i in enumerate(members):
                    batch[row, :lengths[i]] = wavs[i, :lengths[i]]
                scores = network(batch, torch.tensor([lengths[i] / span for i in members]))
                for row, i in enumerate(members):
                    rows[i] = scores[row]
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

