"""Kaldi-compatible log-mel filterbanks for a padded batch, as wespeaker's models saw them.

The published wespeaker speaker models (``voxceleb_resnet34_LM`` ...) were trained on
``torchaudio.compliance.kaldi.fbank`` of the waveform on the 16-bit integer scale (80 mel
bins, 25 ms frames every 10 ms, Hamming window, no energy, dither 1.0 in training and 0 at
evaluation), followed by per-utterance mean normalisation (``feat - feat.mean(0)``). See
``wespeaker/cli/speaker.py`` (``compute_features``) and ``wespeaker/diar/make_fbank.py``
(``compute_fbank``). :class:`KaldiFbank` computes exactly these features for a padded batch,
so such a model can be fine-tuned from SpeechBrain recipes; the mean normalisation stays with
``speechbrain.processing.features.InputNormalization(norm_type="sentence",
std_norm=False)`` given :meth:`KaldiFbank.relative_frame_lengths`.

Frames and lengths
------------------
Kaldi's ``snip_edges=True`` keeps only whole frames: a clip of ``n`` samples has
``1 + (n - window_size) // window_shift`` frames (:func:`kaldi_frame_count`; 400 and 160
samples at 16 kHz, so ``1 + (n - 400) // 160``), and a clip shorter than one window is an
error (:class:`ClipTooShortError`). Each clip is computed alone over its own samples, so
padding never leaks into its frames, whatever the other clips of the batch.

The output has ``kaldi_frame_count(padded samples)`` frames; item ``i`` fills the first
``f_i`` of them and the rest are 0. Its relative sample length ``n_i / N`` is not its
relative frame length ``f_i / F``: ``(n_i / N) * F - f_i`` lies between
``1.5 * (1 - n_i / N) - 0.51`` and ``1.5 * (1 - n_i / N) + 1`` (so below 2.5 frames), and
masks made from the sample lengths count up to three padding frames as speech (SpeechBrain's
``make_padding_mask``; two when rounded). :meth:`KaldiFbank.relative_frame_lengths` gives the
lengths that select exactly the ``f_i`` real frames.
"""
import torch
import torchaudio.compliance.kaldi as kaldi

from mmer_lobes.errors import ProjectError

# The scale of 16-bit PCM: wespeaker reads wavs as integers (torchaudio.load with
# normalize=False), SpeechBrain as floats in [-1, 1).
INT16_SCALE = 32768


class ClipTooShortError(ProjectError, ValueError):
    """A clip is shorter than one analysis window, so it has no Kaldi frame.

    Example
    -------
    >>> KaldiFbank()(torch.zeros(1, 160))
    Traceback (most recent call last):
    ...
    mmer_lobes.kaldi_features.ClipTooShortError: clip 0 of the batch has 160 samples (0.010 s at 16000 Hz); a Kaldi filterbank needs at least 400 (one 25 ms frame)
    """


def kaldi_frame_count(num_samples, window_size=400, window_shift=160):
    """Frames that Kaldi's ``snip_edges=True`` framing gives ``num_samples`` samples: 0 when
    shorter than one window, else ``1 + (num_samples - window_size) // window_shift``.

    Works on an int or element-wise on an integer tensor.

    Example
    -------
    >>> kaldi_frame_count(48000)
    298
    >>> kaldi_frame_count(torch.tensor([399, 400, 559, 560]))
    tensor([0, 1, 1, 2])
    """
    if torch.is_tensor(num_samples):
        whole = num_samples >= window_size
        counts = 1 + torch.div(num_samples - window_size, window_shift, rounding_mode="floor")
        return torch.where(whole, counts, torch.zeros_like(counts))
    if num_samples < window_size:
        return 0
    return 1 + (num_samples - window_size) // window_shift


