r"""Prepares MSP-Podcast for emotion recognition: one manifest per official partition and a
``corpus.json`` (mmer_lobes.corpora).

MSP-Podcast (Lotfian & Busso, 2019, IEEE Trans. Affective Computing; academic licence from
UT Dallas, https://ecs.utdallas.edu/research/researchgroups/msp/MSP-Podcast.html) holds
podcast segments annotated by crowd workers with a consensus primary emotion and the
attributes arousal, valence and dominance (1-7 scales). The files read::

    <data_folder>/Labels/labels_consensus.csv   FileName,EmoClass,EmoAct,EmoVal,EmoDom,
                                                SpkrID,Gender,Split_Set (one row a segment)
    <data_folder>/Audios/<FileName>             16 kHz wav (only the header is read)
    <data_folder>/Transcripts/<stem>.txt        transcript, in the releases that have them

EmoClass is one letter: A anger, S sad, H happy, U surprise, F fear, D disgust, C contempt,
N neutral, O other, X no agreement. Entries keep the native emotion as a full word
(``sadness``, ``happiness``, ...); the ``X`` rows have no consensus label and are dropped
(counted as ``no agreement``). A label map in the experiment's YAML chooses the classes::

    {"MSP-PODCAST_0001_0008": {"wav": "{data_root}/Audios/MSP-PODCAST_0001_0008.wav",
        "duration": 4.27, "emo": "neutral", "arousal": 4.2, "valence": 4.0, "dominance": 4.6,
        "speaker": "127", "gender": "M", "transcript": "so that's what we did", "group": "Train"}}

``speaker`` is SpkrID as written (``Unknown`` where the corpus does not know it); ``gender``
is present only for ``Male``/``Female``. Without a ``Transcripts`` folder the entries have
no ``transcript`` and ``corpus.json`` lists the speech modality only; with one, a missing
transcript is an error.

The groups are the official partitions named in Split_Set (``Train``, ``Development``,
``Test1``, ``Test2``, ...; one manifest ``<partition>.json`` each), and the protocol is the
official one: train on Train, hold out Development, test on Test1. The releases differ in
size (segments are added from one version to the next), so the counts are not checked
against known totals; the printed table shows what was prepared.

Usage:
    python data_prep/msppodcast_prepare.py --data_folder <MSP-Podcast> \
        --save_folder results/manifests/msppodcast
"""
import logging
import os
import sys
from collections import Counter

from tqdm import tqdm

from data_prep import prepare_common
from data_prep.group_manifests import current_prepared_corpus, finish_preparation
from mmer_lobes.corpora import corpus_description
from mmer_lobes.errors import ProjectError, run_script

logger = logging.getLogger(__name__)

LABELS_FILE = os.path.join("Labels", "labels_consensus.csv")
AUDIO_FOLDER = "Audios"
TRANSCRIPT_FOLDER = "Transcripts"
REQUIRED_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
EMOTIONS = {"A": "anger", "S": "sadness", "H": "happiness", "U": "surprise", "F": "fear", "D": "disgust",
            "C": "contempt", "N": "neutral", "O": "other"}
NO_AGREEMENT = "X"
GENDERS = {"male": "M", "female": "F"}
ATTRIBUTES = {"arousal": "EmoAct", "valence": "EmoVal", "dominance": "EmoDom"}
# The partitions in their usual order; any other name found in Split_Set follows, sorted.
PARTITION_ORDER = ("Train", "Development", "Test1", "Test2", "Test3")
PROTOCOL = {"name": "official", "train": ["Train"], "holdout": ["Development"], "test": ["Test1"]}


class MspPodcastPrepError(ProjectError, ValueError):
    """The MSP-Podcast tree or its label file cannot be prepared."""


