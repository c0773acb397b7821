r"""Prepares the Berlin Database of Emotional Speech (EmoDB) for emotion recognition: one
manifest per speaker and a ``corpus.json`` (mmer_lobes.corpora).

EmoDB (Burkhardt et al., 2005, http://emodb.bilderbar.info/; free for research) holds 535
German utterances of ten actors (03, 10, 11, 12, 15 male; 08, 09, 13, 14, 16 female), each
reading ten sentences in seven emotions. Its ``wav`` folder names every file like
``03a01Fa.wav``: the speaker (2 digits), the text code (a01 a02 a04 a05 a07 b01 b02 b03 b09
b10), the emotion letter of its German name (W Ärger anger, L Langeweile boredom, E Ekel
disgust, A Angst fear, F Freude happiness, T Trauer sadness, N neutral) and a version letter
(a, b, c ...). The wavs are read from ``<data_folder>/wav`` or from the data folder itself.

Entries keep the native emotion names (in English); a label map in the experiment's YAML
chooses the classes::

    {"03a01Fa": {"wav": "{data_root}/wav/03a01Fa.wav", "duration": 1.898, "emo": "happiness",
        "speaker": "03", "gender": "M", "transcript": "Der Lappen liegt auf dem Eisschrank.",
        "language": "de", "sentence": "a01", "version": "a", "group": "03"}}

The release is 16 kHz. Every speaker is a group, left out one at a time. The ten sentences
are read in every emotion, so ``corpus.json`` marks the text as carrying no emotion and the
text branch refuses it.

On the full release (all ten speakers) the counts are checked: anger 127, boredom 81,
disgust 46, fear 69, happiness 71, sadness 62, neutral 79 (535 utterances).

Usage:
    python data_prep/emodb_prepare.py --data_folder <EmoDB> --save_folder results/manifests/emodb
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

AUDIO_FOLDER = "wav"
# Any name of this shape is an EmoDB utterance; an unknown code in it is an error, not a skip.
FILE_PATTERN = re.compile(r"^(\d{2})([a-z]\d{2})([A-Z])([a-z])\.wav$")
EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
            "N": "neutral"}
GENDERS = {"03": "M", "08": "F", "09": "F", "10": "M", "11": "M", "12": "M", "13": "F", "14": "F", "15": "M",
           "16": "F"}
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
FULL_CORPUS_COUNTS = {"anger": 127, "boredom": 81, "disgust": 46, "fear": 69, "happiness": 71, "sadness": 62,
                      "neutral": 79}


class EmoDBPrepError(ProjectError, ValueError):
    """The EmoDB tree or the options cannot be prepared."""


def parse_file_name(name):
    """The fields of an EmoDB audio file name, or None for any other file; an unknown
    speaker, text or emotion code in a name of the EmoDB shape is an error naming it.

    Example
    -------
    >>> fields = parse_file_name("03a01Fa.wav")
    >>> fields["emo"], fields["speaker"], fields["gender"], fields["sentence"], fields["version"]
    ('happiness', '03', 'M', 'a01', 'a')
    >>> fields["transcript"]
    'Der Lappen liegt auf dem Eisschrank.'
    >>> parse_file_name("03a01Fa.lab") is None
    True
    >>> parse_file_name("03a01Xa.wav")
    Traceback (most recent call last):
    ...
    data_prep.emodb_prepare.EmoDBPrepError: 03a01Xa.wav: unknown emotion code X (known: A, E, F, L, N, T, W)
    """
    match = FILE_PATTERN.match(name)
    if not match:
        return None
    speaker, sentence, emotion, version = match.groups()
    for code, table, what in ((speaker, GENDERS, "speaker"), (sentence, SENTENCES, "text"),
                              (emotion, EMOTIONS, "emotion")):
        if code not in table:
            raise EmoDBPrepError(f"{name}: unknown {what} code {code} (known: {', '.join(sorted(table))})")
    return {"emo": EMOTIONS[emotion], "speaker": speaker, "gender": GENDERS[speaker],
            "transcript": SENTENCES[sentence], "language": "de", "sentence": sentence, "version": version}


def find_audio_files(data_folder):
    """Every EmoDB utterance file name in ``<data_folder>/wav`` (else in ``data_folder``
    itself) -> its path relative to ``data_folder``.

    Example
    -------
    >>> import tempfile
    >>> find_audio_files(tempfile.mkdtemp())
    {}
    """
    return prepare_common.list_audio_files(data_folder, AUDIO_FOLDER, FILE_PATTERN, EmoDBPrepError)


def prepare_emodb(data_folder, save_folder, skip_prep=False, expect_full_corpus=None):
    """Writes one manifest per speaker and ``corpus.json``; returns ``{speaker: path}``.

    Arguments
    ---------
    data_folder : str
        The EmoDB folder (its ``wav/`` folder, or a folder holding the wavs themselves).
    save_folder : str
    skip_prep : bool
        Do nothing (the manifests are assumed ready).
    expect_full_corpus : bool or None
        Whether the counts must be the full release's; None decides from the tree (all ten
        speakers present).

    Example
    -------
    >>> import contextlib, io, json, os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "wav"))
    >>> for name in ("03a01Fa", "03a01Wb", "08b10Na"):
    ...     soundfile.write(os.path.join(root, "wav", name + ".wav"), numpy.zeros(1600), 16000)
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     paths = prepare_emodb(root, os.path.join(root, "manifests"))
    >>> entry = json.load(open(paths["08"]))["08b10Na"]
    >>> sorted(paths), entry["emo"], entry["gender"], entry["duration"], entry["wav"]
    (['03', '08'], 'neutral', 'F', 0.1, '{data_root}/wav/08b10Na.wav')
    """
    if skip_prep:
        logger.info("skip_prep: EmoDB manifests are not prepared")
        return None
    if not os.path.isdir(data_folder):
        raise EmoDBPrepError(f"EmoDB data folder does not exist: {data_folder}")
    options = {"data_folder": os.path.abspath(data_folder), "corpus_format": 1}
    current = current_prepared_corpus(save_folder, options)
    if current:
        return current
    files = find_audio_files(data_folder)
    manifests, dropped = {}, Counter()
    for name, relative in tqdm(sorted(files.items()), desc="EmoDB files", unit="file"):
        fields = parse_file_name(name)
        n_samples, sample_rate = prepare_common.read_wav_header(os.path.join(data_folder, relative), EmoDBPrepError)
        group = fields["speaker"]
        manifests.setdefault(group, {})[name[:-len(".wav")]] = {
            "wav": "{data_root}/" + relative.replace(os.sep, "/"), "duration": round(n_samples / sample_rate, 3),
            **fields, "group": group,
        }
    if not manifests:
        raise EmoDBPrepError(f"no EmoDB file (like 03a01Fa.wav) in {os.path.join(data_folder, AUDIO_FOLDER)} "
                             f"or {data_folder}")
    manifests = dict(sorted(manifests.items()))
    found = Counter(entry["emo"] for entries in manifests.values() for entry in entries.values())
    if expect_full_corpus or (expect_full_corpus is None and len(manifests) == len(GENDERS)):
        check_known_counts("EmoDB", found, FULL_CORPUS_COUNTS)
    else:
        logger.info("EmoDB: speakers %s: not the full release, counts not checked", sorted(manifests))
    labels = [label for label in EMOTIONS.values() if label in found]
    description = corpus_description(
        "EmoDB", labels, {group: f"{group}.json" for group in manifests}, {"name": "leave_one_group_out"},
        "speaker", text_carries_emotion=False, language="de",
    )
    return finish_preparation(save_folder, manifests, description, options, dropped, EmoDBPrepError)


def main(argv=None):
    """EmoDB command line (``argv`` defaults to ``sys.argv[1:]``).

    Example
    -------
    >>> run_script(main, "emodb_prepare.py", ["--data_folder", "/no/such", "--save_folder", "/tmp/x"])
    2
    """
    parser = prepare_common.prepare_argument_parser(
        "Write EmoDB manifests (one per speaker) and corpus.json.",
        data_folder_help="the EmoDB folder (wav/03a01Fa.wav ...)",
    )
    args = parser.parse_args(argv)
    prepare_emodb(args.data_folder, args.save_folder)


if __name__ == "__main__":
    sys.exit(run_script(main, "emodb_prepare.py"))
