"""Synthesises the two built-in corpora: mini-IEMOCAP and mini-VoxCeleb.

Nobody can download IEMOCAP or VoxCeleb here, so every recipe of this project runs on two
small corpora that this script speaks with eSpeak NG, in the real directory layouts and file
formats (see DESIGN.md, sections 3 and 5):

* ``<out>/IEMOCAP_full_release``: 5 sessions x 2 speakers (one female and one male voice per
  session), several dialogs per session, ``EmoEvaluation`` and ``transcriptions`` files in
  IEMOCAP's formats (including ``xxx``/``fru``/``sur`` labels that a prepare script must filter,
  transcription lines without an utterance id and a latin-1 byte), and 16 kHz mono wavs.
  Emotion is carried imperfectly by both channels: prosody (speaking rate, pitch level, pitch
  range, loudness) is drawn from overlapping per-class distributions on top of each speaker's
  own baseline, and the text from per-class sentence pools where a share of every class's
  sentences is lexically neutral or borrowed from another class. Text and prosody are drawn
  independently given the class, so the two modalities err independently and fusion helps.
* ``<out>/VoxCeleb1``: ``wav/<spk>/<video>/<nnnnn>.wav`` for many synthetic speakers (voice
  variant x accent x pitch x rate), none of them a mini-IEMOCAP voice, with emotionally neutral
  prosody, plus the trial list ``veri_test2.txt`` over held-out trial speakers.

Generation is seeded and byte-for-byte deterministic. eSpeak NG keeps state between
utterances inside one process, so utterances are synthesised in fixed batches, each in a fresh
worker process: the pool's scheduling never changes a byte. Everything is written into a
temporary folder that is renamed into place at the end, and a stamp file written last marks a
complete corpus, so a crash never leaves a half-written corpus behind.

Usage
-----
    python data_prep/mini_corpora.py --out data --seed 0

Authors
 * mmer contributors 2025
"""

import argparse
import ctypes
import ctypes.util
import io
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import soundfile

try:
    from mmer_lobes.files import atomic_write_json
except ImportError:  # run as a script from a checkout that is not pip-installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from mmer_lobes.files import atomic_write_json

# ---------------------------------------------------------------------------------------------
# Output and bookkeeping
# ---------------------------------------------------------------------------------------------
GENERATOR_VERSION = 2  # bump when a change alters the bytes written, so old corpora are redone
IEMOCAP_DIRNAME = "IEMOCAP_full_release"
VOXCELEB_DIRNAME = "VoxCeleb1"
VOXCELEB_TRIAL_LIST = "veri_test2.txt"
CORPUS_MARKER = ".mini_corpora.json"  # inside each corpus: "this folder was synthesised here"
COMPLETE_STAMP = ".mini_corpora_complete.json"  # in --out, written last
DEFAULT_NUM_WORKERS = 2

# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------
SAMPLE_RATE = 16000
ESPEAK_VOLUME = 60  # below eSpeak's default 100, which clips some variants; level is set later
RESAMPLE_GUARD_S = 0.1  # zeros around a signal while resampling, so the FFT does not wrap it
RESAMPLE_TAPER_START = 0.9  # fraction of the output Nyquist where a raised-cosine roll-off starts
ACTIVE_FRAME_S = 0.02  # frame length for the speech-level (RMS) measure
ACTIVE_FRAME_FLOOR_DB = -40.0  # frames this far below the loudest one do not count as speech
LEADING_SILENCE_S = (0.10, 0.30)  # uniform range of silence before the speech
TRAILING_SILENCE_S = (0.10, 0.30)  # uniform range of silence after the speech
PEAK_LIMIT = 0.999  # hard clip, as a hot recording would

# ---------------------------------------------------------------------------------------------
# eSpeak NG prosody parameters (espeak_SetParameter units)
# ---------------------------------------------------------------------------------------------
BASE_RATE_WPM = 165  # words per minute
BASE_PITCH = 50  # 0-100, relative to the voice variant's own pitch
BASE_PITCH_RANGE = 50  # 0-100; 0 is monotone
BASE_LEVEL_DBFS = -27.0  # speech RMS level
RATE_WPM_PER_Z = 50.0  # one unit of the prosody space below, in each parameter's units
PITCH_PER_Z = 18.0  # about 18 % of f0
PITCH_RANGE_PER_Z = 28.0
LEVEL_DB_PER_Z = 3.0
# Vocal effort also tilts the spectrum (louder speech is brighter): dB at the 8 kHz band edge,
# relative to 0 Hz, per standard unit of level. Unlike the level itself, the tilt survives a
# recipe's per-utterance feature normalisation.
EFFORT_TILT_DB_PER_Z = 6.0
# Pauses between words (eSpeak's word gap, in units of 10 ms at the default rate) per standard
# unit above zero: slow, sad speech hesitates. Pauses survive per-utterance normalisation.
WORD_GAP_PER_Z = 10.0
WORD_GAP_LIMITS = (0, 30)
RATE_WPM_LIMITS = (90, 320)
PITCH_LIMITS = (5, 95)
PITCH_RANGE_LIMITS = (0, 100)
PROSODY_DIMENSIONS = ("rate", "pitch", "pitch_range", "level", "pause")

# ---------------------------------------------------------------------------------------------
# Emotion in prosody: class means in the prosody space (rate, pitch, pitch range, level, pause),
# in standard units. The per-utterance spread and the per-speaker baselines make classes overlap.
# ---------------------------------------------------------------------------------------------
EMOTION_PROSODY_MEANS_Z = {
    "ang": (1.0, 0.3, 0.5, 1.1, -1.0),  # fast, loud, raised and lively pitch, no pauses
    "hap": (0.4, 1.1, 1.1, 0.3, -0.5),  # high pitch, wide range
    "neu": (0.0, 0.0, 0.0, 0.0, 0.0),
    "sad": (-1.0, -0.8, -0.9, -1.0, 1.5),  # slow, low, flat, quiet, with pauses
}
UTTERANCE_PROSODY_STD_Z = 0.4  # per-utterance spread around the class mean
SPEAKER_BASELINE_STD_Z = 0.2  # per-speaker offset of every prosody dimension

