"""SpeechBrain inference interfaces: speech, text and multimodal emotion recognition.

An interface folder (written by ``recipes/export.py``) holds ``hyperparams.yaml``, the
checkpoints of the trained modules, ``label_encoder.txt``, a model card and
``custom_interface.py``. Load it with::

    from mmer_lobes.interfaces import MultimodalEmotionRecognizer
    model = MultimodalEmotionRecognizer.from_hparams(source="models/mmer_fold5")
    prediction = model.classify_file("clip.wav", text="I can't believe it!")
    prediction.label, prediction.probabilities, prediction.speech, prediction.text

or, SpeechBrain-style, ``foreign_class(source=folder, pymodule_file="custom_interface.py",
classname="MultimodalEmotionRecognizer")``. ``hyperparams.yaml`` is executable (HyperPyYAML
builds objects from it): load only folders you trust.

What the interfaces compute is what the recipes compute at evaluation time:

* speech (``recipes/train.py``): Fbank -> InputNormalization (per sentence) ->
  ResNetEncoder(feats, lens) -> EmbeddingClassifier -> log-softmax, on the whole segment,
  one clip at a time (as the recipe evaluates), so :meth:`classify_batch` and
  :meth:`classify_file` give the recipe's score rows whatever the batch;
* text (``recipes/train_text.py``): tokenisation (``[CLS] ... [SEP]``, at most
  ``max_length`` tokens) -> BertEmotionClassifier (log-posteriors);
* fusion (``recipes/fuse.py``): ``log_softmax(fusion.apply(speech, text))`` with the fusion
  parameters learned on the hold-out, stored in ``hyperparams.yaml`` as ``fusion_params``.

Inputs (all defined behaviour, reported in ``flags``):

* any sample rate is resampled and multi-channel audio is downmixed
  (:func:`mmer_lobes.audio.load_audio`); flags ``resampled``, ``downmixed``;
* a clip shorter than ``min_duration`` seconds is zero-padded to that length for the
  network, and scored with the relative length of its real samples, so that the padding
  enters neither the sentence mean/variance normalisation nor the statistics pooling
  (``padded_short_clip``);
* a clip longer than ``max_duration`` seconds is scored on windows of ``window_duration``
  seconds every ``window_hop`` seconds (the last window ends at the end of the clip), at
  most ``window_batch_size`` windows at a time, and the window log-posteriors are averaged
  and renormalised (``windowed_long_clip``): the network's memory is bounded by the window
  batch, whatever the clip's length (the waveform itself is held in memory: 64 KB a second);
* a clip whose RMS (over its real samples) is below ``silence_rms`` is scored, and
  flagged ``silent_input``: there is no speech in it to judge;
* a wav file that ends before the data its header declares (truncated copy or download)
  is scored on the samples it holds (``truncated_file``;
  :func:`mmer_lobes.audio.wav_data_size`);
* an empty (or whitespace) transcript gives the speech-only result
  (``speech_only_empty_text``); no transcript at all gives ``speech_only_no_text``;
  a transcript longer than ``max_length`` tokens is truncated (``truncated_text``);
* a missing, unreadable, empty or non-finite audio file raises
  :class:`mmer_lobes.audio.AudioError` naming the file.

``from_hparams`` without ``savedir`` on a local folder loads the folder in place and
writes nothing (no ``pretrained_models/`` in the current folder).
"""
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import soundfile
import torch

from speechbrain.inference.interfaces import Pretrained, pretrained_from_hparams
from speechbrain.utils.parameter_transfer import Pretrainer

from mmer_lobes.audio import AudioError, load_audio, wav_data_size
from mmer_lobes.fusion import fusion_from_dict, log_softmax

SPEECH_MODULES = ("compute_features", "mean_var_norm", "encoder", "classifier")
TEXT_MODULES = ("text_classifier",)


class InterfaceError(ValueError):
    """An interface folder is incomplete or inconsistent, or an input cannot be used.

    Example
    -------
    >>> _check_batch(torch.zeros(2, 3, 100), None)
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.InterfaceError: wavs must be a non-empty (batch, time) tensor of mono waveforms, got shape (2, 3, 100)
    """


INPUT_HANDLING = ("min_duration", "max_duration", "window_duration", "window_hop", "window_batch_size",
                  "silence_rms")