class KaldiFbank(torch.nn.Module):
    """Kaldi-compatible log-mel filterbanks of a padded batch, each clip over its own samples.

    A drop-in for SpeechBrain's ``Fbank`` (``feats = compute_features(wavs)``) that matches
    ``torchaudio.compliance.kaldi.fbank`` on ``wav * scale`` as wespeaker computes it,
    with ``use_energy=False`` and Kaldi's other defaults (``snip_edges=True``,
    pre-emphasis 0.97, DC offset removal, FFT of 512 points at 16 kHz).

    Arguments
    ---------
    n_mels : int
        Mel bins (wespeaker: 80).
    frame_length, frame_shift : float
        Window length and shift in milliseconds.
    sample_rate : int
        Sample rate of the input, in Hz.
    dither : float
        Standard deviation of the Gaussian noise added to every sample (on the ``scale``
        scale) while the module is in training mode; evaluation mode never dithers.
        wespeaker trains with 1.0. The module follows ``Brain``'s stages only if it is one
        of the Brain's ``modules``: a module left in ``hparams`` keeps PyTorch's default
        training mode and would dither at evaluation too.
    window_type : str
        Kaldi window: ``"hamming"``, ``"povey"``, ``"hanning"``, ``"rectangular"`` or
        ``"blackman"``.
    scale : float
        Factor applied to the waveform first: 32768 maps SpeechBrain's floats in [-1, 1)
        to the 16-bit integer scale the models were trained on (the log-energies differ by
        ``2 * log(scale)`` otherwise, which the mean normalisation removes only in part,
        through the energy floor).

    Example
    -------
    >>> fbank = KaldiFbank().eval()
    >>> wavs = torch.randn(2, 16000) * 0.1
    >>> feats = fbank(wavs, torch.tensor([1.0, 0.5]))
    >>> feats.shape
    torch.Size([2, 98, 80])
    >>> fbank.frame_counts(torch.tensor([1.0, 0.5]), 16000).tolist()
    [98, 48]
    >>> bool(feats[1, 48:].eq(0).all())
    True
    """

    def __init__(
        self,
        n_mels=80,
        frame_length=25,
        frame_shift=10,
        sample_rate=16000,
        dither=0.0,
        window_type="hamming",
        scale=INT16_SCALE,
    ):
        super().__init__()
        self.n_mels = n_mels
        self.frame_length = frame_length
        self.frame_shift = frame_shift
        self.sample_rate = sample_rate
        self.dither = dither
        self.window_type = window_type
        self.scale = scale
        # The same arithmetic as torchaudio's kaldi module, so both frame the signal alike.
        self.window_size = int(sample_rate * frame_length * 0.001)
        self.window_shift = int(sample_rate * frame_shift * 0.001)

    def extra_repr(self):
        """The settings, as ``print(module)`` shows them.

        Example
        -------
        >>> KaldiFbank(dither=1.0).extra_repr()
        "n_mels=80, frame_length=25, frame_shift=10, sample_rate=16000, dither=1.0, window_type='hamming', scale=32768"
        """
        return (
            f"n_mels={self.n_mels}, frame_length={self.frame_length}, "
            f"frame_shift={self.frame_shift}, sample_rate={self.sample_rate}, "
            f"dither={self.dither}, window_type={self.window_type!r}, scale={self.scale}"
        )

    def sample_counts(self, wav_lens, num_samples):
        """Samples of each clip, ``round(wav_lens * num_samples)`` as SpeechBrain counts them;
        one count, ``num_samples``, that holds for every clip when ``wav_lens`` is None.

        Raises :class:`ClipTooShortError` when a clip is shorter than one window.

        Example
        -------
        >>> KaldiFbank().sample_counts(torch.tensor([1.0, 0.5]), 16000).tolist()
        [16000, 8000]
        >>> KaldiFbank().sample_counts(torch.tensor([1.0, 0.02]), 16000)
        Traceback (most recent call last):
        ...
        mmer_lobes.kaldi_features.ClipTooShortError: clip 1 of the batch has 320 samples (0.020 s at 16000 Hz); a Kaldi filterbank needs at least 400 (one 25 ms frame)
        """
        if wav_lens is None:
            counts = torch.full((1,), num_samples, dtype=torch.long)
        else:
            counts = torch.round(wav_lens.double() * num_samples).long()
        # One host sync per batch, to name the offending clip instead of failing in torchaudio.
        shortest = int(counts.argmin())
        if int(counts[shortest]) < self.window_size:
            samples = int(counts[shortest])
            raise ClipTooShortError(
                f"clip {shortest} of the batch has {samples} samples "
                f"({samples / self.sample_rate:.3f} s at {self.sample_rate} Hz); a Kaldi "
                f"filterbank needs at least {self.window_size} (one {self.frame_length} ms frame)"
            )
        return counts if wav_lens is None else counts.to(wav_lens.device)

    def frame_counts(self, wav_lens, num_samples):
        """Real frames of each clip: :func:`kaldi_frame_count` of its :meth:`sample_counts`.

        Example
        -------
        >>> KaldiFbank().frame_counts(torch.tensor([1.0, 0.75]), 48000).tolist()
        [298, 223]
        """
        return kaldi_frame_count(
            self.sample_counts(wav_lens, num_samples), self.window_size, self.window_shift
        )

    def relative_frame_lengths(self, wav_lens, num_samples):
        """Relative lengths of the frames that :meth:`forward` returns, to pass on to
        ``InputNormalization`` and the encoder's pooling in place of ``wav_lens``.

        Each is ``f_i / F`` (:meth:`frame_counts` over the output's frames), taken one step
        lower in ``wav_lens``'s dtype where needed so that ``length * F`` never exceeds
        ``f_i``: both SpeechBrain's ``make_padding_mask`` (``frame < length * F - 1e-6``)
        and rounding (``round(length * F)``) then select exactly ``f_i`` frames, which
        ``f_i / F`` alone misses by one frame in a few percent of the pairs in float32.

        Example
        -------
        >>> fbank = KaldiFbank()
        >>> lengths = fbank.relative_frame_lengths(torch.tensor([1.0, 0.75]), 48000)
        >>> torch.round(lengths * kaldi_frame_count(48000)).long().tolist()
        [298, 223]
        """
        total = kaldi_frame_count(num_samples, self.window_size, self.window_shift)
        dtype = wav_lens.dtype if wav_lens is not None else torch.float32
        return relative_lengths_of(self.frame_counts(wav_lens, num_samples), total, dtype)

    def forward(self, wavs, wav_lens=None):
        """Filterbanks ``(batch, frames, n_mels)`` of the padded batch ``wavs``
        ``(batch, samples)``.

        With ``wav_lens`` (relative, as SpeechBrain pads), clip ``i`` gets the features of its
        own ``round(wav_lens[i] * samples)`` samples in its first frames and zeros after
        them. Without, every clip is taken to fill the whole row, padding included, as
        SpeechBrain's ``Fbank`` does: a padded clip then also gets the frames of its padding
        (the log floor, about -15.9, on zeros), and mean normalisation must be given lengths
        that leave them out. The output always has ``kaldi_frame_count(samples)`` frames.

        Example
        -------
        >>> fbank = KaldiFbank().eval()
        >>> wavs = torch.randn(2, 8000) * 0.1
        >>> alone = fbank(wavs[1:, :4000])
        >>> batch = fbank(wavs, torch.tensor([1.0, 0.5]))
        >>> alone.shape[1], batch.shape[1]
        (23, 48)
        >>> bool(torch.allclose(batch[1, :23], alone[0], atol=1e-5))
        True
        """
        if wavs.dim() != 2:
            raise ValueError(
                f"KaldiFbank expects (batch, samples) waveforms, got shape {tuple(wavs.shape)}"
            )
        batch, num_samples = wavs.shape
        counts = self.sample_counts(wav_lens, num_samples).tolist()
        samples_per_clip = counts * batch if wav_lens is None else counts
        total = kaldi_frame_count(num_samples, self.window_size, self.window_shift)
        working_dtype = torch.float64 if wavs.dtype == torch.float64 else torch.float32

        # One kaldi.fbank call per clip, over its own samples: exactly wespeaker's computation.
        # A single call on the flattened batch (rows padded to whole shifts, so every row
        # starts on a frame boundary) gives the same frames but measured 1.4-2x slower on
        # CPU, its (batch * frames, 512) intermediates falling out of cache.
        feats = wavs.new_empty((batch, total, self.n_mels), dtype=working_dtype)
        # The power spectrum of 16-bit-scale audio overflows half precision: never autocast.
        with torch.autocast(device_type=wavs.device.type, enabled=False):
            for item, (wav, samples) in enumerate(zip(wavs.to(working_dtype), samples_per_clip)):
                frames = kaldi_frame_count(samples, self.window_size, self.window_shift)
                feats[item, frames:] = 0  # only the padding: one pass over the batch, not two
                feats[item, :frames] = kaldi.fbank(
                    wav[None, :samples] * self.scale,
                    num_mel_bins=self.n_mels,
                    frame_length=self.frame_length,
                    frame_shift=self.frame_shift,
                    dither=self.dither if self.training else 0.0,
                    sample_frequency=self.sample_rate,
                    window_type=self.window_type,
                    use_energy=False,
                )
        return feats


