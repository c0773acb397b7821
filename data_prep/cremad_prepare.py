r"""Prepares CREMA-D for emotion recognition: one manifest per actor and a ``corpus.json``
(mmer_lobes.corpora).

CREMA-D (Cao et al., 2014; Open Database License, contents under the Database Contents
License, https://github.com/CheyneyComputerScience/CREMA-D) holds 7,442 clips of 91 actors
(1001-1091) reading 12 sentences. Its ``AudioWAV`` folder names every file
``{actor}_{sentence}_{emotion}_{level}.wav``: the actor's id, a sentence code (``DFA``
"Don't forget a jacket.", ``IEO`` "It's eleven o'clock.", ...), the intended emotion (ANG
anger, DIS disgust, FEA fear, HAP happy, NEU neutral, SAD sad) and its level (LO low, MD
medium, HI high, XX unspecified). The wavs are read from ``<data_folder>/AudioWAV`` (or
from the data folder itself when it holds them).

Entries keep the native emotion names; a label map in the experiment's YAML chooses the
classes::

    {"1001_DFA_ANG_XX": {"wav": "{data_root}/AudioWAV/1001_DFA_ANG_XX.wav", "duration": 2.276,
        "emo": "anger", "emo_intended": "anger", "intensity": "unspecified", "speaker": "1001",
        "gender": "M", "transcript": "Don't forget a jacket.", "sentence": "DFA", "group": "1001"}}

``emo`` is the actor's intended emotion (``label_source="intended"``, the default), or the
majority of the audio-only ratings (``"perceived"``: the ``VoiceVote`` column of
``processedResults/summaryTable.csv``); a clip whose raters tied (``A:N``) or that has no row
there is dropped and counted. ``emo_intended`` keeps the intended emotion either way.
``gender`` (M/F) comes from ``VideoDemographics.csv`` when the data folder holds it.

Every actor is a group; the default protocol is ``n_folds`` speaker-independent folds,
stratified by class. The text is one of 12 fixed sentences read in every emotion, so
``corpus.json`` marks it as carrying no emotion and the text branch refuses it. The corpus
authors document ``1076_MTI_SAD_XX`` as holding no audio: it is always dropped and counted.

On the full release (all 91 actors) the intended labels of the clips found are checked:
anger, disgust, fear, happy and sad 1,271 each, neutral 1,087 (7,442 clips).

Usage:
    python data_prep/cremad_prepare.py --data_folder <CREMA-D> --save_folder results/manifests/cremad \
        [--label_source intended|perceived] [--n_folds 5]
"""
import logging
import os
import re
import sys
from collections import Counter

from tqdm import tqdm

from data_prep import prepare_common
from data_prep.group_manifests import check_known_counts, current_prepared_corpus, finish_preparation
from mmer_lobes.corpora import corpus_description
from mmer_lobes.errors import ProjectError, run_script

logger = logging.getLogger(__name__)

AUDIO_FOLDER = "AudioWAV"
RATINGS_FILE = os.path.join("processedResults", "summaryTable.csv")
DEMOGRAPHICS_FILE = "VideoDemographics.csv"
# Any name of this shape is a CREMA-D clip; an unknown code in it is an error, not a skip.
FILE_PATTERN = re.compile(r"^(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{1,2})\.wav$")
EMOTIONS = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
# The raters' letters in summaryTable.csv.
VOTES = {"A": "anger", "D": "disgust", "F": "fear", "H": "happy", "N": "neutral", "S": "sad"}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified", "X": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock.", "TIE": "That is exactly what happened.", "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.", "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.", "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.", "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.", "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
LABEL_SOURCES = ("intended", "perceived")
N_ACTORS = 91
# Documented upstream as holding no audio.
KNOWN_SILENT = ("1076_MTI_SAD_XX",)
# The full release's intended labels.
FULL_CORPUS_COUNTS = {"anger": 1271, "disgust": 1271, "fear": 1271, "happy": 1271, "neutral": 1087, "sad": 1271}


