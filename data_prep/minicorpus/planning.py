"""Plans: every random choice of both corpora, drawn in the parent process in a fixed order.

A plan says which utterance gets which text, voice, prosody, channel, label and annotations;
synthesis (``render.py``) and the text files (``writers.py``) only carry it out.
"""

import numpy as np

from .sampling import (
    IemocapTurn,
    SpeakerVoice,
    UtterancePlan,
    _uniform,
    sample_emotion_prosody,
    sample_emotion_sentence,
)
from .sentences import AMBIGUOUS_SENTENCES, EMOTION_SENTENCES, LATIN1_SENTENCE
from .settings import (
    ATTRIBUTE_EVALUATORS,
    CATEGORICAL_EVALUATORS,
    CATEGORY_NAMES,
    DIALOG_START_S,
    DISSENTING_EVALUATOR_SHARE,
    EMOTIONS,
    EXCITED_SHARE_OF_HAPPY,
    FILTERED_LABEL_SOURCE_CLASSES,
    FIRST_TRAIN_SPEAKER_NUMBER,
    FIRST_TRIAL_SPEAKER_NUMBER,
    IDLESS_TURN_DURATION_S,
    IDLESS_TURN_TEXTS,
    IDLESS_TURNS_PER_DIALOG,
    IEMOCAP_DIALOG_TEMPLATES,
    IEMOCAP_DIRNAME,
    IEMOCAP_FILTERED_COUNTS_PER_SPEAKER,
    IEMOCAP_USABLE_COUNTS_PER_SPEAKER,
    IEMOCAP_VOICES,
    LEADING_SILENCE_S,
    NO_MAJORITY_CATEGORIES,
    NUM_ATTRIBUTE_EVALUATORS,
    NUM_CATEGORICAL_EVALUATORS,
    NUM_NONTARGET_TRIALS,
    NUM_SESSIONS,
    NUM_TARGET_TRIALS,
    NUM_VOXCELEB_TRIAL_SPEAKERS,
    PROSODY_DIMENSIONS,
    SESSION_CHANNEL_LOWPASS,
    SESSION_CHANNEL_NOISE_DBFS,
    SPEAKER_BASELINE_STD_Z,
    TRAILING_SILENCE_S,
    TURN_GAP_S,
    UTTERANCES_PER_VOXCELEB_SPEAKER,
    VAD_MEANS,
    VAD_STD,
    VIDEO_CHANNEL_LOWPASS,
    VIDEO_CHANNEL_NOISE_DBFS,
    VIDEO_ID_ALPHABET,
    VIDEO_ID_LENGTH,
    VIDEO_LEVEL_STD_DB,
    VIDEOS_PER_VOXCELEB_SPEAKER,
    VOXCELEB_ACCENTS,
    VOXCELEB_DIRNAME,
    VOXCELEB_RANGE_LEVEL_SHARE,
    VOXCELEB_SPEAKER_STD_Z,
    VOXCELEB_SPEAKERS_PER_VARIANT,
    VOXCELEB_UTTERANCE_STD_Z,
    VOXCELEB_VARIANTS,
)


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