def relative_lengths_of(frames, total, dtype=torch.float32):
    """Relative lengths ``frames / total`` in ``dtype`` that select exactly ``frames`` frames.

    Each is taken one step lower in ``dtype`` where needed so that ``length * total`` never
    exceeds the count: both SpeechBrain's ``make_padding_mask`` (``frame < length * F -
    1e-6``) and rounding (``round(length * F)``) then select exactly that many frames, which
    the plain quotient misses by one frame in a few percent of the pairs in float32.

    Example
    -------
    >>> lengths = relative_lengths_of(torch.tensor([298, 223, 1]), 298)
    >>> torch.round(lengths * 298).long().tolist()
    [298, 223, 1]
    """
    lengths = (frames.double() / total).to(dtype)
    # One step down has always sufficed; the bound only keeps the loop finite.
    for _ in range(4):
        over = lengths * total > frames.to(dtype)
        if not bool(over.any()):
            break
        lengths = torch.where(over, torch.nextafter(lengths, torch.zeros_like(lengths)), lengths)
    return lengths


def stft_frame_lengths(compute_features, wav_lens, num_samples):
    """Exact relative frame lengths of SpeechBrain's ``Fbank`` (or any front end with a
    ``compute_STFT``) for clips of relative sample lengths ``wav_lens`` padded to
    ``num_samples``; None for a front end without one.

    A centred STFT gives a clip of ``n`` samples ``1 + n // hop`` frames, each of which sees
    only the clip and zeros (its own constant padding, or the batch's), so these frames are
    the clip's frames alone; relative sample lengths would count one frame more or fewer.

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> lengths = stft_frame_lengths(Fbank(), torch.tensor([1.0, 0.5]), 32000)
    >>> torch.round(lengths * 201).long().tolist()
    [201, 101]
    """
    stft = getattr(compute_features, "compute_STFT", None)
    if stft is None or not hasattr(stft, "hop_length"):
        return None
    samples = torch.round(wav_lens.double() * num_samples).long()
    if getattr(stft, "center", True):
        frames, total = 1 + samples // stft.hop_length, 1 + num_samples // stft.hop_length
    else:
        frames = 1 + (samples - stft.n_fft) // stft.hop_length
        total = 1 + (num_samples - stft.n_fft) // stft.hop_length
    return relative_lengths_of(frames.clamp(min=1), total, wav_lens.dtype)