def parse_label_row(row, path, line):
    """The manifest fields of one ``labels_consensus.csv`` row, or None for a row without
    agreement (EmoClass ``X``); a bad value raises :class:`MspPodcastPrepError` naming the
    file and line.

    Example
    -------
    >>> row = {"FileName": "MSP-PODCAST_0001_0008.wav", "EmoClass": "S", "EmoAct": "2.4", "EmoVal": "3",
    ...        "EmoDom": "3.2", "SpkrID": "Unknown", "Gender": "Female", "Split_Set": "Test1"}
    >>> parse_label_row(row, "labels_consensus.csv", 2)
    {'emo': 'sadness', 'arousal': 2.4, 'valence': 3.0, 'dominance': 3.2, 'speaker': 'Unknown', 'gender': 'F'}
    >>> parse_label_row({**row, "EmoClass": "X"}, "labels_consensus.csv", 2) is None
    True
    """
    code = (row["EmoClass"] or "").strip().upper()
    if code == NO_AGREEMENT:
        return None
    if code not in EMOTIONS:
        raise MspPodcastPrepError(f"{path} line {line}: unknown EmoClass {row['EmoClass']!r} (MSP-Podcast's are "
                                  f"{', '.join([*EMOTIONS, NO_AGREEMENT])})")
    fields = {"emo": EMOTIONS[code]}
    for name, column in ATTRIBUTES.items():
        try:
            fields[name] = float(row[column])
        except (TypeError, ValueError):
            raise MspPodcastPrepError(f"{path} line {line}: {column} is not a number: {row[column]!r}") from None
    fields["speaker"] = (row["SpkrID"] or "").strip() or "Unknown"
    gender = GENDERS.get((row["Gender"] or "").strip().lower())
    if gender:
        fields["gender"] = gender
    return fields


def partition_order(partitions):
    """The partitions in their usual order (Train, Development, Test1, ...), others after, sorted.

    Example
    -------
    >>> partition_order({"Test2", "Train", "Test1", "Development", "Extra"})
    ['Train', 'Development', 'Test1', 'Test2', 'Extra']
    """
    known = [name for name in PARTITION_ORDER if name in partitions]
    return known + sorted(set(partitions) - set(known))


def read_transcript(path):
    """The stripped text of a transcript file (UTF-8); a missing or undecodable file raises
    :class:`MspPodcastPrepError` naming it.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "MSP-PODCAST_0001_0008.txt")
    >>> _ = open(path, "w").write("  so that's what we did\\n")
    >>> read_transcript(path)
    "so that's what we did"
    """
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        raise MspPodcastPrepError(f"missing transcript file: {path} (the release has a {TRANSCRIPT_FOLDER} "
                                  "folder, so every segment needs one)") from None
    except UnicodeDecodeError as err:
        raise MspPodcastPrepError(f"{path} is not UTF-8 text: {err}") from err
    except OSError as err:
        raise MspPodcastPrepError(f"cannot read the transcript file {path}: {err}") from err