class CremaDPrepError(ProjectError, ValueError):
    """The CREMA-D tree or the options cannot be prepared."""


def parse_file_name(name):
    """The fields of a CREMA-D audio file name, or None for any other file; an unknown
    sentence, emotion or level code in a name of the CREMA-D shape is an error naming it.

    Example
    -------
    >>> fields = parse_file_name("1001_DFA_ANG_XX.wav")
    >>> fields["emo"], fields["intensity"], fields["speaker"], fields["transcript"]
    ('anger', 'unspecified', '1001', "Don't forget a jacket.")
    >>> parse_file_name("1001_DFA_ANG_XX.flv") is None
    True
    >>> parse_file_name("1001_DFA_ANX_XX.wav")
    Traceback (most recent call last):
    ...
    data_prep.cremad_prepare.CremaDPrepError: 1001_DFA_ANX_XX.wav: unknown emotion code ANX (known: ANG, DIS, FEA, HAP, NEU, SAD)
    """
    match = FILE_PATTERN.match(name)
    if not match:
        return None
    actor, sentence, emotion, level = (part.upper() for part in match.groups())
    for code, table, what in ((sentence, SENTENCES, "sentence"), (emotion, EMOTIONS, "emotion"),
                              (level, LEVELS, "level")):
        if code not in table:
            known = ", ".join(sorted(key for key in table if not (what == "level" and key == "X")))
            raise CremaDPrepError(f"{name}: unknown {what} code {code} (known: {known})")
    return {"emo": EMOTIONS[emotion], "intensity": LEVELS[level], "speaker": actor,
            "transcript": SENTENCES[sentence], "sentence": sentence}


def read_csv_rows(path, columns):
    """The rows of a CREMA-D csv as dictionaries of stripped values
    (:func:`data_prep.prepare_common.read_csv_rows`); a missing column is an error naming the file.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "VideoDemographics.csv")
    >>> _ = open(path, "w").write("ActorID,Age,Sex,Race,Ethnicity\\n1001,51,Male,Caucasian,Not Hispanic\\n")
    >>> read_csv_rows(path, ("ActorID", "Sex"))[0]["Sex"]
    'Male'
    """
    rows = prepare_common.read_csv_rows(path, columns, CremaDPrepError)
    return [{(key or "").strip(): (value or "").strip() for key, value in row.items() if key is not None}
            for _, row in rows]


def read_voice_votes(path):
    """``{clip: VoiceVote}`` from ``processedResults/summaryTable.csv`` (the majority of the
    audio-only ratings: a letter, or letters joined by ``:`` on a tie).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "summaryTable.csv")
    >>> _ = open(path, "w").write(
    ...     ",FileName,VoiceVote,VoiceLevel,FaceVote,FaceLevel,MultiModalVote,MultiModalLevel\\n"
    ...     "1,1001_DFA_ANG_XX,A,60,A,75,A,65\\n2,1001_DFA_DIS_XX,D:N,50:50,D,60,D,70\\n")
    >>> read_voice_votes(path)
    {'1001_DFA_ANG_XX': 'A', '1001_DFA_DIS_XX': 'D:N'}
    """
    if not os.path.isfile(path):
        raise CremaDPrepError(f"label_source perceived needs the ratings file, which is missing: {path}")
    votes = {}
    for row in read_csv_rows(path, ("FileName", "VoiceVote")):
        clip = os.path.splitext(row["FileName"])[0]
        if not clip:
            continue
        if clip in votes:
            raise CremaDPrepError(f"{path}: {clip} has two rows")
        votes[clip] = row["VoiceVote"].upper()
    return votes


def perceived_label(vote, clip, source):
    """The native label of a ``VoiceVote`` (None on a tie or an empty vote); an unknown letter
    is an error naming ``source`` and the clip.

    Example
    -------
    >>> perceived_label("A", "1001_DFA_ANG_XX", "summaryTable.csv"), perceived_label("A:N", "x", "s")
    ('anger', None)
    """
    if not vote or ":" in vote:
        return None
    if vote not in VOTES:
        raise CremaDPrepError(f"{source}: {clip} has the VoiceVote {vote!r}, not one of {', '.join(VOTES)}")
    return VOTES[vote]