# Folders exported before a setting existed load with its value from hparams/export.yaml
# (tests/test_interfaces.py checks that the two agree).
INPUT_HANDLING_DEFAULTS = {"silence_rms": 1.0e-4}


def check_input_handling(min_duration, max_duration, window_duration, window_hop, window_batch_size,
                         silence_rms):
    """Checks the input-handling settings of a speech interface (see the module docstring).

    Example
    -------
    >>> check_input_handling(0.5, 30.0, 10.0, 5.0, 1, 1e-4)
    >>> check_input_handling(0.5, 30.0, 40.0, 5.0, 1, 1e-4)
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.InterfaceError: need 0 < min_duration <= window_duration <= max_duration, got 0.5, 40.0, 30.0
    >>> check_input_handling(0.5, 30.0, 10.0, 5.0, 1, -1.0)
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.InterfaceError: silence_rms must be >= 0 (0 turns the check off), got -1.0
    """
    if not 0 < min_duration <= window_duration <= max_duration:
        raise InterfaceError(
            f"need 0 < min_duration <= window_duration <= max_duration, got {min_duration}, "
            f"{window_duration}, {max_duration}"
        )
    if not 0 < window_hop <= window_duration:
        raise InterfaceError(f"need 0 < window_hop <= window_duration, got {window_hop}, {window_duration}")
    if int(window_batch_size) < 1:
        raise InterfaceError(f"window_batch_size must be at least 1, got {window_batch_size}")
    if not silence_rms >= 0:  # also refuses NaN
        raise InterfaceError(f"silence_rms must be >= 0 (0 turns the check off), got {silence_rms}")


# --------------------------------------------------------------------------------------
# Loading helpers referenced by the exported hyperparams.yaml
# --------------------------------------------------------------------------------------


class FolderPretrainer(Pretrainer):
    """A :class:`~speechbrain.utils.parameter_transfer.Pretrainer` whose ``paths`` may be
    bare file names, read inside the interface folder (the ``source`` given to
    ``from_hparams`` / ``foreign_class``), so that a folder can be moved or copied freely.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> linear = torch.nn.Linear(2, 1)
    >>> torch.save(linear.state_dict(), os.path.join(folder, "weights.ckpt"))
    >>> pretrainer = FolderPretrainer(loadables={"model": torch.nn.Linear(2, 1)},
    ...                               paths={"model": "weights.ckpt"})
    >>> _ = pretrainer.collect_files(default_source=folder)
    >>> pretrainer.load_collected()
    >>> torch.equal(pretrainer.loadables["model"].weight, linear.weight)
    True
    """

    def collect_files(self, default_source=None, **kwargs):
        """Resolves bare file names against ``default_source``, then collects as usual."""
        if default_source is not None and isinstance(default_source, (str, os.PathLike)):
            for name, path in list(self.paths.items()):
                if isinstance(path, str) and "/" not in path and os.sep not in path:
                    self.paths[name] = f"{os.fspath(default_source).rstrip('/')}/{path}"
        return super().collect_files(default_source=default_source, **kwargs)


def load_state_dict_strict(module, path):
    """Pretrainer hook: loads a ``state_dict`` with ``torch.load(weights_only=True)`` and
    ``strict=True``, so a checkpoint that does not fit the architecture in
    ``hyperparams.yaml`` is an error (SpeechBrain's default transfer only warns).

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.ckpt")
    >>> torch.save(torch.nn.Linear(2, 1).state_dict(), path)
    >>> load_state_dict_strict(torch.nn.Linear(3, 1), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.InterfaceError: checkpoint .../m.ckpt does not fit Linear: ...
    """
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        reason = " ".join(str(error).split())[:300]
        raise InterfaceError(
            f"checkpoint {path} does not fit {type(module).__name__}: {reason}"
        ) from None


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class ModalityPrediction:
    """One modality's own decision: ``label`` and ``probabilities`` per class.

    Example
    -------
    >>> ModalityPrediction("sad", {"neu": 0.25, "sad": 0.75}).to_dict()
    {'label': 'sad', 'probabilities': {'neu': 0.25, 'sad': 0.75}}
    """

    label: str
    probabilities: Dict[str, float]

    def to_dict(self):
        """Plain JSON types."""
        return {"label": self.label, "probabilities": dict(self.probabilities)}