# ---------------------------------------------------------------------------------------------
# Emotion in text: where an utterance's sentence comes from, given its class. The other-class
# share misleads a text classifier; the ambiguous share leaves it guessing.
# ---------------------------------------------------------------------------------------------
TEXT_SOURCE_PROBABILITIES = {"own": 0.66, "ambiguous": 0.22, "other": 0.12}

# ---------------------------------------------------------------------------------------------
# mini-IEMOCAP
# ---------------------------------------------------------------------------------------------
NUM_SESSIONS = 5
# One (accent, eSpeak variant) per speaker; none of these variants is a mini-VoxCeleb voice.
IEMOCAP_VOICES = {
    (1, "F"): ("en-us", "f1"),
    (1, "M"): ("en-us", "m3"),
    (2, "F"): ("en-gb-x-rp", "f3"),
    (2, "M"): ("en-gb-x-rp", "m7"),
    (3, "F"): ("en-us-nyc", "Annie"),
    (3, "M"): ("en-us-nyc", "Andy"),
    (4, "F"): ("en-gb-scotland", "belinda"),
    (4, "M"): ("en-gb-scotland", "Mario"),
    (5, "F"): ("en-029", "steph2"),
    (5, "M"): ("en-029", "travis"),
}
# Dialog names of a session, "{session}" filled with the two-digit session number.
IEMOCAP_DIALOG_TEMPLATES = (
    "Ses{session}F_impro01",
    "Ses{session}M_impro02",
    "Ses{session}F_script01_1",
    "Ses{session}M_script02_1",
)
# Header labels per speaker: 48 usable (about IEMOCAP's 4-class proportions, 20/30/30/20 %)
# and 4 that a prepare script must filter. "hap" turns are labelled "exc" half the time.
IEMOCAP_USABLE_COUNTS_PER_SPEAKER = {"ang": 11, "hap": 13, "neu": 13, "sad": 11}
IEMOCAP_FILTERED_COUNTS_PER_SPEAKER = {"xxx": 2, "fru": 1, "sur": 1}
EXCITED_SHARE_OF_HAPPY = 0.5
# A filtered turn is spoken like one of these classes, drawn uniformly.
FILTERED_LABEL_SOURCE_CLASSES = {
    "xxx": ("ang", "hap", "neu", "sad"),
    "fru": ("ang", "sad"),
    "sur": ("hap", "neu"),
}
DIALOG_START_S = (1.0, 5.0)  # uniform range of the first turn's start
TURN_GAP_S = (0.2, 1.5)  # uniform range of the pause before each turn
IDLESS_TURNS_PER_DIALOG = 2  # transcription lines without an utterance id, per dialog
IDLESS_TURN_DURATION_S = (0.5, 1.2)
IDLESS_TURN_TEXTS = ("Yeah.", "Hmm.", "Uh-huh.", "Okay.", "[LAUGHTER]", "Right.")
SESSION_CHANNEL_LOWPASS = (0.0, 0.35)  # one-pole low-pass coefficient: the room and microphone
SESSION_CHANNEL_NOISE_DBFS = (-66.0, -54.0)
LATIN1_SENTENCE = "Meet me at the café on the corner."  # its "é" is written as one latin-1 byte
# Categorical and dimensional annotations, as IEMOCAP's evaluators wrote them.
CATEGORY_NAMES = {
    "ang": "Anger",
    "hap": "Happiness",
    "exc": "Excited",
    "neu": "Neutral",
    "sad": "Sadness",
    "fru": "Frustration",
    "sur": "Surprise",
}
NO_MAJORITY_CATEGORIES = ("Anger", "Frustration", "Neutral", "Sadness", "Other", "Disgust")
CATEGORICAL_EVALUATORS = ("C-E1", "C-E2", "C-E3", "C-E4", "C-E5", "C-E6")
ATTRIBUTE_EVALUATORS = ("A-E1", "A-E2", "A-E3", "A-E4", "A-E5", "A-E6")
NUM_CATEGORICAL_EVALUATORS = 3
NUM_ATTRIBUTE_EVALUATORS = 2
DISSENTING_EVALUATOR_SHARE = 0.5  # turns where one evaluator disagrees with the majority
VAD_MEANS = {  # valence, activation, dominance on IEMOCAP's 1-5 scale
    "ang": (1.8, 3.8, 3.9),
    "hap": (3.9, 3.0, 3.0),
    "exc": (3.8, 3.6, 3.3),
    "neu": (2.8, 2.4, 2.6),
    "sad": (2.0, 2.2, 2.1),
    "fru": (2.0, 3.2, 3.2),
    "sur": (3.2, 3.5, 2.9),
    "xxx": (2.7, 2.8, 2.8),
}
VAD_STD = 0.7

