"""The parameters of the built-in corpora: layout names, audio, prosody, labels, speakers.

Every number that shapes mini-IEMOCAP and mini-VoxCeleb lives here; the sentence pools live in
``sentences.json`` (see ``sentences.py``).
"""

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

# The emotion classes, in the order of the prosody means above.
EMOTIONS = tuple(EMOTION_PROSODY_MEANS_Z)
