"""Input handling of the speech interface: what happens to a clip before the network.

Every case is defined behaviour, reported as a flag of the result:

* any sample rate is resampled and multi-channel audio is downmixed
  (:func:`mmer_lobes.audio.load_audio`): ``resampled``, ``downmixed``;
* a wav file that ends before the data its header declares is scored on the samples it
  holds: ``truncated_file`` (:func:`mmer_lobes.audio.wav_data_size`);
* a clip shorter than ``min_duration`` seconds is zero-padded to that length and scored with
  the relative length of its real samples, so that the padding enters neither the sentence
  normalisation nor the statistics pooling: ``padded_short_clip``;
* a clip longer than ``max_duration`` seconds is scored on windows of ``window_duration``
  seconds every ``window_hop`` seconds (the last window ends at the end of the clip), at
  most ``window_batch_size`` windows at a time: ``windowed_long_clip``;
* a clip whose RMS about its mean (over its real samples) is below ``silence_rms`` is
  scored, and flagged ``silent_input``.

A missing, unreadable, empty or non-finite audio file raises
:class:`mmer_lobes.audio.AudioError` naming the file.
"""
import math
import os
from dataclasses import dataclass

import numpy as np
import soundfile
import torch

from mmer_lobes.audio import AudioError, load_audio, wav_data_size
from mmer_lobes.errors import ProjectError

INPUT_HANDLING = ("min_duration", "max_duration", "window_duration", "window_hop", "window_batch_size",
                  "silence_rms")


class InterfaceError(ProjectError, ValueError):
    """An interface folder is incomplete or inconsistent, or an input cannot be used.

    Example
    -------
    >>> check_batch(torch.zeros(2, 3, 100), None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.inputs.InterfaceError: wavs must be a non-empty (batch, time) tensor of mono waveforms, got shape (2, 3, 100)
    """


@dataclass(frozen=True)
class InputHandling:
    """The input-handling settings of a speech interface, checked (durations in seconds).

    Example
    -------
    >>> InputHandling(0.5, 30.0, 10.0, 5.0, 1, 1e-4).window_starts(16000 * 25, 16000)[:3]
    [0, 80000, 160000]
    >>> InputHandling(0.5, 30.0, 40.0, 5.0, 1, 1e-4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.inputs.InterfaceError: need 0 < min_duration <= window_duration <= max_duration, got 0.5, 40.0, 30.0
    """

    min_duration: float
    max_duration: float
    window_duration: float
    window_hop: float
    window_batch_size: int
    silence_rms: float

    def __post_init__(self):
        for name in INPUT_HANDLING:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InterfaceError(f"{name} must be a number, got {value!r}")
        if not 0 < self.min_duration <= self.window_duration <= self.max_duration:
            raise InterfaceError(
                f"need 0 < min_duration <= window_duration <= max_duration, got {self.min_duration}, "
                f"{self.window_duration}, {self.max_duration}"
            )
        if not 0 < self.window_hop <= self.window_duration:
            raise InterfaceError(
                f"need 0 < window_hop <= window_duration, got {self.window_hop}, {self.window_duration}"
            )
        if int(self.window_batch_size) < 1:
            raise InterfaceError(f"window_batch_size must be at least 1, got {self.window_batch_size}")
        if not self.silence_rms >= 0:  # also refuses NaN
            raise InterfaceError(f"silence_rms must be >= 0 (0 turns the check off), got {self.silence_rms}")

    @classmethod
    def from_hparams(cls, hparams):
        """The settings held by an interface's hparams (a mapping or a namespace).

        Example
        -------
        >>> InputHandling.from_hparams({"min_duration": 0.5})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mmer_lobes.interfaces.inputs.InterfaceError: the interface's hyperparams have no max_duration, window_duration, ...
        """
        values = hparams if isinstance(hparams, dict) else vars(hparams)
        missing = [name for name in INPUT_HANDLING if name not in values]
        if missing:
            raise InterfaceError(f"the interface's hyperparams have no {', '.join(missing)}")
        return cls(**{name: values[name] for name in INPUT_HANDLING})

    def window_starts(self, length, sample_rate):
        """First samples of the windows that cover a clip of ``length`` samples."""
        window = int(round(self.window_duration * sample_rate))
        hop = int(round(self.window_hop * sample_rate))
        starts = list(range(0, length - window + 1, hop))
        if starts[-1] + window < length:
            starts.append(length - window)
        return starts


def check_batch(wavs, wav_lens):
    """Validates a waveform batch; returns ``(wavs (B, T) float, wav_lens (B,))``.

    Example
    -------
    >>> wavs, lens = check_batch(torch.zeros(2, 100), None)
    >>> wavs.shape, lens.tolist()
    (torch.Size([2, 100]), [1.0, 1.0])
    """
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


def absolute_lengths(wavs, wav_lens):
    """Samples of each clip of a padded batch (at least 1).

    Example
    -------
    >>> absolute_lengths(torch.zeros(2, 100), torch.tensor([1.0, 0.26]))
    [100, 26]
    """
    time = wavs.shape[1]
    return torch.clamp(torch.round(wav_lens.double() * time).long(), 1, time).tolist()


def rms_about_mean(signal):
    """RMS of a 1-D signal about its mean, so that a DC offset does not hide silence
    (computed without a copy of the signal, which may be an hour long).

    Example
    -------
    >>> round(rms_about_mean(torch.tensor([1.0, 3.0, 1.0, 3.0])), 6)
    1.0
    """
    length = signal.shape[0]
    mean = float(signal.mean())
    return math.sqrt(max(float(torch.linalg.vector_norm(signal)) ** 2 / length - mean ** 2, 0.0))


def read_audio_file(path, sample_rate):
    """Reads ``path`` as a mono waveform at ``sample_rate``; returns ``(signal, flags)``.

    Raises :class:`~mmer_lobes.audio.AudioError` naming the file when it is missing,
    unreadable, empty or holds non-finite samples.

    Example
    -------
    >>> read_audio_file("/no/such.wav", 16000)
    Traceback (most recent call last):
    ...
    mmer_lobes.audio.AudioError: audio file not found: /no/such.wav
    """
    path = os.fspath(path)
    signal = load_audio(path, sample_rate)
    flags = []
    info = soundfile.info(path)  # load_audio has read the file already
    if info.samplerate != sample_rate:
        flags.append("resampled")
    if info.channels > 1:
        flags.append("downmixed")
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