def read_genders(path):
    """``{actor id: "M" or "F"}`` from ``VideoDemographics.csv``; ``{}`` when the file is
    absent. Other ``Sex`` values give no gender.

    Example
    -------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> read_genders(os.path.join(folder, "VideoDemographics.csv"))
    {}
    >>> _ = open(os.path.join(folder, "VideoDemographics.csv"), "w").write(
    ...     "ActorID,Age,Sex,Race,Ethnicity\\n1001,51,Male,Caucasian,Not Hispanic\\n"
    ...     "1002,21,Female,Caucasian,Not Hispanic\\n")
    >>> read_genders(os.path.join(folder, "VideoDemographics.csv"))
    {'1001': 'M', '1002': 'F'}
    """
    if not os.path.isfile(path):
        return {}
    genders = {}
    for row in read_csv_rows(path, ("ActorID", "Sex")):
        gender = {"male": "M", "female": "F"}.get(row["Sex"].lower())
        if row["ActorID"] and gender:
            genders[row["ActorID"]] = gender
    return genders


def find_audio_files(data_folder):
    """Every CREMA-D clip name in ``<data_folder>/AudioWAV`` (else in ``data_folder``
    itself) -> its path relative to ``data_folder``.

    Example
    -------
    >>> import tempfile
    >>> find_audio_files(tempfile.mkdtemp())
    {}
    """
    return prepare_common.list_audio_files(data_folder, AUDIO_FOLDER, FILE_PATTERN, CremaDPrepError)