@dataclass
class EmotionPrediction:
    """The result for one input.

    Attributes
    ----------
    label : str
        The decision (argmax of ``probabilities``).
    probabilities : dict
        Class name -> posterior probability of the decision's source.
    decided_by : str
        ``"fusion:<method>"``, ``"speech"`` or ``"text"``.
    speech, text : ModalityPrediction or None
        Each modality's own prediction (None when the modality was not used).
    flags : list of str
        How the input was handled (see the module docstring).
    duration : float or None
        Seconds of audio read (before any padding).

    Example
    -------
    >>> text = ModalityPrediction("sad", {"neu": 0.1, "sad": 0.9})
    >>> result = EmotionPrediction("sad", {"neu": 0.2, "sad": 0.8}, "fusion:weighted", text=text)
    >>> result.to_dict()["text"]["label"], result.to_dict()["speech"]
    ('sad', None)
    """

    label: str
    probabilities: Dict[str, float]
    decided_by: str
    speech: Optional[ModalityPrediction] = None
    text: Optional[ModalityPrediction] = None
    flags: List[str] = field(default_factory=list)
    duration: Optional[float] = None

    def to_dict(self):
        """Plain JSON types (``speech`` / ``text`` are None when unused)."""
        return {
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "decided_by": self.decided_by,
            "speech": self.speech.to_dict() if self.speech else None,
            "text": self.text.to_dict() if self.text else None,
            "flags": list(self.flags),
            "duration": self.duration,
        }


@dataclass
class BatchPrediction:
    """The result of :meth:`classify_batch`.

    Attributes
    ----------
    classes : list of str
        The column order of every tensor.
    log_posteriors : torch.Tensor
        ``(batch, classes)`` log-posteriors of the decisions.
    labels : list of str
        The decisions.
    decided_by : list of str
        Per item: ``"fusion:<method>"``, ``"speech"`` or ``"text"``.
    speech_log_posteriors, text_log_posteriors : torch.Tensor or None
        Each modality's own ``(batch, classes)`` log-posteriors; None when the modality was
        not run at all, and rows of NaN for items it did not score (e.g. empty text).
    flags : list of list of str

    Example
    -------
    >>> scores = torch.log(torch.tensor([[0.9, 0.1], [0.3, 0.7]]))
    >>> batch = BatchPrediction(["neu", "sad"], scores, ["neu", "sad"], ["speech", "speech"],
    ...                         scores, None, [[], ["padded_short_clip"]])
    >>> second = batch.predictions()[1]
    >>> second.label, round(second.probabilities["sad"], 6), second.text, second.flags
    ('sad', 0.7, None, ['padded_short_clip'])
    """

    classes: List[str]
    log_posteriors: torch.Tensor
    labels: List[str]
    decided_by: List[str]
    speech_log_posteriors: Optional[torch.Tensor]
    text_log_posteriors: Optional[torch.Tensor]
    flags: List[List[str]]

    def __len__(self):
        return len(self.labels)

    def predictions(self):
        """One :class:`EmotionPrediction` per item."""
        results = []
        for i in range(len(self)):
            results.append(EmotionPrediction(
                label=self.labels[i],
                probabilities=_probabilities(self.log_posteriors[i], self.classes),
                decided_by=self.decided_by[i],
                speech=_modality(self.speech_log_posteriors, i, self.classes),
                text=_modality(self.text_log_posteriors, i, self.classes),
                flags=list(self.flags[i]),
            ))
        return results


def _probabilities(row, classes):
    return {name: float(p) for name, p in zip(classes, torch.exp(row.double()).tolist())}


def _modality(scores, index, classes):
    if scores is None or torch.isnan(scores[index]).any():
        return None
    row = scores[index]
    return ModalityPrediction(classes[int(row.argmax())], _probabilities(row, classes))


# --------------------------------------------------------------------------------------
# Interfaces
# --------------------------------------------------------------------------------------


