"""What one utterance is: its plan, its speaker, and the draws of its prosody and sentence."""

from dataclasses import dataclass, field

import numpy as np

from .sentences import AMBIGUOUS_SENTENCES, EMOTION_SENTENCES
from .settings import (
    BASE_LEVEL_DBFS,
    BASE_PITCH,
    BASE_PITCH_RANGE,
    BASE_RATE_WPM,
    EFFORT_TILT_DB_PER_Z,
    EMOTION_PROSODY_MEANS_Z,
    EMOTIONS,
    LEVEL_DB_PER_Z,
    PITCH_LIMITS,
    PITCH_PER_Z,
    PITCH_RANGE_LIMITS,
    PITCH_RANGE_PER_Z,
    PROSODY_DIMENSIONS,
    RATE_WPM_LIMITS,
    RATE_WPM_PER_Z,
    TEXT_SOURCE_PROBABILITIES,
    UTTERANCE_PROSODY_STD_Z,
    WORD_GAP_LIMITS,
    WORD_GAP_PER_Z,
)


@dataclass
class UtterancePlan:
    """Everything needed to synthesise and place one utterance."""

    path: str  # relative to the corpus parent folder, "/"-separated
    text: str
    voice: str  # eSpeak voice name, "<accent>+<variant>"
    rate: int
    pitch: int
    pitch_range: int
    level_dbfs: float
    effort_tilt_db: float
    lowpass: float
    noise_dbfs: float
    leading_silence_s: float
    trailing_silence_s: float
    noise_seed: int
    word_gap: int = 0  # eSpeak's pause between words, 10 ms units


@dataclass
class IemocapTurn:
    """One mini-IEMOCAP turn: its labels and the plan of its audio."""

    utt_id: str
    session: int
    dialog: str
    speaker: str
    label: str
    source_class: str  # the class its prosody and text were drawn for
    text_source: str  # "own", "ambiguous" or "other"
    gap_before_s: float
    categorical: list = field(default_factory=list)  # (evaluator, category) pairs
    attributes: list = field(default_factory=list)  # (evaluator, (val, act, dom)) pairs
    audio: UtterancePlan = None


@dataclass
class SpeakerVoice:
    """A speaker: an eSpeak voice plus the speaker's own prosody baseline (standard units)."""

    speaker_id: str
    voice: str
    baseline_z: tuple = (0.0, 0.0, 0.0, 0.0, 0.0)  # rate, pitch, pitch range, level, pause


def sample_emotion_prosody(emotion, speaker, rng, spread_z=UTTERANCE_PROSODY_STD_Z):
    """Draws eSpeak prosody parameters for one utterance of ``emotion`` by ``speaker``.

    The class mean, the speaker's own baseline and a per-utterance deviation are added in a
    standard-unit space, then mapped to eSpeak's units and clipped to usable limits.

    Arguments
    ---------
    emotion : str
        One of "ang", "hap", "neu", "sad".
    speaker : SpeakerVoice
        The speaker, whose baseline shifts every dimension.
    rng : numpy.random.Generator
        Source of randomness.
    spread_z : float
        Per-utterance standard deviation in standard units.

    Returns
    -------
    dict
        ``rate`` (words per minute), ``pitch`` and ``pitch_range`` (0-100), ``level_dbfs``
        and ``effort_tilt_db``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> speaker = SpeakerVoice("Ses01F", "en-us+f1")
    >>> sorted(sample_emotion_prosody("ang", speaker, rng))
    ['effort_tilt_db', 'level_dbfs', 'pitch', 'pitch_range', 'rate', 'word_gap']
    >>> def mean_rate(emotion):
    ...     draws = [sample_emotion_prosody(emotion, speaker, rng) for _ in range(200)]
    ...     return np.mean([draw["rate"] for draw in draws])
    >>> bool(mean_rate("ang") > mean_rate("neu") > mean_rate("sad"))
    True
    """
    z = (
        np.asarray(EMOTION_PROSODY_MEANS_Z[emotion])
        + np.asarray(speaker.baseline_z)
        + rng.normal(0.0, spread_z, len(PROSODY_DIMENSIONS))
    )
    return _prosody_from_z(z)


def _prosody_from_z(z):
    """Maps a point of the standard-unit prosody space to eSpeak parameters."""
    rate, pitch, pitch_range, level, pause = z
    return {
        "rate": int(np.clip(round(BASE_RATE_WPM + RATE_WPM_PER_Z * rate), *RATE_WPM_LIMITS)),
        "pitch": int(np.clip(round(BASE_PITCH + PITCH_PER_Z * pitch), *PITCH_LIMITS)),
        "pitch_range": int(
            np.clip(round(BASE_PITCH_RANGE + PITCH_RANGE_PER_Z * pitch_range), *PITCH_RANGE_LIMITS)
        ),
        "level_dbfs": round(float(BASE_LEVEL_DBFS + LEVEL_DB_PER_Z * level), 3),
        "effort_tilt_db": round(float(EFFORT_TILT_DB_PER_Z * level), 3),
        "word_gap": int(np.clip(round(WORD_GAP_PER_Z * pause), *WORD_GAP_LIMITS)),
    }


def sample_emotion_sentence(emotion, rng):
    """Draws the sentence of one utterance of ``emotion``.

    With the probabilities of ``TEXT_SOURCE_PROBABILITIES`` the sentence comes from the
    class's own pool, from the pool of lexically ambiguous lines, or from another class's pool.

    Arguments
    ---------
    emotion : str
        One of "ang", "hap", "neu", "sad".
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    tuple
        (sentence, source) with source one of "own", "ambiguous", "other".

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> sentence, source = sample_emotion_sentence("sad", rng)
    >>> source in ("own", "ambiguous", "other")
    True
    >>> sources = [sample_emotion_sentence("ang", rng)[1] for _ in range(1000)]
    >>> 0.60 < sources.count("own") / 1000 < 0.72
    True
    """
    sources = tuple(TEXT_SOURCE_PROBABILITIES)
    source = sources[rng.choice(len(sources), p=list(TEXT_SOURCE_PROBABILITIES.values()))]
    if source == "own":
        pool = EMOTION_SENTENCES[emotion]
    elif source == "ambiguous":
        pool = AMBIGUOUS_SENTENCES
    else:
        others = [other for other in EMOTIONS if other != emotion]
        pool = EMOTION_SENTENCES[others[rng.integers(len(others))]]
    return pool[rng.integers(len(pool))], source


def _uniform(rng, bounds):
    """A rounded uniform draw, so that plans print and compare cleanly."""
    return round(float(rng.uniform(*bounds)), 4)