# ---------------------------------------------------------------------------------------------
# mini-VoxCeleb
# ---------------------------------------------------------------------------------------------
# Voice variants: none is a mini-IEMOCAP variant. Each is used by two speakers that differ in
# accent, pitch and rate.
# fmt: off
VOXCELEB_VARIANTS = (
    "f2", "m1", "f4", "m2", "f5", "m4", "Alicia", "m5", "Andrea", "m6", "anika", "m8",
    "aunty", "Lee", "linda", "Denis", "grandma", "antonio", "shelby", "miguel",
    "michel", "robert", "paul", "iven",
)
VOXCELEB_ACCENTS = (
    "en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
    "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)
# fmt: on
VOXCELEB_SPEAKERS_PER_VARIANT = 2
NUM_VOXCELEB_TRIAL_SPEAKERS = 8  # held out: only in the trial list
FIRST_TRAIN_SPEAKER_NUMBER = 10001  # VoxCeleb1's dev ids start here ...
FIRST_TRIAL_SPEAKER_NUMBER = 10270  # ... and its test ids here
UTTERANCES_PER_VOXCELEB_SPEAKER = 8
VIDEOS_PER_VOXCELEB_SPEAKER = (2, 3)  # inclusive range
VIDEO_ID_LENGTH = 11
VIDEO_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
VOXCELEB_SPEAKER_STD_Z = 0.8  # spread of speakers' rate and pitch baselines
VOXCELEB_RANGE_LEVEL_SHARE = 0.5  # pitch range and level vary less between speakers
VOXCELEB_UTTERANCE_STD_Z = 0.25  # neutral speech still varies a little
VIDEO_CHANNEL_LOWPASS = (0.0, 0.6)
VIDEO_CHANNEL_NOISE_DBFS = (-66.0, -46.0)
VIDEO_LEVEL_STD_DB = 2.0
NUM_TARGET_TRIALS = 150
NUM_NONTARGET_TRIALS = 150
VOXCELEB_SPEAKERS_PER_BATCH = 12  # synthesis batch (mini-IEMOCAP: one per session); each
# batch runs in a freshly started process, whose start-up costs about 0.4 s

# ---------------------------------------------------------------------------------------------
# Sentence pools
# ---------------------------------------------------------------------------------------------
EMOTION_SENTENCES = {
    "ang": (
        "Get out of my way right now.",
        "I told you to stop doing that.",
        "This is completely unacceptable.",
        "You never listen to a word I say.",
        "Don't you dare talk to me like that.",
        "I am sick and tired of this.",
        "You lied to me again.",
        "How could you be so stupid?",
        "Leave me alone, I mean it.",
        "That is the last straw.",
        "Stop wasting my time.",
        "Who do you think you are?",
        "I am furious with you.",
        "You ruined everything, as usual.",
        "Give me back my money.",
        "Shut up and listen to me.",
        "I have had it with your excuses.",
        "This is outrageous and you know it.",
        "Don't touch my things ever again.",
        "You broke your promise again.",
        "What the hell is wrong with you?",
        "I hate the way you treat me.",
        "Answer the question, right now!",
        "Nobody does that to me.",
        "You should be ashamed of yourself.",
        "I want to speak to your manager.",
        "Get your hands off me!",
        "You had one job and you failed.",
        "I won't put up with this anymore.",
        "That's a disgusting thing to say.",
    ),
    "hap": (
        "This is the best day of my life!",
        "I got the job, I can't believe it!",
        "We're getting married in June!",
        "That's wonderful news, congratulations!",
        "I love this place so much.",
        "You made me so happy today.",
        "We won the game last night!",
        "Oh, what a beautiful surprise!",
        "I'm so excited to see you.",
        "Let's celebrate tonight!",
        "This is absolutely fantastic.",
        "I passed the exam with honors!",
        "Thank you, this means the world to me.",
        "Everything worked out perfectly.",
        "What a lovely idea, let's do it.",
        "I can't stop smiling.",
        "You're the best friend ever.",
        "We're going to Hawaii next week!",
        "That was so much fun.",
        "I'm really proud of you.",
        "The baby is finally here!",
        "Wow, you look amazing tonight.",
        "I feel great about this.",
        "Our team is going to the finals!",
        "This cake is delicious, thank you.",
        "We did it, we actually did it!",
        "I'm thrilled you could make it.",
        "Best vacation ever, seriously.",
        "That joke was hilarious.",
        "You're going to love this present.",
    ),
    "neu": (
        "The meeting starts at ten.",
        "I'll take the bus to work.",
        "Please pass me the salt.",
        "The report is on your desk.",
        "We need to buy some milk.",
        "The train leaves from platform two.",
        "I think it will rain later.",
        "My phone number ends in four.",
        "She works at the library downtown.",
        "Turn left at the next corner.",
        "The store closes at nine.",
        "I read the newspaper this morning.",
        "Can you spell your last name?",
        "The form is due on Friday.",
        "He moved to Chicago last year.",
        "We can talk about it tomorrow.",
        "The keys are in the kitchen.",
        "I usually have tea in the afternoon.",
        "Let me check my calendar.",
        "The parking lot is behind the building.",
        "Our flight is at seven.",
        "Please fill out this form.",
        "The printer is on the second floor.",
        "I need to renew my license.",
        "It takes about twenty minutes.",
        "Which line should I stand in?",
        "The office is closed on Sunday.",
        "I'll send you the address.",
        "We have a reservation for two.",
        "The package should arrive Monday.",
    ),
    "sad": (
        "I miss her so much.",
        "He passed away last night.",
        "Nobody came to my party.",
        "I lost my job today.",
        "I feel so alone here.",
        "We had to put the dog down.",
        "It's over between us.",
        "I don't think I can go on.",
        "Everything I do goes wrong.",
        "She never called me back.",
        "I wish things were different.",
        "My father is very sick.",
        "I failed again, I always fail.",
        "There's nothing left for me here.",
        "I cried all night long.",
        "He's not coming back, is he?",
        "I'm sorry I let you down.",
        "Our house was destroyed in the fire.",
        "I can't stop thinking about him.",
        "Nobody understands how I feel.",
        "It hurts so much.",
        "I gave up on my dream.",
        "We lost the baby.",
        "I'm so tired of being lonely.",
        "I never got to say goodbye.",
        "They forgot my birthday again.",
        "It's all my fault.",
        "I have no one to talk to.",
        "The doctor said there's no hope.",
        "My best friend moved away.",
    ),
}
# Lexically neutral lines that any emotion could carry: only the voice tells.
AMBIGUOUS_SENTENCES = (
    "Are you serious about this?",
    "I can't believe it.",
    "Really? Right now?",
    "So that's what happened.",
    "You said that yesterday.",
    "Well, here we are again.",
    "I didn't expect that.",
    "Look at this, just look at it.",
    "Tell me that again.",
    "That's what she told me.",
    "It's happening tomorrow.",
    "Okay, if you say so.",
    "What did you just say?",
    "Oh my God, look at that.",
    "I know, I know.",
    "You have to see this.",
    "It's him again.",
    "Is this really happening?",
    "Just like last time.",
    "Well, that's it then.",
    "I have to tell you something.",
    LATIN1_SENTENCE,
    "They called this morning.",
    "That's the whole story.",
    "I guess we'll see.",
    "Did you hear the news?",
    "Here it is, finally.",
    "You were right about him.",
    "It's been a long week.",
    "We'll find out soon enough.",
)
EMOTIONS = tuple(EMOTION_PROSODY_MEANS_Z)


# ---------------------------------------------------------------------------------------------
# Plans: everything random is drawn here, in the parent process, in a fixed order
# ---------------------------------------------------------------------------------------------
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


def _annotations(label, rng):
    """Draws the categorical and dimensional evaluations behind a header label."""
    evaluators = sorted(
        rng.choice(CATEGORICAL_EVALUATORS, NUM_CATEGORICAL_EVALUATORS, replace=False)
    )
    if label == "xxx":  # no majority: every evaluator says something else
        picks = rng.choice(len(NO_MAJORITY_CATEGORIES), len(evaluators), replace=False)
        categories = [NO_MAJORITY_CATEGORIES[i] for i in picks]
    else:  # a majority: all but possibly one evaluator agree
        categories = [CATEGORY_NAMES[label]] * len(evaluators)
        if rng.random() < DISSENTING_EVALUATOR_SHARE:
            dissent = [name for name in NO_MAJORITY_CATEGORIES if name != CATEGORY_NAMES[label]]
            categories[-1] = dissent[rng.integers(len(dissent))]
    categorical = list(zip(evaluators, categories))
    attribute_evaluators = sorted(
        rng.choice(ATTRIBUTE_EVALUATORS, NUM_ATTRIBUTE_EVALUATORS, replace=False)
    )
    attributes = [
        (
            evaluator,
            tuple(int(v) for v in np.clip(np.rint(rng.normal(VAD_MEANS[label], VAD_STD)), 1, 5)),
        )
        for evaluator in attribute_evaluators
    ]
    return categorical, attributes


def plan_mini_iemocap(rng):
    """Draws every turn of mini-IEMOCAP: labels, text, prosody, timing gaps and annotations.

    Arguments
    ---------
    rng : numpy.random.Generator
        Source of randomness; the plan depends on nothing else.

    Returns
    -------
    dict
        ``turns`` (list of IemocapTurn in dialog order), ``dialogs`` (dialog name to session)
        and ``idless_turns`` (dialog name to a list of (turn index it precedes, speaker
        letter, text, duration, with_times)).

    Example
    -------
    >>> plan = plan_mini_iemocap(np.random.default_rng(0))
    >>> len(plan["turns"])
    520
    >>> plan["turns"][0].utt_id
    'Ses01F_impro01_F000'
    >>> sorted({turn.label for turn in plan["turns"]})
    ['ang', 'exc', 'fru', 'hap', 'neu', 'sad', 'sur', 'xxx']
    """
    turns, dialogs, idless_turns = [], {}, {}
    usable = [label for label, n in IEMOCAP_USABLE_COUNTS_PER_SPEAKER.items() for _ in range(n)]
    filtered = [label for label, n in IEMOCAP_FILTERED_COUNTS_PER_SPEAKER.items() for _ in range(n)]
    num_dialogs = len(IEMOCAP_DIALOG_TEMPLATES)
    for session in range(1, NUM_SESSIONS + 1):
        session_tag = f"{session:02d}"
        speakers = {}
        for gender in "FM":
            accent, variant = IEMOCAP_VOICES[(session, gender)]
            speakers[gender] = SpeakerVoice(
                f"Ses{session_tag}{gender}",
                f"{accent}+{variant}",
                tuple(rng.normal(0.0, SPEAKER_BASELINE_STD_Z, len(PROSODY_DIMENSIONS))),
            )
        lowpass = _uniform(rng, SESSION_CHANNEL_LOWPASS)
        noise_dbfs = _uniform(rng, SESSION_CHANNEL_NOISE_DBFS)
        # Each speaker's labels, shuffled, then dealt evenly over the session's dialogs.
        labels = {gender: list(rng.permutation(usable + filtered)) for gender in "FM"}
        per_dialog = len(labels["F"]) // num_dialogs
        session_turns = []
        for d, template in enumerate(IEMOCAP_DIALOG_TEMPLATES):
            dialog = template.format(session=session_tag)
            dialogs[dialog] = session
            first = dialog[len("Ses01")]  # the dialog's letter speaks first
            order = [first, "M" if first == "F" else "F"] * per_dialog
            counters = {"F": 0, "M": 0}
            dialog_turns = []
            for k, gender in enumerate(order):
                label = str(labels[gender][d * per_dialog + counters[gender]])
                utt_id = f"{dialog}_{gender}{counters[gender]:03d}"
                counters[gender] += 1
                if label in FILTERED_LABEL_SOURCE_CLASSES:
                    options = FILTERED_LABEL_SOURCE_CLASSES[label]
                    source_class = options[rng.integers(len(options))]
                else:
                    if label == "hap" and rng.random() < EXCITED_SHARE_OF_HAPPY:
                        label = "exc"
                    source_class = "hap" if label == "exc" else label
                # Text and prosody are drawn independently given the class.
                text, text_source = sample_emotion_sentence(source_class, rng)
                prosody = sample_emotion_prosody(source_class, speakers[gender], rng)
                categorical, attributes = _annotations(label, rng)
                gap = _uniform(rng, DIALOG_START_S if k == 0 else TURN_GAP_S)
                audio = UtterancePlan(
                    path=f"{IEMOCAP_DIRNAME}/Session{session}/sentences/wav/{dialog}/{utt_id}.wav",
                    text=text,
                    voice=speakers[gender].voice,
                    lowpass=lowpass,
                    noise_dbfs=noise_dbfs,
                    leading_silence_s=_uniform(rng, LEADING_SILENCE_S),
                    trailing_silence_s=_uniform(rng, TRAILING_SILENCE_S),
                    noise_seed=int(rng.integers(2**63)),
                    **prosody,
                )
                dialog_turns.append(
                    IemocapTurn(
                        utt_id=utt_id,
                        session=session,
                        dialog=dialog,
                        speaker=speakers[gender].speaker_id,
                        label=label,
                        source_class=source_class,
                        text_source=text_source,
                        gap_before_s=gap,
                        categorical=categorical,
                        attributes=attributes,
                        audio=audio,
                    )
                )
            # Lines a parser must skip: "M: Yeah." without times, "FXX [..]: Hmm." with times.
            positions = sorted(
                rng.choice(np.arange(1, len(dialog_turns)), IDLESS_TURNS_PER_DIALOG, replace=False)
            )
            idless_turns[dialog] = [
                (
                    int(position),
                    "FM"[rng.integers(2)],
                    IDLESS_TURN_TEXTS[rng.integers(len(IDLESS_TURN_TEXTS))],
                    _uniform(rng, IDLESS_TURN_DURATION_S),
                    bool(i % 2),
                )
                for i, position in enumerate(positions)
            ]
            session_turns.extend(dialog_turns)
        # Every session carries one latin-1 byte: its first neutral turn says "café".
        first_neutral = next(turn for turn in session_turns if turn.label == "neu")
        first_neutral.audio.text = LATIN1_SENTENCE
        first_neutral.text_source = "ambiguous"
        turns.extend(session_turns)
    return {"turns": turns, "dialogs": dialogs, "idless_turns": idless_turns}


def _video_id(rng):
    """A YouTube-like video id that does not start with "-" (kind to command lines)."""
    first = VIDEO_ID_ALPHABET[rng.integers(len(VIDEO_ID_ALPHABET) - 2)]  # the last two are "-_"
    rest = rng.integers(len(VIDEO_ID_ALPHABET), size=VIDEO_ID_LENGTH - 1)
    return first + "".join(VIDEO_ID_ALPHABET[i] for i in rest)


def plan_mini_voxceleb(rng):
    """Draws the speakers, videos and utterances of mini-VoxCeleb and its trial list.

    Arguments
    ---------
    rng : numpy.random.Generator
        Source of randomness; the plan depends on nothing else.

    Returns
    -------
    dict
        ``speakers`` (id to SpeakerVoice), ``train_speakers``, ``trial_speakers`` (lists of
        ids), ``utterances`` (list of (speaker id, UtterancePlan)) and ``trials`` (list of
        (label, enrol path, test path), paths relative to ``wav/``).

    Example
    -------
    >>> plan = plan_mini_voxceleb(np.random.default_rng(0))
    >>> len(plan["speakers"]), len(plan["trial_speakers"]), len(plan["trials"])
    (48, 8, 300)
    >>> plan["trial_speakers"][0]
    'id10270'
    """
    num_speakers = len(VOXCELEB_VARIANTS) * VOXCELEB_SPEAKERS_PER_VARIANT
    num_train = num_speakers - NUM_VOXCELEB_TRIAL_SPEAKERS
    train_ids = [f"id{FIRST_TRAIN_SPEAKER_NUMBER + i}" for i in range(num_train)]
    trial_ids = [f"id{FIRST_TRIAL_SPEAKER_NUMBER + i}" for i in range(NUM_VOXCELEB_TRIAL_SPEAKERS)]
    # Speakers that share a variant never share an accent.
    voices = []
    for variant in VOXCELEB_VARIANTS:
        accents = rng.choice(VOXCELEB_ACCENTS, VOXCELEB_SPEAKERS_PER_VARIANT, replace=False)
        voices.extend(f"{accent}+{variant}" for accent in accents)
    voices = [voices[i] for i in rng.permutation(len(voices))]
    speakers, utterances = {}, []
    for speaker_id, voice in zip(train_ids + trial_ids, voices):
        # Rate and pitch set the speaker apart; pitch range and level stay near neutral.
        baseline = rng.normal(0.0, VOXCELEB_SPEAKER_STD_Z, len(PROSODY_DIMENSIONS))
        baseline[2:] *= VOXCELEB_RANGE_LEVEL_SHARE
        speaker = SpeakerVoice(speaker_id, voice, tuple(baseline))
        speakers[speaker_id] = speaker
        num_videos = int(
            rng.integers(VIDEOS_PER_VOXCELEB_SPEAKER[0], VIDEOS_PER_VOXCELEB_SPEAKER[1] + 1)
        )
        for video_utterances in np.array_split(
            np.arange(UTTERANCES_PER_VOXCELEB_SPEAKER), num_videos
        ):
            video = _video_id(rng)
            lowpass = _uniform(rng, VIDEO_CHANNEL_LOWPASS)
            noise_dbfs = _uniform(rng, VIDEO_CHANNEL_NOISE_DBFS)
            level_offset_db = float(rng.normal(0.0, VIDEO_LEVEL_STD_DB))
            for number in range(1, len(video_utterances) + 1):
                pool = (
                    EMOTION_SENTENCES[EMOTIONS[rng.integers(len(EMOTIONS))]] + AMBIGUOUS_SENTENCES
                )
                prosody = sample_emotion_prosody(
                    "neu", speaker, rng, spread_z=VOXCELEB_UTTERANCE_STD_Z
                )
                prosody["level_dbfs"] = round(prosody["level_dbfs"] + level_offset_db, 3)
                audio = UtterancePlan(
                    path=f"{VOXCELEB_DIRNAME}/wav/{speaker_id}/{video}/{number:05d}.wav",
                    text=pool[rng.integers(len(pool))],
                    voice=voice,
                    lowpass=lowpass,
                    noise_dbfs=noise_dbfs,
                    leading_silence_s=_uniform(rng, LEADING_SILENCE_S),
                    trailing_silence_s=_uniform(rng, TRAILING_SILENCE_S),
                    noise_seed=int(rng.integers(2**63)),
                    **prosody,
                )
                utterances.append((speaker_id, audio))
    trials = _plan_trials(trial_ids, utterances, rng)
    return {
        "speakers": speakers,
        "train_speakers": train_ids,
        "trial_speakers": trial_ids,
        "utterances": utterances,
        "trials": trials,
    }


def _plan_trials(trial_ids, utterances, rng):
    """Target and non-target pairs over the held-out speakers, in shuffled order."""
    prefix = f"{VOXCELEB_DIRNAME}/wav/"
    by_speaker = {
        speaker_id: [audio.path[len(prefix) :] for spk, audio in utterances if spk == speaker_id]
        for speaker_id in trial_ids
    }
    target_pairs = [
        (paths[i], paths[j])
        for paths in by_speaker.values()
        for i in range(len(paths))
        for j in range(i + 1, len(paths))
    ]
    chosen = rng.choice(len(target_pairs), NUM_TARGET_TRIALS, replace=False)
    trials = [(1,) + target_pairs[i] for i in sorted(chosen)]
    nontarget_pairs = set()
    while len(nontarget_pairs) < NUM_NONTARGET_TRIALS:
        enrol_speaker, test_speaker = rng.choice(trial_ids, 2, replace=False)
        enrol = by_speaker[enrol_speaker][rng.integers(len(by_speaker[enrol_speaker]))]
        test = by_speaker[test_speaker][rng.integers(len(by_speaker[test_speaker]))]
        if (enrol, test) not in nontarget_pairs:
            nontarget_pairs.add((enrol, test))
            trials.append((0, enrol, test))
    return [trials[i] for i in rng.permutation(len(trials))]


# ---------------------------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------------------------
class SynthesiserUnavailable(RuntimeError):
    """Raised when eSpeak NG cannot be found or started."""


ESPEAK_INSTALL_HINT = (
    "mini_corpora speaks its corpora with eSpeak NG. Install it with "
    "`pip install espeakng-loader` (ships the library and its data; no root needed), "
    "or install the system library (Debian: `apt-get install libespeak-ng1`)."
)


def find_espeak():
    """Returns (library path, data path or None) of eSpeak NG, preferring espeakng-loader.

    Example
    -------
    >>> library_path, data_path = find_espeak()
    >>> "espeak" in os.path.basename(library_path)
    True
    """
    try:
        import espeakng_loader
    except ImportError:
        library_path = ctypes.util.find_library("espeak-ng")
        if library_path is None:
            raise SynthesiserUnavailable(ESPEAK_INSTALL_HINT) from None
        return library_path, None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


# espeak_AUDIO_OUTPUT, espeak_PARAMETER and flag values from eSpeak NG's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
_PARAMETER_IDS = {"rate": 1, "volume": 2, "pitch": 3, "pitch_range": 4, "word_gap": 7}
_POSITION_CHARACTER = 1
_CHARS_UTF8 = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakSynthesiser:
    """Speaks text with libespeak-ng through ctypes, returning 16-bit samples.

    eSpeak NG is a process-wide singleton that keeps state from one utterance to the next, so
    make one instance per process, and for reproducible bytes synthesise a fixed list of
    utterances in a fresh process.

    Example
    -------
    >>> synthesiser = EspeakSynthesiser()
    >>> samples = synthesiser.synthesise("Hello.", "en-us+m3", rate=175, pitch=50, pitch_range=50)
    >>> samples.dtype, synthesiser.sample_rate, 0.2 < len(samples) / synthesiser.sample_rate < 2.0
    (dtype('int16'), 22050, True)
    """

    def __init__(self):
        library_path, data_path = find_espeak()
        try:
            lib = ctypes.CDLL(library_path)
        except OSError as error:
            raise SynthesiserUnavailable(
                f"cannot load {library_path}: {error}. {ESPEAK_INSTALL_HINT}"
            ) from error
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        # Voices with breath or roughness draw noise from a generator that eSpeak seeds from
        # the clock; espeak_ng_SetRandSeed (eSpeak NG >= 1.52) makes them reproducible.
        self._set_rand_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_rand_seed is not None:
            self._set_rand_seed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = data_path.encode() if data_path else None
        self.sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise SynthesiserUnavailable(
                f"eSpeak NG ({library_path}) failed to start with data at {data_path}. "
                + ESPEAK_INSTALL_HINT
            )
        self._lib = lib
        self._chunks = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept referenced: C holds a pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples, num_samples, events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(num_samples,)).copy())
        return 0  # 0: go on synthesising

    def synthesise(
        self, text, voice, rate, pitch, pitch_range, volume=ESPEAK_VOLUME, seed=0, word_gap=0
    ):
        """Returns the int16 samples of ``text`` spoken by ``voice`` at ``self.sample_rate``.

        ``seed`` seeds the noise of breathy or rough voices (where eSpeak NG allows it).
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        values = {
            "rate": rate,
            "volume": volume,
            "pitch": pitch,
            "pitch_range": pitch_range,
            "word_gap": word_gap,
        }
        for name, value in values.items():
            if self._lib.espeak_SetParameter(_PARAMETER_IDS[name], int(value), 0) != 0:
                raise ValueError(f"eSpeak NG refused {name}={value}")
        if self._set_rand_seed is not None:
            self._set_rand_seed(int(seed) % 2**31)
        self._chunks = []
        encoded = text.encode("utf-8") + b"\0"
        status = self._lib.espeak_Synth(
            encoded, len(encoded), 0, _POSITION_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise RuntimeError(
                f"eSpeak NG failed (status {status}) on {text!r} with voice {voice!r}"
            )
        self._lib.espeak_Synchronize()
        if not self._chunks:
            raise RuntimeError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r}")
        return np.concatenate(self._chunks)


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


# ---------------------------------------------------------------------------------------------
# Text files in IEMOCAP's formats
# ---------------------------------------------------------------------------------------------
def _dialog_timeline(turns, idless, durations):
    """Start and end times of every turn and id-less turn, cumulative over the dialog."""
    idless_by_position = {position: entry for position, *entry in idless}
    clock, times, idless_times = 0.0, [], []
    for k, turn in enumerate(turns):
        clock += turn.gap_before_s
        if k in idless_by_position:  # an id-less turn fills part of this pause
            speaker, text, duration, with_times = idless_by_position[k]
            idless_times.append((k, speaker, text, clock, clock + duration, with_times))
            clock += duration + turn.gap_before_s
        start = round(clock, 4)
        end = round(start + durations[turn.audio.path] / SAMPLE_RATE, 4)
        times.append((start, end))
        clock = end
    return times, idless_times


def format_emo_evaluation(turns, times):
    """The text of one ``EmoEvaluation/<dialog>.txt`` file.

    Example
    -------
    >>> turn = IemocapTurn("Ses01F_impro01_F000", 1, "Ses01F_impro01", "Ses01F", "neu", "neu",
    ...                    "own", 1.0, [("C-E2", "Neutral")], [("A-E3", (3, 2, 2))])
    >>> text = format_emo_evaluation([turn], [(6.2901, 8.2357)])
    >>> print(text, end="")  # doctest: +NORMALIZE_WHITESPACE
    % [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]
    <BLANKLINE>
    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[3.0000, 2.0000, 2.0000]
    C-E2:	Neutral;	()
    A-E3:	val 3; act 2; dom  2;	()
    <BLANKLINE>
    """
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for turn, (start, end) in zip(turns, times):
        vad = np.mean([values for _, values in turn.attributes], axis=0)
        lines.append(
            f"[{start:.4f} - {end:.4f}]\t{turn.utt_id}\t{turn.label}\t"
            f"[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]"
        )
        lines.extend(f"{evaluator}:\t{category};\t()" for evaluator, category in turn.categorical)
        lines.extend(
            f"{evaluator}:\tval {v}; act {a}; dom  {d};\t()"
            for evaluator, (v, a, d) in turn.attributes
        )
        lines.append("")
    return "\n".join(lines) + "\n"


def format_transcription(turns, times, idless_times):
    """The text of one ``transcriptions/<dialog>.txt`` file, id-less lines included.

    Example
    -------
    >>> turn = IemocapTurn("Ses01F_impro01_F000", 1, "Ses01F_impro01", "Ses01F", "neu", "neu",
    ...                    "own", 1.0, audio=UtterancePlan("x.wav", "Excuse me.", "en-us+f1",
    ...                    175, 50, 50, -27.0, 0.0, 0.0, -60.0, 0.1, 0.1, 0))
    >>> idless = [(0, "M", "Yeah.", 2.0, 3.0, False)]
    >>> print(format_transcription([turn], [(6.2901, 8.2357)], idless), end="")
    M: Yeah.
    Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
    """
    idless_before = {}
    for position, speaker, text, start, end, with_times in idless_times:
        line = (
            f"{speaker}XX [{start:08.4f}-{end:08.4f}]: {text}"
            if with_times
            else f"{speaker}: {text}"
        )
        idless_before.setdefault(position, []).append(line)
    lines = []
    for k, (turn, (start, end)) in enumerate(zip(turns, times)):
        lines.extend(idless_before.get(k, []))
        lines.append(f"{turn.utt_id} [{start:08.4f}-{end:08.4f}]: {turn.audio.text}")
    return "\n".join(lines) + "\n"


def _write_text(path, text, encoding="ascii"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding=encoding, newline="\n") as handle:
        handle.write(text)


def write_iemocap_text_files(root, plan, durations):
    """Writes the EmoEvaluation (with its side folders) and transcription files of every dialog."""
    by_dialog = {}
    for turn in plan["turns"]:
        by_dialog.setdefault(turn.dialog, []).append(turn)
    for dialog, turns in by_dialog.items():
        session_dir = os.path.join(
            root, IEMOCAP_DIRNAME, f"Session{plan['dialogs'][dialog]}", "dialog"
        )
        times, idless_times = _dialog_timeline(turns, plan["idless_turns"][dialog], durations)
        evaluation_dir = os.path.join(session_dir, "EmoEvaluation")
        _write_text(
            os.path.join(evaluation_dir, f"{dialog}.txt"), format_emo_evaluation(turns, times)
        )
        # IEMOCAP's transcriptions are not all UTF-8: these are latin-1 ("café" is one byte).
        _write_text(
            os.path.join(session_dir, "transcriptions", f"{dialog}.txt"),
            format_transcription(turns, times, idless_times),
            encoding="latin-1",
        )
        # The per-evaluator folders that sit beside the .txt files in the real corpus.
        categorical = "".join(f"{turn.utt_id} :{turn.categorical[0][1]}; ()\n" for turn in turns)
        _write_text(
            os.path.join(evaluation_dir, "Categorical", f"{dialog}_e2_cat.txt"), categorical
        )
        attributes = "".join(
            f"{turn.utt_id} :act {a}; val {v}; dom  {d}; ()\n"
            for turn in turns
            for _, (v, a, d) in turn.attributes[:1]
        )
        _write_text(os.path.join(evaluation_dir, "Attribute", f"{dialog}_e3_atr.txt"), attributes)
        self_evaluation = "".join(
            f"{turn.utt_id} :{CATEGORY_NAMES.get(turn.label, 'Other')}; ()\n" for turn in turns
        )
        _write_text(
            os.path.join(evaluation_dir, "Self-evaluation", f"{dialog}_self.txt"), self_evaluation
        )


def write_voxceleb_trials(root, plan):
    """Writes ``veri_test2.txt``: ``label enrol_path test_path`` per line."""
    lines = "".join(f"{label} {enrol} {test}\n" for label, enrol, test in plan["trials"])
    _write_text(os.path.join(root, VOXCELEB_DIRNAME, VOXCELEB_TRIAL_LIST), lines)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def summarise(iemocap_plan, voxceleb_plan):
    """Counts of what the plans hold, for the stamp file and the printed summary.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> summary = summarise(plan_mini_iemocap(rng), plan_mini_voxceleb(rng))
    >>> summary["iemocap"]["usable_per_speaker"]["Ses01F"], summary["voxceleb"]["speakers"]
    (48, 48)
    """
    per_session = {}
    usable_per_speaker = {}
    labels = {}
    for turn in iemocap_plan["turns"]:
        labels[turn.label] = labels.get(turn.label, 0) + 1
        if turn.label in FILTERED_LABEL_SOURCE_CLASSES:
            continue
        merged = "hap" if turn.label == "exc" else turn.label
        session = per_session.setdefault(f"Session{turn.session}", dict.fromkeys(EMOTIONS, 0))
        session[merged] += 1
        usable_per_speaker[turn.speaker] = usable_per_speaker.get(turn.speaker, 0) + 1
    trials = voxceleb_plan["trials"]
    return {
        "iemocap": {
            "wavs": len(iemocap_plan["turns"]),
            "dialogs": len(iemocap_plan["dialogs"]),
            "labels": dict(sorted(labels.items())),
            "usable_per_session_class": per_session,
            "usable_per_speaker": usable_per_speaker,
        },
        "voxceleb": {
            "speakers": len(voxceleb_plan["speakers"]),
            "train_speakers": len(voxceleb_plan["train_speakers"]),
            "trial_speakers": len(voxceleb_plan["trial_speakers"]),
            "utterances": len(voxceleb_plan["utterances"]),
            "trials": len(trials),
            "target_trials": sum(label for label, _, _ in trials),
        },
    }


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _stamp_identity(seed):
    return {
        "generator": "mmer data_prep/mini_corpora.py",
        "version": GENERATOR_VERSION,
        "seed": seed,
    }


def _check_replaceable(out_dir):
    """Refuses to overwrite a corpus folder that this script did not write (a real corpus)."""
    for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME):
        target = os.path.join(out_dir, name)
        if os.path.exists(target) and _read_json(os.path.join(target, CORPUS_MARKER)) is None:
            raise FileExistsError(
                f"{target} exists and was not written by mini_corpora.py (no {CORPUS_MARKER}); "
                "refusing to overwrite it. Choose another --out or move it away."
            )


def make_mini_corpora(out_dir, seed=0, num_workers=DEFAULT_NUM_WORKERS, verbose=True):
    """Synthesises mini-IEMOCAP and mini-VoxCeleb under ``out_dir`` (see the module docstring).

    Skips the work when ``out_dir`` already holds a complete pair made with the same seed by
    this version of the generator. Replaces an earlier synthetic corpus, never a real one.

    Arguments
    ---------
    out_dir : str
        Parent folder of ``IEMOCAP_full_release`` and ``VoxCeleb1``.
    seed : int
        Seed of every random choice; the same seed gives byte-identical files.
    num_workers : int
        Processes that synthesise in parallel (does not change the bytes).
    verbose : bool
        Print a summary.

    Returns
    -------
    dict
        The summary (counts, ``elapsed_s`` and ``skipped``).

    Example
    -------
    >>> out_dir = tempfile.mkdtemp()
    >>> # Pretend that a complete corpus pair made with seed 5 is there: nothing is redone.
    >>> stamp = {**_stamp_identity(5), "summary": {}}
    >>> atomic_write_json(os.path.join(out_dir, COMPLETE_STAMP), stamp)
    >>> for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME):
    ...     atomic_write_json(os.path.join(out_dir, name, CORPUS_MARKER), _stamp_identity(5))
    >>> make_mini_corpora(out_dir, seed=5, verbose=False)["skipped"]
    True
    """
    started = time.time()
    out_dir = os.path.abspath(out_dir)
    identity = _stamp_identity(int(seed))
    stamp_path = os.path.join(out_dir, COMPLETE_STAMP)
    stamp = _read_json(stamp_path)
    corpora_present = all(
        _read_json(os.path.join(out_dir, name, CORPUS_MARKER)) == identity
        for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME)
    )
    if stamp is not None and {k: stamp.get(k) for k in identity} == identity and corpora_present:
        summary = dict(
            stamp.get("summary", {}), elapsed_s=round(time.time() - started, 2), skipped=True
        )
        if verbose:
            print(f"mini corpora with seed {seed} already complete in {out_dir}; skipping")
        return summary
    _check_replaceable(out_dir)
    find_espeak()  # fail early, before planning, with an install hint

    iemocap_rng, voxceleb_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2)
    )
    iemocap_plan = plan_mini_iemocap(iemocap_rng)
    voxceleb_plan = plan_mini_voxceleb(voxceleb_rng)
    summary = summarise(iemocap_plan, voxceleb_plan)

    # Fixed batches: one per IEMOCAP session, groups of VoxCeleb speakers.
    batches = {}
    for turn in iemocap_plan["turns"]:
        batches.setdefault(("iemocap", turn.session), []).append(turn.audio)
    vox_order = {spk: i for i, spk in enumerate(voxceleb_plan["speakers"])}
    for speaker_id, audio in voxceleb_plan["utterances"]:
        batches.setdefault(
            ("voxceleb", vox_order[speaker_id] // VOXCELEB_SPEAKERS_PER_BATCH), []
        ).append(audio)

    os.makedirs(out_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(dir=out_dir, prefix=".mini_corpora_tmp.")
    try:
        durations = synthesise_in_fresh_processes(work_dir, list(batches.values()), num_workers)
        write_iemocap_text_files(work_dir, iemocap_plan, durations)
        write_voxceleb_trials(work_dir, voxceleb_plan)
        for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME):
            _write_text(
                os.path.join(work_dir, name, CORPUS_MARKER), json.dumps(identity, indent=2) + "\n"
            )
        # Swap into place: the stamp goes first and comes back last, so an interrupted swap
        # is never mistaken for a complete corpus.
        if os.path.exists(stamp_path):
            os.remove(stamp_path)
        old_dir = os.path.join(work_dir, "replaced")
        os.makedirs(old_dir)
        for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME):
            target = os.path.join(out_dir, name)
            if os.path.exists(target):
                os.replace(target, os.path.join(old_dir, name))
            os.replace(os.path.join(work_dir, name), target)
        atomic_write_json(stamp_path, {**identity, "summary": summary})
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    summary = dict(summary, elapsed_s=round(time.time() - started, 2), skipped=False)
    if verbose:
        print_summary(summary, out_dir)
    return summary


def print_summary(summary, out_dir):
    """Prints the counts of a generated corpus pair."""
    iemocap, voxceleb = summary["iemocap"], summary["voxceleb"]
    print(f"mini-IEMOCAP in {os.path.join(out_dir, IEMOCAP_DIRNAME)}")
    print(
        f"  {iemocap['wavs']} wavs in {iemocap['dialogs']} dialogs; "
        f"header labels {iemocap['labels']}"
    )
    print("  usable (4-class) per session: " + "  ".join(EMOTIONS))
    for session, counts in iemocap["usable_per_session_class"].items():
        print(f"    {session}: " + "  ".join(f"{counts[e]:3d}" for e in EMOTIONS))
    print(
        "  usable per speaker: "
        + ", ".join(f"{k} {v}" for k, v in iemocap["usable_per_speaker"].items())
    )
    print(f"mini-VoxCeleb in {os.path.join(out_dir, VOXCELEB_DIRNAME)}")
    print(
        f"  {voxceleb['speakers']} speakers ({voxceleb['train_speakers']} train, "
        f"{voxceleb['trial_speakers']} trial), {voxceleb['utterances']} utterances, "
        f"{voxceleb['trials']} trials ({voxceleb['target_trials']} target) in {VOXCELEB_TRIAL_LIST}"
    )
    print(f"done in {summary['elapsed_s']:.1f} s")


def main(argv=None):
    """Command line: ``python data_prep/mini_corpora.py --out DIR [--seed N] [--workers N]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", required=True, help="folder that receives IEMOCAP_full_release and VoxCeleb1"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (default 0)"
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_NUM_WORKERS, help="synthesis processes"
    )
    args = parser.parse_args(argv)
    try:
        make_mini_corpora(args.out, seed=args.seed, num_workers=args.workers)
    except (SynthesiserUnavailable, FileExistsError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