def features_and_lengths(compute_features, wavs, wav_lens):
    """Features of a padded batch and their relative lengths, for any front end.

    A front end that knows the frames of each clip (:class:`KaldiFbank`) gets the lengths and
    returns exactly those frames' lengths; SpeechBrain's ``Fbank`` is called on the
    waveforms alone and its frames are counted from its STFT (:func:`stft_frame_lengths`);
    for any other front end the lengths stay those of the samples.

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> wavs, lens = torch.randn(2, 16000), torch.tensor([1.0, 0.5])
    >>> feats, frame_lens = features_and_lengths(Fbank(n_mels=40), wavs, lens)
    >>> feats.shape, torch.round(frame_lens * 101).long().tolist()
    (torch.Size([2, 101, 40]), [101, 51])
    >>> feats, frame_lens = features_and_lengths(KaldiFbank(), wavs, lens)
    >>> feats.shape, torch.round(frame_lens * 98).long().tolist()
    (torch.Size([2, 98, 80]), [98, 48])
    """
    if hasattr(compute_features, "relative_frame_lengths"):
        lengths = wav_lens if wav_lens is not None else torch.ones(wavs.shape[0], device=wavs.device)
        return (compute_features(wavs, lengths),
                compute_features.relative_frame_lengths(lengths, wavs.shape[1]))
    feats = compute_features(wavs)
    if wav_lens is None:
        return feats, None
    frame_lens = stft_frame_lengths(compute_features, wav_lens, wavs.shape[1])
    return feats, wav_lens if frame_lens is None else frame_lens
