"""Reading audio for the recipes and the inference interfaces.

Every waveform enters through :func:`load_audio`, which gives a mono float tensor at the
model's sample rate whatever the file holds (resampling and downmixing), and turns a
missing, unreadable or empty file into an :class:`AudioError` that names the file.

:func:`wav_data_size` compares what a wav header declares with what the file holds: the
one place where a truncated file is recognised, for the interfaces (flag
``truncated_file``) and the corpus preparations (a warning). It needs no torch, so
``data_prep`` imports this module cheaply: torch, torchaudio and SpeechBrain are imported
where they are used.
"""
import os
import struct
from typing import NamedTuple, Optional

import soundfile

from mmer_lobes.errors import ProjectError

# The RIFF size fields are 32-bit: RF64 files put 0xFFFFFFFF there and the real size in a
# ds64 chunk. Writers to a pipe, which do not know the size yet, put 0xFFFFFFFF, 0x7FFFF000
# (SoX) or 0 (libsndfile): a data size of 0 or at least this bound says nothing.
_RF64_SIZE = 0xFFFFFFFF
_UNKNOWN_SIZE_BOUND = 0x7FFFF000
# Formats whose block_align is the size of one sample frame (all channels): PCM, IEEE
# float, A-law, mu-law and WAVE_FORMAT_EXTENSIBLE (which wraps them). In compressed
# formats (ADPCM...) a block holds many frames, so only bytes can be compared.
_FRAME_FORMATS = (0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE)


class AudioError(ProjectError, ValueError):
    """An audio file is missing, unreadable, or holds no samples."""


class WavDataSize(NamedTuple):
    """The ``data`` chunk of a wav file: the bytes its header declares and the bytes present.

    Attributes
    ----------
    declared_bytes : int
        The chunk size written in the header.
    present_bytes : int
        The bytes of the chunk the file holds (at most ``declared_bytes``).
    frame_bytes : int or None
        Bytes per sample frame (all channels); None for compressed formats.

    Example
    -------
    >>> size = WavDataSize(declared_bytes=32000, present_bytes=20001, frame_bytes=2)
    >>> size.truncated, size.declared_samples, size.present_samples
    (True, 16000, 10000)
    >>> size.describe("a.wav")
    'truncated wav file a.wav: its header declares 16000 samples, the file holds 10000'
    """

    declared_bytes: int
    present_bytes: int
    frame_bytes: Optional[int]

    @property
    def truncated(self):
        """The file ends before the data its header declares."""
        return self.present_bytes < self.declared_bytes

    @property
    def declared_samples(self):
        """Sample frames the header declares (None for compressed formats)."""
        return self.declared_bytes // self.frame_bytes if self.frame_bytes else None

    @property
    def present_samples(self):
        """Whole sample frames the file holds (None for compressed formats)."""
        return self.present_bytes // self.frame_bytes if self.frame_bytes else None

    def describe(self, path):
        """One line naming ``path`` and both sizes (samples, or bytes when compressed)."""
        if self.frame_bytes:
            declared, present, unit = self.declared_samples, self.present_samples, "samples"
        else:
            declared, present, unit = self.declared_bytes, self.present_bytes, "bytes of data"
        return (f"truncated wav file {path}: its header declares {declared} {unit}, "
                f"the file holds {present}")


def wav_data_size(path):
    """The declared and present sizes of the ``data`` chunk of a wav file, read from its
    RIFF chunks (no decoding); None when ``path`` is not a RIFF/RF64 wav, when its header
    ends before a ``data`` chunk, or when the header does not say the size (a wav written
    to a pipe: 0, or a placeholder of at least 0x7FFFF000 bytes).

    soundfile reads a truncated wav without a word (its ``frames`` count what is present),
    so this is how a truncated file is told from a short one.

    Example
    -------
    >>> import tempfile, numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, numpy.zeros(16000), 16000, subtype="PCM_16")
    >>> wav_data_size(path)
    WavDataSize(declared_bytes=32000, present_bytes=32000, frame_bytes=2)
    >>> with open(path, "r+b") as handle:
    ...     _ = handle.truncate(os.path.getsize(path) - 12000)
    >>> wav_data_size(path).describe("a.wav")
    'truncated wav file a.wav: its header declares 16000 samples, the file holds 10000'
    """
    with open(path, "rb") as handle:
        file_size = os.fstat(handle.fileno()).st_size
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return None
        frame_bytes, ds64_data_bytes = None, None
        position = 12
        while position + 8 <= file_size:
            handle.seek(position)
            header = handle.read(8)
            if len(header) < 8:  # the file shrank while being read
                return None
            chunk_id, size = struct.unpack("<4sI", header)
            body = position + 8
            if chunk_id == b"fmt " and size >= 14:
                fmt = handle.read(14)
                if len(fmt) < 14:  # the file ends inside its header
                    return None
                format_tag, _, _, _, block_align = struct.unpack("<HHIIH", fmt)
                frame_bytes = block_align if format_tag in _FRAME_FORMATS and block_align else None
            elif chunk_id == b"ds64" and size >= 16:
                ds64 = handle.read(16)
                if len(ds64) < 16:
                    return None
                _, ds64_data_bytes = struct.unpack("<QQ", ds64)
            elif chunk_id == b"data":
                if size == _RF64_SIZE and ds64_data_bytes is not None:
                    size = ds64_data_bytes
                elif size == 0 or size >= _UNKNOWN_SIZE_BOUND:
                    return None
                return WavDataSize(size, min(size, file_size - body), frame_bytes)
            position = body + size + (size & 1)  # chunks are word-aligned
    return None


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
    >>> import tempfile, os, numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, numpy.random.rand(8000, 2) - 0.5, 8000)
    >>> load_audio(path, 16000).shape
    torch.Size([16000])
    >>> load_audio(os.path.join(os.path.dirname(path), "missing.wav"))
    Traceback (most recent call last):
    ...
    mmer_lobes.audio.AudioError: audio file not found: .../missing.wav
    """
    import torch

    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    try:
        data, file_rate = soundfile.read(
            path, start=start or 0, stop=stop, dtype="float32", always_2d=True
        )
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(f"cannot read audio file {path}: {error}{_truncation_note(path)}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file {path} holds no samples{_truncation_note(path)}")
    signal = torch.from_numpy(data).mean(dim=1)
    if file_rate != sample_rate:
        import torchaudio

        signal = torchaudio.functional.resample(signal, file_rate, sample_rate)
    return signal


def _truncation_note(path):
    """`` (truncated: ...)`` for the error message of an unreadable or empty file, or ""."""
    try:
        size = wav_data_size(path)
    except OSError:
        return ""
    return f" ({size.describe(path)})" if size is not None and size.truncated else ""


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
    import speechbrain as sb

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