def prepare_cremad(data_folder, save_folder, label_source="intended", n_folds=5, skip_prep=False,
                   expect_full_corpus=None):
    """Writes one manifest per actor and ``corpus.json``; returns ``{actor: path}``.

    Arguments
    ---------
    data_folder : str
        The CREMA-D folder (``AudioWAV/``, and ``processedResults/summaryTable.csv`` for the
        perceived labels, ``VideoDemographics.csv`` for the genders).
    save_folder : str
    label_source : str
        ``intended`` (the file name's emotion) or ``perceived`` (the audio-only raters' majority).
    n_folds : int
        Speaker-independent folds of the default protocol.
    skip_prep : bool
        Do nothing (the manifests are assumed ready).
    expect_full_corpus : bool or None
        Whether the counts must be the full release's; None decides from the tree (all 91
        actors present).

    Example
    -------
    >>> import contextlib, io, json, os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "AudioWAV"))
    >>> for name in ("1001_DFA_ANG_XX", "1001_IEO_SAD_HI", "1002_DFA_ANG_XX"):
    ...     soundfile.write(os.path.join(root, "AudioWAV", name + ".wav"), numpy.zeros(1600), 16000)
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     paths = prepare_cremad(root, os.path.join(root, "manifests"), n_folds=2)
    >>> entry = json.load(open(paths["1001"]))["1001_IEO_SAD_HI"]
    >>> sorted(paths), entry["emo"], entry["intensity"], entry["duration"], entry["transcript"]
    (['1001', '1002'], 'sad', 'high', 0.1, "It's eleven o'clock.")
    """
    if skip_prep:
        logger.info("skip_prep: CREMA-D manifests are not prepared")
        return None
    if label_source not in LABEL_SOURCES:
        raise CremaDPrepError(f"label_source must be intended or perceived, got {label_source!r}")
    try:
        n_folds = int(n_folds)
    except (TypeError, ValueError):
        raise CremaDPrepError(f"n_folds must be a whole number, got {n_folds!r}") from None
    if n_folds < 2:
        raise CremaDPrepError(f"n_folds must be at least 2, got {n_folds}")
    if not os.path.isdir(data_folder):
        raise CremaDPrepError(f"CREMA-D data folder does not exist: {data_folder}")
    options = {"data_folder": os.path.abspath(data_folder), "label_source": label_source, "n_folds": n_folds,
               "corpus_format": 1}
    current = current_prepared_corpus(save_folder, options)
    if current:
        return current
    ratings_path = os.path.join(data_folder, RATINGS_FILE)
    votes = read_voice_votes(ratings_path) if label_source == "perceived" else None
    genders = read_genders(os.path.join(data_folder, DEMOGRAPHICS_FILE))
    files = find_audio_files(data_folder)
    manifests, dropped, intended_counts, actors = {}, Counter(), Counter(), set()
    for name, relative in tqdm(sorted(files.items()), desc="CREMA-D files", unit="file"):
        fields = parse_file_name(name)
        clip = name[:-len(".wav")]
        intended_counts[fields["emo"]] += 1
        actors.add(fields["speaker"])
        if clip in KNOWN_SILENT:
            dropped["no audio (known broken clip)"] += 1
            continue
        emo = fields.pop("emo")
        if votes is not None:
            if clip not in votes:
                dropped["no rating in summaryTable.csv"] += 1
                continue
            perceived = perceived_label(votes[clip], clip, ratings_path)
            if perceived is None:
                dropped["no voice majority"] += 1
                continue
        n_samples, sample_rate = prepare_common.read_wav_header(os.path.join(data_folder, relative), CremaDPrepError)
        group = fields["speaker"]
        gender = {"gender": genders[group]} if group in genders else {}
        manifests.setdefault(group, {})[clip] = {
            "wav": "{data_root}/" + relative.replace(os.sep, "/"), "duration": round(n_samples / sample_rate, 3),
            "emo": emo if votes is None else perceived, "emo_intended": emo, "intensity": fields["intensity"],
            "speaker": group, **gender, "transcript": fields["transcript"], "sentence": fields["sentence"],
            "group": group,
        }
    if not manifests:
        raise CremaDPrepError(f"no CREMA-D clip left ({{actor}}_{{sentence}}_{{emotion}}_{{level}}.wav) under "
                              f"{os.path.join(data_folder, AUDIO_FOLDER)}"
                              + (f" (dropped: {dict(dropped)})" if dropped else ""))
    manifests = dict(sorted(manifests.items()))
    if len(manifests) < n_folds:
        logger.warning("CREMA-D: %d actors prepared, fewer than the %d speaker folds of the default protocol "
                       "(lower --n_folds)", len(manifests), n_folds)
    if expect_full_corpus or (expect_full_corpus is None and len(actors) == N_ACTORS):
        check_known_counts("CREMA-D", intended_counts, FULL_CORPUS_COUNTS)
    else:
        logger.info("CREMA-D: %d actors: not the full release, counts not checked", len(actors))
    found = Counter(entry["emo"] for entries in manifests.values() for entry in entries.values())
    labels = [label for label in EMOTIONS.values() if label in found]
    description = corpus_description(
        f"CREMA-D ({label_source} labels)", labels, {group: f"{group}.json" for group in manifests},
        {"name": "speaker_folds", "folds": n_folds}, "speaker", text_carries_emotion=False,
    )
    return finish_preparation(save_folder, manifests, description, options, dropped, CremaDPrepError)


def main(argv=None):
    """CREMA-D command line (``argv`` defaults to ``sys.argv[1:]``).

    Example
    -------
    >>> run_script(main, "cremad_prepare.py", ["--data_folder", "/no/such", "--save_folder", "/tmp/x"])
    2
    """
    parser = prepare_common.prepare_argument_parser(
        "Write CREMA-D manifests (one per actor) and corpus.json.",
        data_folder_help="the CREMA-D folder (AudioWAV/*.wav, processedResults/summaryTable.csv)",
    )
    parser.add_argument("--label_source", choices=LABEL_SOURCES, default="intended",
                        help="the file name's emotion, or the audio-only raters' majority (ties dropped)")
    parser.add_argument("--n_folds", type=int, default=5, help="speaker-independent folds of the default protocol")
    args = parser.parse_args(argv)
    prepare_cremad(args.data_folder, args.save_folder, args.label_source, args.n_folds)


if __name__ == "__main__":
    sys.exit(run_script(main, "cremad_prepare.py"))