class EmotionRecognizer(Pretrained):
    """Common machinery of the three interfaces (use one of the subclasses).

    ``modules`` may hold the speech modules (``compute_features``, ``mean_var_norm``,
    ``encoder``, ``classifier``), the text module (``text_classifier``), or both; with both,
    ``hparams`` must hold ``fusion_params``. ``hparams`` holds ``classes``, ``sample_rate``
    and, for speech, ``log_softmax`` and the input handling (``min_duration``,
    ``max_duration``, ``window_duration``, ``window_hop``, ``window_batch_size``,
    ``silence_rms`` (optional: :data:`INPUT_HANDLING_DEFAULTS`)); for text, ``tokenizer``
    and ``max_length``. ``from_hparams`` reads them from an exported folder.

    Example
    -------
    >>> EmotionRecognizer(modules={}, hparams={"classes": ["neu"], "sample_rate": 16000})
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.InterfaceError: the interface folder holds neither a speech nor a text model
    """

    REQUIRES = ()  # "speech" and/or "text"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.has_speech = all(name in self.mods for name in SPEECH_MODULES)
        self.has_text = all(name in self.mods for name in TEXT_MODULES)
        for modality in self.REQUIRES:
            if not getattr(self, f"has_{modality}"):
                raise InterfaceError(
                    f"{type(self).__name__} needs a {modality} model, and this interface "
                    f"folder holds none (modalities: {self.modalities}); export one with "
                    f"recipes/export.py --{modality}_folder ..."
                )
        if not (self.has_speech or self.has_text):
            raise InterfaceError("the interface folder holds neither a speech nor a text model")
        self.classes = [str(c) for c in self.hparams.classes]
        encoder = getattr(self.hparams, "label_encoder", None)
        if encoder is not None and len(encoder) > 0:
            encoded = [encoder.ind2lab[i] for i in range(len(encoder))]
            if encoded != self.classes:
                raise InterfaceError(
                    f"label_encoder.txt holds {encoded}, hyperparams.yaml says classes: "
                    f"{self.classes}"
                )
        self.sample_rate = int(self.hparams.sample_rate)
        if self.has_speech:
            missing = [k for k in INPUT_HANDLING
                       if not hasattr(self.hparams, k) and k not in INPUT_HANDLING_DEFAULTS]
            if missing:
                raise InterfaceError(f"hyperparams.yaml has no {', '.join(missing)}")
            settings = {k: getattr(self.hparams, k, INPUT_HANDLING_DEFAULTS.get(k)) for k in INPUT_HANDLING}
            wrong = [k for k, v in settings.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
            if wrong:
                raise InterfaceError(f"hyperparams.yaml: {', '.join(wrong)} must be a number")
            settings = {k: float(v) for k, v in settings.items()}
            check_input_handling(**settings)
            self.silence_rms = settings["silence_rms"]
        self.fusion = None
        if self.has_speech and self.has_text:
            params = getattr(self.hparams, "fusion_params", None)
            if not params:
                raise InterfaceError("a speech + text interface needs fusion_params in hyperparams.yaml")
            self.fusion = fusion_from_dict(dict(params))
            if list(self.fusion.classes) != self.classes:
                raise InterfaceError(
                    f"the fusion was fitted on classes {self.fusion.classes}, the models "
                    f"have {self.classes}"
                )
        if self.has_text:
            self.tokenizer = self.hparams.tokenizer
            self.max_length = int(self.hparams.max_length)

    @classmethod
    def from_hparams(cls, source, hparams_file="hyperparams.yaml", savedir=None, **kwargs):
        """Loads an interface folder (or any SpeechBrain source).

        A local folder given without ``savedir`` is loaded in place and nothing is written,
        whatever SpeechBrain's default: older releases put ``savedir`` at
        ``./pretrained_models/<class>-<hash>``, littering the current folder (1.1.2 no
        longer does). Other sources, or an explicit ``savedir``, go to SpeechBrain unchanged.
        (``foreign_class`` calls SpeechBrain's loader directly, without this method.)

        Example
        -------
        >>> import tempfile
        >>> SpeechEmotionRecognizer.from_hparams(source=tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mmer_lobes.interfaces.InterfaceError: ... holds no hyperparams.yaml: not an interface folder
        """
        if savedir is None and isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            folder = os.path.abspath(os.fspath(source))
            if not os.path.isfile(os.path.join(folder, hparams_file)):
                raise InterfaceError(f"{folder} holds no {hparams_file}: not an interface folder")
            # savedir=None: SpeechBrain reads each file where it is (no link, no copy)
            return pretrained_from_hparams(cls, source=folder, hparams_file=hparams_file,
                                           savedir=None, **kwargs)
        return super().from_hparams(source, hparams_file=hparams_file, savedir=savedir, **kwargs)

    @property
    def modalities(self):
        """The modalities this folder holds, e.g. ``["speech", "text"]``."""
        return [m for m in ("speech", "text") if getattr(self, f"has_{m}", False)]

    # ---------------------------------------------------------------- audio input ----

    def read_audio(self, path):
        """Reads ``path`` as a mono waveform at the model's rate; returns ``(signal, flags)``.

        Raises :class:`~mmer_lobes.audio.AudioError` naming the file when it is missing,
        unreadable, empty or holds non-finite samples.
        """
        path = os.fspath(path)
        signal = load_audio(path, self.sample_rate)
        flags = []
        try:
            info = soundfile.info(path)
            if info.samplerate != self.sample_rate:
                flags.append("resampled")
            if info.channels > 1:
                flags.append("downmixed")
        except RuntimeError:  # pragma: no cover - load_audio already read it
            pass
        # soundfile reads a truncated wav silently, as the samples present
        try:
            size = wav_data_size(path)
        except OSError as error:
            raise AudioError(f"cannot read audio file {path}: {error.strerror}") from None
        if size is not None and size.truncated:
            flags.append("truncated_file")
        if not torch.isfinite(signal).all():
            raise AudioError(f"audio file {path} holds non-finite samples (NaN or inf)")
        return signal, flags

    # ----------------------------------------------------------------- speech path ----

    def _speech_forward(self, wavs, wav_lens):
        """The recipe's evaluation forward pass on a batch of equal-length clips: log-posteriors."""
        wavs, wav_lens = wavs.to(self.device).float(), wav_lens.to(self.device).float()
        feats = self.mods.compute_features(wavs)
        feats = self.mods.mean_var_norm(feats, wav_lens)
        pooled = self.mods.encoder(feats, wav_lens)
        return self.hparams.log_softmax(self.mods.classifier(pooled))

    def _windowed(self, signal):
        """Average of the log-posteriors of fixed windows over a long signal, renormalised."""
        window = int(round(self.hparams.window_duration * self.sample_rate))
        hop = int(round(self.hparams.window_hop * self.sample_rate))
        starts = list(range(0, signal.shape[0] - window + 1, hop))
        if starts[-1] + window < signal.shape[0]:
            starts.append(signal.shape[0] - window)
        batch_size = int(self.hparams.window_batch_size)
        total = None
        for first in range(0, len(starts), batch_size):
            chunk = torch.stack([signal[s:s + window] for s in starts[first:first + batch_size]])
            scores = self._speech_forward(chunk, torch.ones(chunk.shape[0])).sum(dim=0)
            total = scores if total is None else total + scores
        return torch.log_softmax(total / len(starts), dim=-1)

    def speech_log_posteriors(self, wavs, wav_lens=None):
        """Speech log-posteriors ``(batch, classes)`` and per-item flags.

        Each item is scored alone, at its own length, as the recipe scores it at evaluation
        (zero padding would reach the valid frames through the convolutions, so in a padded
        batch a score would depend on the other items). Items shorter than ``min_duration``
        are zero-padded to it, with the relative length of their real samples (as a padded
        batch of the recipe), so that the normalisation and the pooling see only those;
        longer than ``max_duration``, they are windowed. Items whose RMS is below
        ``silence_rms`` are flagged ``silent_input``.
        """
        wavs, wav_lens = _check_batch(wavs, wav_lens)
        batch, time = wavs.shape
        lengths = torch.clamp(torch.round(wav_lens.double() * time).long(), 1, time).tolist()
        min_len = int(math.ceil(float(self.hparams.min_duration) * self.sample_rate))
        max_len = int(round(float(self.hparams.max_duration) * self.sample_rate))
        output = torch.empty(batch, len(self.classes), dtype=torch.float32, device=self.device)
        flags = [[] for _ in range(batch)]
        with torch.no_grad():
            for i, length in enumerate(lengths):
                signal = wavs[i, :length]
                # RMS about the mean, so that a DC offset (cheap inputs) does not hide
                # silence; no copy of the signal, which may be an hour long
                mean = float(signal.mean())
                rms = math.sqrt(max(float(torch.linalg.vector_norm(signal)) ** 2 / length - mean ** 2, 0.0))
                relative = torch.ones(1)
                if length < min_len:
                    signal = torch.nn.functional.pad(signal, (0, min_len - length))
                    relative = torch.tensor([length / min_len])
                    flags[i].append("padded_short_clip")
                if length > max_len:
                    output[i] = self._windowed(signal)
                    flags[i].append("windowed_long_clip")
                else:
                    output[i] = self._speech_forward(signal.unsqueeze(0), relative)[0]
                if rms < self.silence_rms:
                    flags[i].append("silent_input")
        return output, flags

    # ------------------------------------------------------------------- text path ----

    def text_log_posteriors(self, texts):
        """Text log-posteriors ``(len(texts), classes)`` and per-item flags, as the text
        recipe scores a batch (tokenised, padded, attention-masked)."""
        from mmer_lobes.text import encode_texts

        texts = ["" if t is None else str(t) for t in texts]
        flags = []
        for text in texts:
            count = len(self.tokenizer(text)["input_ids"]) if text.strip() else 2
            flags.append(["truncated_text"] if count > self.max_length else [])
        ids, lengths = encode_texts(self.tokenizer, texts, self.max_length)
        with torch.no_grad():
            scores = self.mods.text_classifier(ids.to(self.device), lengths.to(self.device))
        return scores.float(), flags

    # ---------------------------------------------------------------- combination ----

    def _combine(self, speech, speech_flags, texts, batch):
        """Fuses per item; returns a :class:`BatchPrediction`."""
        flags = [list(f) for f in speech_flags] if speech_flags else [[] for _ in range(batch)]
        if texts is not None and len(texts) != batch:
            raise InterfaceError(f"{len(texts)} texts for a batch of {batch} items")
        given = [texts is not None and texts[i] is not None for i in range(batch)]
        blank = [given[i] and not str(texts[i]).strip() for i in range(batch)]
        has_text = [False] * batch
        text_scores = None
        if self.has_text and texts is not None:
            has_text = [given[i] and not blank[i] for i in range(batch)]
            rows = [i for i in range(batch) if has_text[i]]
            if rows:
                scores, text_flags = self.text_log_posteriors([texts[i] for i in rows])
                text_scores = torch.full((batch, len(self.classes)), float("nan"))
                text_scores[rows] = scores.cpu()
                for i, extra in zip(rows, text_flags):
                    flags[i].extend(extra)
        elif texts is not None:
            for i in range(batch):
                if given[i] and not blank[i]:
                    flags[i].append("text_ignored_no_text_model")
        final = torch.empty(batch, len(self.classes), dtype=torch.float32)
        decided_by = []
        speech_cpu = speech.cpu() if speech is not None else None
        for i in range(batch):
            if speech_cpu is not None and has_text[i]:
                fused = log_softmax(self.fusion.apply(
                    speech_cpu[i:i + 1].double().numpy(), text_scores[i:i + 1].double().numpy()
                ))
                final[i] = torch.from_numpy(fused[0]).float()
                decided_by.append(f"fusion:{self.fusion.method}")
            elif speech_cpu is not None:
                final[i] = speech_cpu[i]
                decided_by.append("speech")
                if self.has_text and "speech" not in self.REQUIRES:
                    flags[i].append("speech_only_empty_text" if blank[i] else "speech_only_no_text")
            else:
                final[i] = text_scores[i]
                decided_by.append("text")
        labels = [self.classes[int(i)] for i in final.argmax(dim=1).tolist()]
        return BatchPrediction(
            classes=list(self.classes), log_posteriors=final, labels=labels,
            decided_by=decided_by, speech_log_posteriors=speech_cpu,
            text_log_posteriors=text_scores, flags=flags,
        )

    def _classify_batch(self, wavs=None, wav_lens=None, texts=None):
        if wavs is not None and self.has_speech:
            speech, speech_flags = self.speech_log_posteriors(wavs, wav_lens)
            return self._combine(speech, speech_flags, texts, speech.shape[0])
        if texts is None:
            raise InterfaceError(
                "nothing to classify: this model needs "
                + ("audio" if not self.has_text else "text" if not self.has_speech else "audio or text")
            )
        if not self.has_text:
            raise InterfaceError("this interface holds no text model: give audio")
        texts = list(texts)
        empty = [i for i, t in enumerate(texts) if t is None or not str(t).strip()]
        if empty:
            raise InterfaceError(
                f"text {empty[0]} of {len(texts)} is empty: without audio there is nothing to classify"
            )
        flags = None
        if wavs is not None:
            flags = [["audio_ignored_no_speech_model"] for _ in texts]
        return self._combine(None, flags, list(texts), len(texts))

    def _classify_file(self, path=None, text=None):
        flags, duration, signal = [], None, None
        if path is not None and self.has_speech:
            signal, flags = self.read_audio(path)
            duration = signal.shape[0] / self.sample_rate
        elif path is not None:
            flags = ["audio_ignored_no_speech_model"]
        wavs = signal.unsqueeze(0) if signal is not None else None
        texts = None if text is None else [text]
        if wavs is None and texts is None:
            raise InterfaceError(
                "this interface holds only a text model: give a text" if path is not None
                else "nothing to classify: give an audio file or a text"
            )
        prediction = self._classify_batch(wavs, torch.ones(1) if wavs is not None else None, texts)
        result = prediction.predictions()[0]
        result.flags = flags + result.flags
        result.duration = duration
        return result

    def forward(self, wavs, wav_lens=None, texts=None):
        """Final log-posteriors ``(batch, classes)`` (see :meth:`classify_batch`)."""
        return self._classify_batch(wavs, wav_lens, texts).log_posteriors


class SpeechEmotionRecognizer(EmotionRecognizer):
    """Speech emotion recognition with the ResNet34 model of ``recipes/train.py``.

    With an exported folder: ``SpeechEmotionRecognizer.from_hparams(source=folder)``.

    Example
    -------
    >>> model = SpeechEmotionRecognizer(modules=_doc_speech_modules(), hparams=_DOC_HPARAMS)
    >>> result = model.classify_batch(torch.rand(2, 16000) - 0.5, torch.tensor([1.0, 0.25]))
    >>> result.log_posteriors.shape, result.decided_by, result.flags
    (torch.Size([2, 2]), ['speech', 'speech'], [[], ['padded_short_clip']])
    >>> model.classify_batch(torch.zeros(1, 16000)).flags
    [['silent_input']]
    """

    REQUIRES = ("speech",)

    def classify_file(self, path):
        """Classifies one audio file; returns an :class:`EmotionPrediction`."""
        return self._classify_file(path, None)

    def classify_batch(self, wavs, wav_lens=None):
        """Classifies a padded batch ``(batch, time)`` of 16 kHz (the model's rate) mono
        waveforms with relative lengths; returns a :class:`BatchPrediction`."""
        return self._classify_batch(wavs, wav_lens, None)


class TextEmotionRecognizer(EmotionRecognizer):
    """Text emotion recognition with the BERT model of ``recipes/train_text.py``.

    With an exported folder: ``TextEmotionRecognizer.from_hparams(source=folder)``.

    Example
    -------
    >>> model = TextEmotionRecognizer(modules=_doc_text_modules(), hparams=_doc_text_hparams())
    >>> result = model.classify_text("I lost my keys again.")
    >>> result.decided_by, sorted(result.probabilities), round(sum(result.probabilities.values()), 5)
    ('text', ['neu', 'sad'], 1.0)
    """

    REQUIRES = ("text",)

    def classify_text(self, text):
        """Classifies one transcript; returns an :class:`EmotionPrediction`."""
        return self._classify_batch(None, None, [text]).predictions()[0]

    def classify_file(self, path):
        """Classifies the (UTF-8) text held in the file ``path``."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise InterfaceError(f"cannot read text file {path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise InterfaceError(f"text file {path} is not UTF-8") from None
        return self.classify_text(text.strip())

    def classify_batch(self, texts):
        """Classifies a list of transcripts; returns a :class:`BatchPrediction`."""
        return self._classify_batch(None, None, list(texts))


class MultimodalEmotionRecognizer(EmotionRecognizer):
    """Speech + text emotion recognition with late fusion (``recipes/fuse.py``).

    Works with whatever the folder holds: with both models, audio and a transcript are
    fused; audio alone (or an empty transcript) gives the speech result, flagged; a text
    alone (:meth:`classify_text`) gives the text result.

    With an exported folder: ``MultimodalEmotionRecognizer.from_hparams(source=folder)``.

    Example
    -------
    >>> fusion = {"method": "weighted", "classes": ["neu", "sad"], "weight": 0.5}
    >>> model = MultimodalEmotionRecognizer(
    ...     modules={**_doc_speech_modules(), **_doc_text_modules()},
    ...     hparams={**_DOC_HPARAMS, **_doc_text_hparams(), "fusion_params": fusion})
    >>> result = model.classify_batch(torch.rand(2, 16000) - 0.5, None, ["", "Oh no."])
    >>> result.decided_by, result.flags
    (['speech', 'fusion:weighted'], [['speech_only_empty_text'], []])
    """

    def classify_file(self, path, text=None):
        """Classifies one audio file and (optionally) its transcript."""
        return self._classify_file(path, text)

    def classify_text(self, text):
        """Classifies a transcript alone (text model only)."""
        if not self.has_text:
            raise InterfaceError("this interface holds no text model")
        return self._classify_batch(None, None, [text]).predictions()[0]

    def classify_batch(self, wavs, wav_lens=None, texts=None):
        """Classifies a padded batch of waveforms ``(batch, time)`` with relative lengths,
        and optionally one transcript per item (None or "" for none); returns a
        :class:`BatchPrediction` holding the fused and each modality's log-posteriors."""
        return self._classify_batch(wavs, wav_lens, None if texts is None else list(texts))


# Tiny untrained modules for the examples above (two classes, 16 mel bands).
_DOC_HPARAMS = {
    "classes": ["neu", "sad"], "sample_rate": 16000, "min_duration": 0.5, "max_duration": 30.0,
    "window_duration": 10.0, "window_hop": 5.0, "window_batch_size": 1,
    "log_softmax": torch.nn.LogSoftmax(dim=-1),
}


def _doc_speech_modules():
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder

    encoder = ResNetEncoder(n_mels=16, channels=[2, 4, 4, 8], blocks=[1, 1, 1, 1])
    return {
        "compute_features": Fbank(n_mels=16),
        "mean_var_norm": InputNormalization(norm_type="sentence"),
        "encoder": encoder,
        "classifier": EmbeddingClassifier(encoder.output_size, 2, embedding_size=8),
    }


def _doc_text_modules():
    from mmer_lobes.text import BertEmotionClassifier, default_text_model_path

    return {"text_classifier": BertEmotionClassifier(default_text_model_path(), n_classes=2)}


def _doc_text_hparams():
    from mmer_lobes.text import default_text_model_path, load_tokenizer

    return {"tokenizer": load_tokenizer(default_text_model_path()), "max_length": 32,
            "classes": ["neu", "sad"], "sample_rate": 16000}


def _check_batch(wavs, wav_lens):
    """Validates a waveform batch; returns ``(wavs (B, T) float, wav_lens (B,))``."""
    if not isinstance(wavs, torch.Tensor):
        wavs = torch.as_tensor(np.asarray(wavs), dtype=torch.float32)
    if wavs.dim() == 1:
        wavs = wavs.unsqueeze(0)
    if wavs.dim() != 2 or wavs.shape[0] == 0 or wavs.shape[1] == 0:
        raise InterfaceError(
            f"wavs must be a non-empty (batch, time) tensor of mono waveforms, got shape "
            f"{tuple(wavs.shape)}"
        )
    if wav_lens is None:
        wav_lens = torch.ones(wavs.shape[0])
    wav_lens = torch.as_tensor(wav_lens, dtype=torch.float32).reshape(-1)
    if wav_lens.shape[0] != wavs.shape[0]:
        raise InterfaceError(f"{wav_lens.shape[0]} lengths for {wavs.shape[0]} waveforms")
    if not ((wav_lens > 0) & (wav_lens <= 1.0 + 1e-6)).all():
        raise InterfaceError("wav_lens must be relative lengths in (0, 1]")
    if not torch.isfinite(wavs).all():
        raise InterfaceError("wavs hold non-finite samples (NaN or inf)")
    return wavs.float(), wav_lens