def prepare_msppodcast(data_folder, save_folder, skip_prep=False):
    """Writes one manifest per official partition and ``corpus.json``; returns ``{partition: path}``.

    Arguments
    ---------
    data_folder : str
        The MSP-Podcast folder (``Labels/labels_consensus.csv``, ``Audios/``, optionally
        ``Transcripts/``).
    save_folder : str
    skip_prep : bool
        Do nothing (the manifests are assumed ready).

    Example
    -------
    >>> import contextlib, io, json, os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> for folder in ("Labels", "Audios"):
    ...     os.makedirs(os.path.join(root, folder))
    >>> lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    >>> for k, (emo, split) in enumerate([("A", "Train"), ("N", "Development"), ("H", "Test1"), ("X", "Test1")]):
    ...     soundfile.write(os.path.join(root, "Audios", f"MSP-PODCAST_0001_{k:04d}.wav"), numpy.zeros(8000), 16000)
    ...     lines.append(f"MSP-PODCAST_0001_{k:04d}.wav,{emo},4.0,3.5,4.5,12,Male,{split}")
    >>> _ = open(os.path.join(root, "Labels", "labels_consensus.csv"), "w").write("\\n".join(lines) + "\\n")
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     paths = prepare_msppodcast(root, os.path.join(root, "manifests"))
    >>> list(paths), json.load(open(paths["Test1"]))["MSP-PODCAST_0001_0002"]["emo"]
    (['Train', 'Development', 'Test1'], 'happiness')
    """
    if skip_prep:
        logger.info("skip_prep: MSP-Podcast manifests are not prepared")
        return None
    if not os.path.isdir(data_folder):
        raise MspPodcastPrepError(f"MSP-Podcast data folder does not exist: {data_folder}")
    labels_path = os.path.join(data_folder, LABELS_FILE)
    if not os.path.isfile(labels_path):
        raise MspPodcastPrepError(f"missing label file: {labels_path} (MSP-Podcast's {LABELS_FILE})")
    audio_folder = os.path.join(data_folder, AUDIO_FOLDER)
    if not os.path.isdir(audio_folder):
        raise MspPodcastPrepError(f"missing audio folder: {audio_folder} (MSP-Podcast's {AUDIO_FOLDER}/<FileName>)")
    transcript_folder = os.path.join(data_folder, TRANSCRIPT_FOLDER)
    has_transcripts = os.path.isdir(transcript_folder)
    options = {"data_folder": os.path.abspath(data_folder), "transcripts": has_transcripts, "corpus_format": 1}
    current = current_prepared_corpus(save_folder, options)
    if current:
        return current
    rows = prepare_common.read_csv_rows(labels_path, REQUIRED_COLUMNS, MspPodcastPrepError)
    manifests, dropped, seen = {}, Counter(), {}
    for line, row in tqdm(rows, desc="MSP-Podcast segments", unit="segment"):
        name = (row["FileName"] or "").strip()
        partition = (row["Split_Set"] or "").strip()
        if not name or not partition:
            raise MspPodcastPrepError(f"{labels_path} line {line}: empty FileName or Split_Set")
        if "/" in partition or os.sep in partition or partition.startswith("."):
            raise MspPodcastPrepError(f"{labels_path} line {line}: Split_Set {partition!r} cannot name a manifest file")
        utt_id = os.path.splitext(name)[0]
        if utt_id in seen:
            raise MspPodcastPrepError(f"{labels_path}: {name} is on lines {seen[utt_id]} and {line}")
        seen[utt_id] = line
        fields = parse_label_row(row, labels_path, line)
        if fields is None:
            dropped["no agreement"] += 1
            continue
        n_samples, sample_rate = prepare_common.read_wav_header(os.path.join(audio_folder, name),
                                                                MspPodcastPrepError)
        entry = {"wav": "{data_root}/" + AUDIO_FOLDER + "/" + name.replace(os.sep, "/"),
                 "duration": round(n_samples / sample_rate, 3), **fields}
        if has_transcripts:
            entry["transcript"] = read_transcript(os.path.join(transcript_folder, utt_id + ".txt"))
        entry["group"] = partition
        manifests.setdefault(partition, {})[utt_id] = entry
    missing = [split for key in ("train", "holdout", "test") for split in PROTOCOL[key] if split not in manifests]
    if missing:
        raise MspPodcastPrepError(
            f"{labels_path}: the official protocol needs the partitions {', '.join(missing)} (with labelled "
            f"segments); Split_Set holds {', '.join(partition_order(manifests)) or 'none'}")
    manifests = {partition: manifests[partition] for partition in partition_order(manifests)}
    found = Counter(entry["emo"] for entries in manifests.values() for entry in entries.values())
    labels = [label for label in EMOTIONS.values() if label in found]
    description = corpus_description(
        "MSP-Podcast", labels, {partition: f"{partition}.json" for partition in manifests}, PROTOCOL, "partition",
        modalities=["speech", "text"] if has_transcripts else ["speech"], text_carries_emotion=True,
    )
    return finish_preparation(save_folder, manifests, description, options, dropped, MspPodcastPrepError)


def main(argv=None):
    """MSP-Podcast command line (``argv`` defaults to ``sys.argv[1:]``).

    Example
    -------
    >>> run_script(main, "msppodcast_prepare.py", ["--data_folder", "/no/such", "--save_folder", "/tmp/x"])
    2
    """
    parser = prepare_common.prepare_argument_parser(
        "Write MSP-Podcast manifests (one per official partition) and corpus.json.",
        data_folder_help="the MSP-Podcast folder (Labels/labels_consensus.csv, Audios/, Transcripts/)",
    )
    args = parser.parse_args(argv)
    prepare_msppodcast(args.data_folder, args.save_folder)


if __name__ == "__main__":
    sys.exit(run_script(main, "msppodcast_prepare.py"))
