"""Rendering: eSpeak's raw samples through the DSP (resampling, channel, level, silence,
noise) into the corpus's 16 kHz wavs, batch by batch in fresh processes.
"""

import io
import math
import multiprocessing
import os

import numpy as np
import soundfile

from .espeak import EspeakSynthesiser
from .settings import (
    ACTIVE_FRAME_FLOOR_DB,
    ACTIVE_FRAME_S,
    DEFAULT_NUM_WORKERS,
    PEAK_LIMIT,
    RESAMPLE_GUARD_S,
    RESAMPLE_TAPER_START,
    SAMPLE_RATE,
)


def _active_rms(signal, sample_rate):
    """RMS over the frames that hold speech, so pauses do not lower the measured level."""
    frame = int(ACTIVE_FRAME_S * sample_rate)
    num_frames = max(1, len(signal) // frame)
    energies = np.mean(signal[: num_frames * frame].reshape(num_frames, -1) ** 2, axis=1)
    active = energies >= energies.max() * 10 ** (ACTIVE_FRAME_FLOOR_DB / 10)
    return float(np.sqrt(np.mean(energies[active])))


def _next_smooth_number(n):
    """The smallest integer >= n whose prime factors are 2, 3 and 5: FFT sizes that are fast."""
    while True:
        rest = n
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return n
        n += 1


def resample_with_channel(signal, rate_in, rate_out, lowpass=0.0, tilt_db=0.0):
    """Resamples ``signal`` in the frequency domain, through a one-pole low-pass and a tilt.

    Filters (vocal effort, the room and microphone) cost nothing extra in the frequency
    domain, and numpy's FFT spares the worker processes scipy's slow import.

    Arguments
    ---------
    signal : numpy.ndarray
        1-D float signal at ``rate_in``.
    rate_in, rate_out : int
        Sample rates in Hz.
    lowpass : float
        Coefficient ``b`` of the low-pass ``y[n] = (1 - b) x[n] + b y[n-1]``; 0 leaves it flat.
    tilt_db : float
        Gain at the output's Nyquist frequency relative to 0 Hz, linear in frequency (in dB).

    Returns
    -------
    numpy.ndarray
        ``ceil(len(signal) * rate_out / rate_in)`` samples at ``rate_out``.

    Example
    -------
    >>> t = np.arange(22050) / 22050
    >>> out = resample_with_channel(np.sin(2 * np.pi * 440 * t), 22050, 16000)
    >>> len(out), round(float(np.abs(out[2000:14000]).max()), 2)
    (16000, 1.0)
    """
    divisor = math.gcd(rate_in, rate_out)
    up, down = rate_out // divisor, rate_in // divisor
    guard_blocks = max(1, int(math.ceil(RESAMPLE_GUARD_S * rate_in / down)))
    num_blocks = _next_smooth_number(guard_blocks * 2 + int(math.ceil(len(signal) / down)))
    padded = np.zeros(num_blocks * down)
    padded[guard_blocks * down : guard_blocks * down + len(signal)] = signal
    num_out = num_blocks * up
    spectrum = np.fft.rfft(padded)
    num_bins = num_out // 2 + 1
    if num_bins <= len(spectrum):
        spectrum = spectrum[:num_bins].copy()
    else:
        spectrum = np.concatenate([spectrum, np.zeros(num_bins - len(spectrum), complex)])
    fraction_of_nyquist = np.arange(num_bins) / (num_bins - 1)
    taper = np.clip((fraction_of_nyquist - RESAMPLE_TAPER_START) / (1 - RESAMPLE_TAPER_START), 0, 1)
    spectrum *= 0.5 * (1 + np.cos(np.pi * taper))
    omega = np.pi * fraction_of_nyquist
    spectrum *= (1 - lowpass) / (1 - lowpass * np.exp(-1j * omega))
    spectrum *= 10 ** (tilt_db * fraction_of_nyquist / 20)
    out = np.fft.irfft(spectrum, num_out) * (num_out / len(padded))
    start = guard_blocks * up
    return out[start : start + int(math.ceil(len(signal) * up / down))]


def render_utterance(samples, espeak_rate, plan):
    """Turns raw eSpeak samples into the final 16 kHz int16 signal of ``plan``.

    Resamples to 16 kHz through the vocal-effort tilt and the channel's low-pass, sets the
    speech level, pads silence
    on both sides, adds seeded noise and converts to 16-bit samples.

    Example
    -------
    >>> from data_prep.minicorpus.sampling import UtterancePlan
    >>> plan = UtterancePlan(
    ...     "x.wav", "", "en-us+m3", 175, 50, 50, -27.0, 0.0, 0.2, -60.0, 0.1, 0.1, 7
    ... )
    >>> tone = (8000 * np.sin(np.arange(22050) / 10)).astype(np.int16)
    >>> out = render_utterance(tone, 22050, plan)
    >>> out.dtype, len(out)
    (dtype('int16'), 19200)
    >>> bool(np.array_equal(out, render_utterance(tone, 22050, plan)))
    True
    """
    signal = resample_with_channel(
        samples.astype(np.float64) / 32768.0,
        espeak_rate,
        SAMPLE_RATE,
        plan.lowpass,
        plan.effort_tilt_db,
    )
    signal *= 10 ** (plan.level_dbfs / 20) / max(_active_rms(signal, SAMPLE_RATE), 1e-9)
    signal = np.concatenate(
        [
            np.zeros(int(round(plan.leading_silence_s * SAMPLE_RATE))),
            signal,
            np.zeros(int(round(plan.trailing_silence_s * SAMPLE_RATE))),
        ]
    )
    noise_rng = np.random.default_rng(plan.noise_seed)
    signal += noise_rng.normal(0.0, 10 ** (plan.noise_dbfs / 20), len(signal))
    return np.round(np.clip(signal, -PEAK_LIMIT, PEAK_LIMIT) * 32767).astype(np.int16)


def synthesise_batch(root, plans):
    """Synthesises ``plans`` in order under ``root`` and returns each file's sample count.

    Run it in a fresh process (see ``EspeakSynthesiser``) for reproducible bytes.

    Example
    -------
    >>> import tempfile
    >>> from data_prep.minicorpus.sampling import UtterancePlan
    >>> root = tempfile.mkdtemp()
    >>> plan = UtterancePlan(
    ...     "a/b.wav", "Hi.", "en-us+f1", 175, 50, 50, -27.0, 0.0, 0.1, -60.0, 0.1, 0.1, 3
    ... )
    >>> counts = synthesise_batch(root, [plan])
    >>> soundfile.info(os.path.join(root, "a", "b.wav")).samplerate == SAMPLE_RATE
    True
    """
    synthesiser = EspeakSynthesiser()
    counts = {}
    for plan in plans:
        raw = synthesiser.synthesise(
            plan.text,
            plan.voice,
            plan.rate,
            plan.pitch,
            plan.pitch_range,
            seed=plan.noise_seed,
            word_gap=plan.word_gap,
        )
        signal = render_utterance(raw, synthesiser.sample_rate, plan)
        path = os.path.join(root, *plan.path.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Through memory: libsndfile syncs every file it closes to disk, which costs more than
        # the synthesis. The whole folder is renamed into place only when complete anyway.
        buffer = io.BytesIO()
        soundfile.write(buffer, signal, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        with open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        counts[plan.path] = len(signal)
    return counts


def _synthesise_batch_task(task):
    """Pool entry point: one (root, plans) batch."""
    return synthesise_batch(*task)


def synthesise_in_fresh_processes(root, batches, num_workers=DEFAULT_NUM_WORKERS):
    """Synthesises each batch of plans in its own freshly spawned process.

    A fresh process per batch makes every byte independent of which worker ran what, and
    of the order in which batches finished.

    Returns
    -------
    dict
        Relative wav path to number of samples.
    """
    # Largest batches first keeps both workers busy until the end.
    order = sorted(range(len(batches)), key=lambda i: -len(batches[i]))
    context = multiprocessing.get_context("spawn")
    with context.Pool(max(1, num_workers), maxtasksperchild=1) as pool:
        results = pool.map(_synthesise_batch_task, [(root, batches[i]) for i in order], chunksize=1)
    counts = {}
    for result in results:
        counts.update(result)
    return counts
