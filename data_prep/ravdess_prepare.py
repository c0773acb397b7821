r"""Prepares RAVDESS (speech and/or song) for emotion recognition: one manifest per group of
actors and a ``corpus.json`` (mmer_lobes.corpora).

RAVDESS (Livingstone & Russo, 2018; CC BY-NC-SA 4.0, https://zenodo.org/records/1188976)
names every file ``MM-VV-EE-II-SS-RR-AA.wav``: modality (03 audio only), vocal channel (01
speech, 02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful,
07 disgust, 08 surprised), intensity (01 normal, 02 strong), statement (01 "Kids are talking
by the door", 02 "Dogs are sitting by the door"), repetition and actor (01-24; odd actors
are male). The files are found anywhere under the data folder (the release's ``Actor_XX``
folders, or ``Audio_Speech_Actors_01-24/Actor_XX``), so both zip layouts work.

Entries keep the native emotion names; a label map in the experiment's YAML chooses the
classes (``hparams/ravdess.yaml`` maps to ang/hap/neu/sad)::

    {"03-01-05-02-01-01-12": {"wav": "{data_root}/Actor_12/03-01-05-02-01-01-12.wav",
        "duration": 3.7, "emo": "angry", "intensity": "strong", "speaker": "actor12",
        "gender": "F", "transcript": "Kids are talking by the door", "vocal_channel": "speech",
        "group": "actors09-12"}}

The release is 48 kHz; the recipes resample on reading (mmer_lobes.audio.load_audio). The
groups are consecutive actors (``actors_per_group``, 4 by default: six groups, the common
speaker-independent protocol), left out one at a time. The text is one of two fixed
statements read in every emotion, so ``corpus.json`` marks it as carrying no emotion and the
text branch refuses it.

On the full release the counts are checked: speech 1,440 files (neutral 96, the other seven
192 each), song 1,012 (actor 18 has none; neutral 92, calm/happy/sad/angry/fearful 184).

Usage:
    python data_prep/ravdess_prepare.py --data_folder <RAVDESS> --save_folder results/manifests/ravdess \
        [--vocal_channel speech|song|both] [--actors_per_group 4]
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

FILE_PATTERN = re.compile(r"^03-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(0[1-9]|1\d|2[0-4])\.wav$")
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgust", "08": "surprised"}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
N_ACTORS = 24
# The actors of each vocal channel in the full release: actor 18 sang nothing.
FULL_CORPUS_ACTORS = {"speech": N_ACTORS, "song": N_ACTORS - 1}
# The full release's counts per vocal channel.
FULL_CORPUS_COUNTS = {
    "speech": {"neutral": 96, **{EMOTIONS[code]: 192 for code in ("02", "03", "04", "05", "06", "07", "08")}},
    "song": {"neutral": 92, **{EMOTIONS[code]: 184 for code in ("02", "03", "04", "05", "06")}},
}


class RavdessPrepError(ProjectError, ValueError):
    """The RAVDESS tree or the options cannot be prepared."""


def parse_file_name(name):
    """The fields of a RAVDESS audio file name, or None for any other file.

    Example
    -------
    >>> fields = parse_file_name("03-01-05-02-01-01-12.wav")
    >>> fields["emo"], fields["intensity"], fields["speaker"], fields["gender"], fields["transcript"]
    ('angry', 'strong', 'actor12', 'F', 'Kids are talking by the door')
    >>> parse_file_name("01-01-05-02-01-01-12.mp4") is None
    True
    """
    match = FILE_PATTERN.match(name)
    if not match:
        return None
    channel, emotion, intensity, statement, repetition, actor = match.groups()
    return {"emo": EMOTIONS[emotion], "intensity": INTENSITIES[intensity], "speaker": f"actor{actor}",
            "actor": int(actor), "gender": "M" if int(actor) % 2 else "F", "transcript": STATEMENTS[statement],
            "repetition": int(repetition), "vocal_channel": VOCAL_CHANNELS[channel]}


def actor_group(actor, actors_per_group):
    """The group of consecutive actors that ``actor`` belongs to.

    Example
    -------
    >>> actor_group(1, 4), actor_group(12, 4), actor_group(24, 5)
    ('actors01-04', 'actors09-12', 'actors21-24')
    """
    first = (actor - 1) // actors_per_group * actors_per_group + 1
    return f"actors{first:02d}-{min(first + actors_per_group - 1, N_ACTORS):02d}"


def find_audio_files(data_folder):
    """Every RAVDESS audio file name under ``data_folder`` -> its path relative to it; two
    files of one name (two copies of the corpus in one tree) are an error.

    Example
    -------
    >>> import tempfile
    >>> find_audio_files(tempfile.mkdtemp())
    {}
    """
    found = {}
    for root, dirs, files in os.walk(data_folder):
        dirs.sort()
        for name in sorted(files):
            if FILE_PATTERN.match(name):
                relative = os.path.relpath(os.path.join(root, name), data_folder)
                if name in found:
                    raise RavdessPrepError(f"{name} is in {data_folder} twice: {found[name]} and {relative}; "
                                           "point --data_folder at one copy of the corpus")
                found[name] = relative
    return found


def prepare_ravdess(data_folder, save_folder, vocal_channel="speech", actors_per_group=4, skip_prep=False,
                    expect_full_corpus=None):
    """Writes one manifest per actor group and ``corpus.json``; returns ``{group: path}``.

    Arguments
    ---------
    data_folder : str
        A folder holding the RAVDESS ``.wav`` files at any depth.
    save_folder : str
    vocal_channel : str
        ``speech``, ``song`` or ``both``.
    actors_per_group : int
        Consecutive actors per group (fold); 4 gives six groups.
    skip_prep : bool
        Do nothing (the manifests are assumed ready).
    expect_full_corpus : bool or None
        Whether the counts must be the full release's; None decides from the tree (all 24
        actors and every emotion of the vocal channel present).

    Example
    -------
    >>> import contextlib, io, json, os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> for actor in (1, 2, 5, 6):
    ...     os.makedirs(os.path.join(root, f"Actor_{actor:02d}"))
    ...     for emotion in ("01", "05"):
    ...         soundfile.write(os.path.join(root, f"Actor_{actor:02d}", f"03-01-{emotion}-01-01-01-{actor:02d}.wav"),
    ...                         numpy.zeros(4800), 48000)
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     paths = prepare_ravdess(root, os.path.join(root, "manifests"))
    >>> sorted(paths), json.load(open(paths["actors05-08"]))["03-01-05-01-01-01-06"]["duration"]
    (['actors01-04', 'actors05-08'], 0.1)
    """
    if skip_prep:
        logger.info("skip_prep: RAVDESS manifests are not prepared")
        return None
    if vocal_channel not in ("speech", "song", "both"):
        raise RavdessPrepError(f"vocal_channel must be speech, song or both, got {vocal_channel!r}")
    if not str(actors_per_group).isdigit() or int(actors_per_group) < 1:
        raise RavdessPrepError(f"actors_per_group must be a whole number of at least 1, got {actors_per_group!r}")
    actors_per_group = int(actors_per_group)
    if not os.path.isdir(data_folder):
        raise RavdessPrepError(f"RAVDESS data folder does not exist: {data_folder}")
    options = {"data_folder": os.path.abspath(data_folder), "vocal_channel": vocal_channel,
               "actors_per_group": actors_per_group, "corpus_format": 1}
    current = current_prepared_corpus(save_folder, options)
    if current:
        return current
    channels = ("speech", "song") if vocal_channel == "both" else (vocal_channel,)
    files = find_audio_files(data_folder)
    manifests, dropped = {}, Counter()
    for name, relative in tqdm(sorted(files.items()), desc="RAVDESS files", unit="file"):
        fields = parse_file_name(name)
        if fields["vocal_channel"] not in channels:
            dropped[f"{fields['vocal_channel']} (not prepared)"] += 1
            continue
        n_samples, sample_rate = prepare_common.read_wav_header(os.path.join(data_folder, relative), RavdessPrepError)
        group = actor_group(fields.pop("actor"), actors_per_group)
        manifests.setdefault(group, {})[name[:-len(".wav")]] = {
            "wav": "{data_root}/" + relative.replace(os.sep, "/"), "duration": round(n_samples / sample_rate, 3),
            **fields, "group": group,
        }
    if not manifests:
        raise RavdessPrepError(f"no RAVDESS {vocal_channel} file (03-0V-EE-II-SS-RR-AA.wav) under {data_folder}")
    manifests = dict(sorted(manifests.items()))
    found = Counter(entry["emo"] for entries in manifests.values() for entry in entries.values())
    expected = Counter()
    for channel in channels:
        expected.update(FULL_CORPUS_COUNTS[channel])
    actors = {entry["speaker"] for entries in manifests.values() for entry in entries.values()}
    full_actors = max(FULL_CORPUS_ACTORS[channel] for channel in channels)
    if expect_full_corpus or (expect_full_corpus is None and len(actors) == full_actors and set(found) == set(expected)):
        check_known_counts("RAVDESS", found, expected)
    else:
        logger.info("RAVDESS: %d actors and the emotions %s: not the full release, counts not checked",
                    len(actors), sorted(found))
    labels = [label for label in EMOTIONS.values() if label in found]
    description = corpus_description(
        f"RAVDESS {vocal_channel}", labels, {group: f"{group}.json" for group in manifests},
        {"name": "leave_one_group_out"}, "actor group", text_carries_emotion=False,
    )
    return finish_preparation(save_folder, manifests, description, options, dropped, RavdessPrepError)


def main(argv=None):
    """RAVDESS command line (``argv`` defaults to ``sys.argv[1:]``).

    Example
    -------
    >>> run_script(main, "ravdess_prepare.py", ["--data_folder", "/no/such", "--save_folder", "/tmp/x"])
    2
    """
    parser = prepare_common.prepare_argument_parser(
        "Write RAVDESS manifests (one per actor group) and corpus.json.",
        data_folder_help="a folder holding the RAVDESS audio files (Actor_XX/*.wav)",
    )
    parser.add_argument("--vocal_channel", choices=("speech", "song", "both"), default="speech")
    parser.add_argument("--actors_per_group", type=int, default=4, help="consecutive actors per fold")
    args = parser.parse_args(argv)
    prepare_ravdess(args.data_folder, args.save_folder, args.vocal_channel, args.actors_per_group)


if __name__ == "__main__":
    sys.exit(run_script(main, "ravdess_prepare.py"))
