"""Reading audio for the recipes and the inference interfaces.

Every waveform enters through :func:`load_audio`, which gives a mono float tensor at the
model's sample rate whatever the file holds (resampling and downmixing), and turns a
missing, unreadable or empty file into an :class:`AudioError` that names the file.
"""
import os

import soundfile
import torch
import torchaudio
import speechbrain as sb


class AudioError(ValueError):
    """An audio file is missing, unreadable, or holds no samples."""


def load_audio(path, sample_rate=16000, start=None, stop=None):
    """Reads ``path`` as a mono float32 tensor at ``sample_rate``.

    Arguments
    ---------
    path : str
        Any format soundfile reads (wav, flac, ogg...).
    sample_rate : int
        The rate the model expects; other rates are resampled.
    start, stop : int, optional
        Sample range to read, in the file's own rate (as in segment manifests).

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, torch.rand(8000, 2).numpy() - 0.5, 8000)
    >>> load_audio(path, 16000).shape
    torch.Size([16000])
    >>> load_audio(os.path.join(os.path.dirname(path), "missing.wav"))
    Traceback (most recent call last):
    ...
    mmer_lobes.audio.AudioError: audio file not found: .../missing.wav
    """
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    try:
        data, file_rate = soundfile.read(
            path, start=start or 0, stop=stop, dtype="float32", always_2d=True
        )
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(f"cannot read audio file {path}: {error}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file {path} holds no samples")
    signal = torch.from_numpy(data).mean(dim=1)
    if file_rate != sample_rate:
        signal = torchaudio.functional.resample(signal, file_rate, sample_rate)
    return signal


def audio_pipeline(sample_rate=16000, segments=False):
    """A SpeechBrain dynamic item: ``wav`` -> ``sig``.

    Arguments
    ---------
    sample_rate : int
    segments : bool
        The manifest cuts files into segments with ``start``/``stop`` sample fields.

    Example
    -------
    >>> audio_pipeline(16000).provides, audio_pipeline(16000, segments=True).takes
    (('sig',), ('wav', 'start', 'stop'))
    """
    if segments:

        @sb.utils.data_pipeline.takes("wav", "start", "stop")
        @sb.utils.data_pipeline.provides("sig")
        def read_segment(wav, start, stop):
            return load_audio(wav, sample_rate, int(start), int(stop))

        return read_segment

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def read(wav):
        return load_audio(wav, sample_rate)

    return read
