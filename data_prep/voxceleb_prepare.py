r"""Prepares VoxCeleb for speaker-recognition training: train / valid manifests and a trial list.

Reads a VoxCeleb folder laid out as ``wav/<speaker>/<video>/<nnnnn>.wav`` and
writes into a save folder:

    train.json, valid.json  one entry per utterance (or per segment, see
                            ``seg_dur``) of every speaker NOT in the trial list,
                            split per utterance within each speaker (seeded):
                            {"id10001--1zcIwhmdeo4--00001": {
                                "wav": "{data_root}/wav/id10001/1zcIwhmdeo4/00001.wav",
                                "duration": 8.12, "spk_id": "id10001"}}
    trials.txt              the verification list (``label enrol test``), every
                            path checked to exist
    test.json               every wav named in the trial list, keyed by its
                            relative path, so a recipe can embed them
    prepare_opts.json       the options; a second run with the same options skips

Trial speakers never enter train.json or valid.json, so a verification EER
is measured on unseen speakers. With ``seg_dur`` set, each file is cut into
``seg_dur``-second segments that cover it (the last one overlaps its
neighbour rather than being short) and each entry carries ``start`` and
``stop`` in samples.

VoxCeleb2 dev is distributed as AAC (``aac/<speaker>/<video>/<nnnnn>.m4a``).
This script reads wav headers only, so convert VoxCeleb2 once with ffmpeg
into the same layout. VoxCeleb1 speakers are ``id1xxxx`` and VoxCeleb2
speakers ``id0xxxx``, so both can share one ``wav/`` folder:

    cd /path/to/voxceleb2_dev
    find aac -name '*.m4a' | while read -r m4a; do
        wav="/path/to/voxceleb/wav/${m4a#aac/}"; wav="${wav%.m4a}.wav"
        mkdir -p "$(dirname "$wav")"
        ffmpeg -nostdin -loglevel error -i "$m4a" -ac 1 -ar 16000 "$wav"
    done

Usage:
    python data_prep/voxceleb_prepare.py \
        --data_folder /path/to/voxceleb --save_folder results/manifests/voxceleb \
        [--verification_pairs_file /path/to/veri_test2.txt] [--seg_dur 3.0] \
        [--split_ratio 90 10] [--seed 1234]

Without ``--verification_pairs_file``, ``<data_folder>/veri_test2.txt`` is
used when present. Bad input (a missing folder, m4a-only data, a corrupt wav,
a trial list naming a missing file) raises ``VoxcelebPrepError`` with a
message naming the file; the CLI prints it on one line, ``voxceleb_prepare.py:
error: <message>``, and exits with status 2 (:func:`mmer_lobes.errors.run_script`).
"""
import logging
import os
import random
import sys
from typing import NamedTuple, Optional

from tqdm import tqdm

from data_prep import prepare_common
from mmer_lobes.errors import ProjectError, run_script
from mmer_lobes.files import atomic_open, atomic_write_json

logger = logging.getLogger(__name__)

DEFAULT_TRIAL_LIST = "veri_test2.txt"
TRAIN_MANIFEST = "train.json"
VALID_MANIFEST = "valid.json"
TEST_MANIFEST = "test.json"
TRIALS_FILE = "trials.txt"
OPTIONS_FILE = prepare_common.OPTIONS_FILE

# Bumped when the manifest fields change, so old manifests are not reused.
MANIFEST_FORMAT_VERSION = 1

# How many missing trial files an error message lists before "and N more".
MAX_LISTED_MISSING = 5


class VoxcelebPrepError(ProjectError, ValueError):
    """The VoxCeleb tree cannot be turned into manifests; the message names the file."""


class Trial(NamedTuple):
    """One line of a verification list: 1 for a same-speaker pair, 0 otherwise."""

    label: int
    enrol: str
    test: str


def speaker_of(relative_path):
    """Speaker id of a path relative to ``wav/``.

    Example
    -------
    >>> speaker_of("id10001/1zcIwhmdeo4/00001.wav")
    'id10001'
    """
    return relative_path.split("/")[0]


def utterance_id(relative_path):
    """Manifest id of a wav path relative to ``wav/``: its parts joined by ``--``.

    Example
    -------
    >>> utterance_id("id10001/1zcIwhmdeo4/00001.wav")
    'id10001--1zcIwhmdeo4--00001'
    """
    return "--".join(os.path.splitext(relative_path)[0].split("/"))


def parse_trial_line(line) -> Optional[Trial]:
    """Parses one verification-list line ``label enrol_path test_path``; ``None`` for a blank line.

    Raises ``ValueError`` for a malformed line.

    Example
    -------
    >>> parse_trial_line("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav")
    Trial(label=1, enrol='id10270/x6uYqmx31kE/00001.wav', test='id10270/8jEAjG6SegY/00008.wav')
    >>> parse_trial_line("   ") is None
    True
    >>> parse_trial_line("yes a.wav b.wav")
    Traceback (most recent call last):
     ...
    ValueError: expected 'LABEL ENROL_PATH TEST_PATH' with LABEL 0 or 1 and paths <speaker>/<video>/<file>.wav
    """
    fields = line.split()
    if not fields:
        return None
    well_formed = (
        len(fields) == 3
        and fields[0] in ("0", "1")
        and all(len(path.split("/")) == 3 for path in fields[1:])
    )
    if not well_formed:
        raise ValueError(
            "expected 'LABEL ENROL_PATH TEST_PATH' with LABEL 0 or 1 and paths "
            "<speaker>/<video>/<file>.wav"
        )
    return Trial(int(fields[0]), fields[1], fields[2])


def segment_bounds(n_samples, segment_samples):
    """Cuts ``n_samples`` into segments of ``segment_samples`` that cover the whole file.

    The last segment ends at the end of the file and may overlap the one
    before, so every segment has the full length (unless the file is shorter).

    Example
    -------
    >>> segment_bounds(40000, 16000)
    [(0, 16000), (16000, 32000), (24000, 40000)]
    >>> segment_bounds(32000, 16000)
    [(0, 16000), (16000, 32000)]
    >>> segment_bounds(8000, 16000)
    [(0, 8000)]
    """
    if n_samples <= segment_samples:
        return [(0, n_samples)]
    starts = list(range(0, n_samples - segment_samples + 1, segment_samples))
    if starts[-1] + segment_samples < n_samples:
        starts.append(n_samples - segment_samples)
    return [(start, start + segment_samples) for start in starts]


def split_utterances(utterance_ids, split_ratio=(90, 10), seed=1234):
    """Splits one speaker's utterances into train and valid, keeping at least one for train.

    Example
    -------
    >>> train, valid = split_utterances([f"u{i}" for i in range(10)], (90, 10), seed="1234-id10001")
    >>> len(train), len(valid)
    (9, 1)
    >>> split_utterances(["u0"], (90, 10))
    (['u0'], [])
    """
    train_share, valid_share = split_ratio
    shuffled = sorted(utterance_ids)
    random.Random(seed).shuffle(shuffled)
    # Every speaker keeps a training utterance: valid measures speaker-id
    # accuracy on speakers the classifier was trained on.
    n_valid = int(len(shuffled) * valid_share / (train_share + valid_share) + 0.5)
    n_valid = max(0, min(n_valid, len(shuffled) - 1))
    return sorted(shuffled[n_valid:]), sorted(shuffled[:n_valid])


def default_trial_list(data_folder):
    """``<data_folder>/veri_test2.txt`` when it exists, else ``None``.

    Example
    -------
    >>> import tempfile
    >>> default_trial_list(tempfile.mkdtemp()) is None
    True
    """
    path = os.path.join(data_folder, DEFAULT_TRIAL_LIST)
    return path if os.path.isfile(path) else None


def find_wav_files(data_folder):
    """Relative paths (``<speaker>/<video>/<file>.wav``) of every wav under ``<data_folder>/wav``.

    Raises ``VoxcelebPrepError`` when the folder is missing, holds no wav, or
    holds only VoxCeleb2 ``.m4a`` files (which must be converted first).

    Example
    -------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "wav", "id10001", "vid"))
    >>> _ = open(os.path.join(root, "wav", "id10001", "vid", "00001.wav"), "wb")
    >>> find_wav_files(root)
    ['id10001/vid/00001.wav']
    """
    if not os.path.isdir(data_folder):
        raise VoxcelebPrepError(f"VoxCeleb data folder does not exist: {data_folder}")
    wav_folder = os.path.join(data_folder, "wav")
    m4a_error = (
        f"found only .m4a files under {data_folder} (VoxCeleb2 is distributed as AAC): "
        "convert them to wav/<speaker>/<video>/<nnnnn>.wav with ffmpeg first, as the "
        "docstring of data_prep/voxceleb_prepare.py shows"
    )
    if not os.path.isdir(wav_folder):
        if _contains_m4a(data_folder):
            raise VoxcelebPrepError(m4a_error)
        raise VoxcelebPrepError(
            f"{data_folder} is not a VoxCeleb folder: it has no wav/ folder "
            "(expected wav/<speaker>/<video>/<nnnnn>.wav)"
        )
    relative_paths = [
        f"{speaker}/{video}/{name}"
        for speaker in _sorted_subfolders(wav_folder)
        for video in _sorted_subfolders(os.path.join(wav_folder, speaker))
        for name in sorted(os.listdir(os.path.join(wav_folder, speaker, video)))
        if name.endswith(".wav") and not name.startswith(".")
    ]
    if not relative_paths:
        if _contains_m4a(wav_folder):
            raise VoxcelebPrepError(m4a_error)
        raise VoxcelebPrepError(
            f"no .wav files in {wav_folder} (expected wav/<speaker>/<video>/<nnnnn>.wav)"
        )
    return relative_paths


def read_trial_list(path, wav_folder):
    """Reads a verification list and checks that every wav it names exists under ``wav_folder``.

    Raises ``VoxcelebPrepError`` naming the file and line of a malformed line,
    or the missing wav files.

    Example
    -------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "id1", "v"))
    >>> for name in ("1.wav", "2.wav"):
    ...     _ = open(os.path.join(root, "id1", "v", name), "wb")
    >>> trials = os.path.join(root, "trials.txt")
    >>> _ = open(trials, "w").write("1 id1/v/1.wav id1/v/2.wav\\n")
    >>> read_trial_list(trials, root)
    [Trial(label=1, enrol='id1/v/1.wav', test='id1/v/2.wav')]
    """
    if not os.path.isfile(path):
        raise VoxcelebPrepError(f"verification pairs file does not exist: {path}")
    trials = []
    missing = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                trial = parse_trial_line(line)
            except ValueError as err:
                raise VoxcelebPrepError(f"{path}, line {line_number}: {err}: {line.strip()!r}") from err
            if trial is None:
                continue
            for relative_path in (trial.enrol, trial.test):
                full_path = os.path.join(wav_folder, *relative_path.split("/"))
                if relative_path not in missing and not os.path.isfile(full_path):
                    missing[relative_path] = (line_number, full_path)
            trials.append(trial)
    if missing:
        listed = [f"line {line}: {full}" for line, full in list(missing.values())[:MAX_LISTED_MISSING]]
        more = len(missing) - len(listed)
        raise VoxcelebPrepError(
            f"trial list {path} names {len(missing)} missing wav file(s): "
            + "; ".join(listed)
            + (f"; and {more} more" if more else "")
        )
    if not trials:
        raise VoxcelebPrepError(f"trial list {path} holds no trials")
    return trials


def wav_info(path):
    """``(n_samples, sample_rate)`` of a wav, read from its header; errors are ``VoxcelebPrepError``.

    See ``prepare_common.read_wav_header``: a missing, unreadable or empty
    file raises, naming the file.

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> soundfile.write(os.path.join(root, "00001.wav"), numpy.zeros(4000), 8000)
    >>> wav_info(os.path.join(root, "00001.wav"))
    (4000, 8000)
    """
    return prepare_common.read_wav_header(path, VoxcelebPrepError)


def file_entries(wav_folder, relative_path, seg_dur=None):
    """Manifest entries of one training wav: the whole file, or its ``seg_dur`` segments.

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "id1", "v"))
    >>> soundfile.write(os.path.join(root, "id1", "v", "00001.wav"), numpy.zeros(24000), 16000)
    >>> file_entries(root, "id1/v/00001.wav")
    {'id1--v--00001': {'wav': '{data_root}/wav/id1/v/00001.wav', 'duration': 1.5, 'spk_id': 'id1'}}
    >>> sorted(file_entries(root, "id1/v/00001.wav", seg_dur=1.0))
    ['id1--v--00001--0_16000', 'id1--v--00001--8000_24000']
    """
    n_samples, sample_rate = wav_info(os.path.join(wav_folder, *relative_path.split("/")))
    wav = "{data_root}/wav/" + relative_path
    speaker = speaker_of(relative_path)
    file_id = utterance_id(relative_path)
    if seg_dur is None:
        return {file_id: {"wav": wav, "duration": round(n_samples / sample_rate, 4), "spk_id": speaker}}
    segment_samples = max(1, int(round(seg_dur * sample_rate)))
    return {
        f"{file_id}--{start}_{stop}": {
            "wav": wav,
            "duration": round((stop - start) / sample_rate, 4),
            "spk_id": speaker,
            "start": start,
            "stop": stop,
        }
        for start, stop in segment_bounds(n_samples, segment_samples)
    }


def prepare_voxceleb(
    data_folder,
    save_folder,
    verification_pairs_file=None,
    split_ratio=(90, 10),
    seg_dur=None,
    skip_prep=False,
    seed=1234,
):
    r"""Writes ``train.json``, ``valid.json`` and, with a trial list, ``trials.txt`` and ``test.json``.

    Arguments
    ---------
    data_folder : str
        VoxCeleb folder holding ``wav/<speaker>/<video>/<nnnnn>.wav``.
    save_folder : str
        Where the manifests and ``prepare_opts.json`` are written.
    verification_pairs_file : str or None
        Trial list (``label enrol test``, paths relative to ``wav/``). ``None``
        uses ``<data_folder>/veri_test2.txt`` when present, else no trial list
        (every speaker is then a training speaker).
    split_ratio : pair of numbers
        Train / valid shares of each training speaker's utterances.
    seg_dur : float or None
        If set, cut each training file into segments of this many seconds.
    skip_prep : bool
        If True, do nothing (the manifests are assumed ready).
    seed : int
        Seed of the train / valid split.

    Returns
    -------
    dict
        Output name (``train``, ``valid``, ``trials``, ``test``) -> path.

    Example
    -------
    >>> import contextlib, io, json, os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> for spk, video, name in [("id10001", "a", "00001"), ("id10001", "a", "00002"),
    ...                          ("id10270", "b", "00001"), ("id10270", "c", "00001")]:
    ...     os.makedirs(os.path.join(root, "wav", spk, video), exist_ok=True)
    ...     soundfile.write(os.path.join(root, "wav", spk, video, name + ".wav"), numpy.zeros(16000), 16000)
    >>> _ = open(os.path.join(root, "veri_test2.txt"), "w").write(
    ...     "1 id10270/b/00001.wav id10270/c/00001.wav\n")
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     paths = prepare_voxceleb(root, os.path.join(root, "manifests"))
    >>> sorted(json.load(open(paths["train"])))
    ['id10001--a--00001', 'id10001--a--00002']
    >>> sorted(json.load(open(paths["test"])))
    ['id10270/b/00001.wav', 'id10270/c/00001.wav']
    """
    output_paths = {
        "train": os.path.join(save_folder, TRAIN_MANIFEST),
        "valid": os.path.join(save_folder, VALID_MANIFEST),
    }
    if verification_pairs_file is None:
        verification_pairs_file = default_trial_list(data_folder)
    if verification_pairs_file is not None:
        output_paths["trials"] = os.path.join(save_folder, TRIALS_FILE)
        output_paths["test"] = os.path.join(save_folder, TEST_MANIFEST)
    if skip_prep:
        logger.info("skip_prep: VoxCeleb manifests are not prepared")
        return output_paths
    split_ratio = _checked_split_ratio(split_ratio)
    if seg_dur is not None and not (isinstance(seg_dur, (int, float)) and seg_dur > 0):
        raise VoxcelebPrepError(f"seg_dur must be a positive number of seconds, got {seg_dur!r}")
    options = {
        "data_folder": os.path.abspath(data_folder),
        "verification_pairs_file": (
            None if verification_pairs_file is None else os.path.abspath(verification_pairs_file)
        ),
        "split_ratio": list(split_ratio),
        "seg_dur": seg_dur,
        "seed": seed,
        "manifest_format": MANIFEST_FORMAT_VERSION,
    }
    options_path = os.path.join(save_folder, OPTIONS_FILE)
    if prepare_common.preparation_is_done(options_path, output_paths.values(), options):
        message = f"VoxCeleb manifests in {save_folder} are up to date (same options): skipping preparation"
        logger.info(message)
        print(message)
        return output_paths

    # Everything is read and checked before anything is written, so bad input
    # leaves the save folder as it was.
    wav_folder = os.path.join(data_folder, "wav")
    relative_paths = find_wav_files(data_folder)
    trials = []
    if verification_pairs_file is None:
        logger.warning(
            "no verification pairs file (and no %s in %s): every speaker is a training "
            "speaker and no trials.txt / test.json are written",
            DEFAULT_TRIAL_LIST,
            data_folder,
        )
    else:
        trials = read_trial_list(verification_pairs_file, wav_folder)
    trial_paths = sorted({path for trial in trials for path in (trial.enrol, trial.test)})
    trial_speakers = {speaker_of(path) for path in trial_paths}

    files_of_speaker = {}
    for relative_path in relative_paths:
        speaker = speaker_of(relative_path)
        if speaker not in trial_speakers:
            files_of_speaker.setdefault(speaker, []).append(relative_path)
    if not files_of_speaker:
        raise VoxcelebPrepError(
            f"every speaker under {wav_folder} appears in the trial list "
            f"{verification_pairs_file}: no speaker is left for training"
        )

    train, valid = {}, {}
    n_train_files = n_valid_files = 0
    for speaker in tqdm(sorted(files_of_speaker), desc="VoxCeleb speakers", unit="speaker"):
        # A seed per speaker keeps each speaker's split independent of which other speakers exist.
        train_files, valid_files = split_utterances(
            files_of_speaker[speaker], split_ratio, seed=f"{seed}-{speaker}"
        )
        n_train_files += len(train_files)
        n_valid_files += len(valid_files)
        for relative_path in train_files:
            train.update(file_entries(wav_folder, relative_path, seg_dur))
        for relative_path in valid_files:
            valid.update(file_entries(wav_folder, relative_path, seg_dur))

    test = {}
    for relative_path in tqdm(trial_paths, desc="VoxCeleb trial wavs", unit="wav", disable=not trial_paths):
        n_samples, sample_rate = wav_info(os.path.join(wav_folder, *relative_path.split("/")))
        test[relative_path] = {
            "wav": "{data_root}/wav/" + relative_path,
            "duration": round(n_samples / sample_rate, 4),
            "spk_id": speaker_of(relative_path),
        }

    manifest_speakers = {entry["spk_id"] for entry in list(train.values()) + list(valid.values())}
    leaked = manifest_speakers & trial_speakers
    if leaked:
        raise AssertionError(f"trial speakers in train/valid manifests: {sorted(leaked)}")

    _write_outputs(save_folder, options_path, output_paths, train, valid, trials, test, options)
    summary = (
        f"VoxCeleb -> {save_folder}\n"
        f"  training speakers: {len(files_of_speaker)}\n"
        f"  train: {n_train_files} files, {len(train)} entries\n"
        f"  valid: {n_valid_files} files, {len(valid)} entries\n"
        f"  trials: {len(trials)} pairs on {len(test)} wavs from {len(trial_speakers)} speakers"
        + (" (excluded from train/valid)" if trials else "")
    )
    logger.info("%s", summary)
    print(summary)
    return output_paths


def _contains_m4a(folder):
    """True when any ``.m4a`` file lies under ``folder`` (stops at the first one)."""
    for _, _, names in os.walk(folder):
        if any(name.endswith(".m4a") for name in names):
            return True
    return False


def _sorted_subfolders(folder):
    """Names of the visible sub-folders of ``folder``, sorted."""
    return sorted(
        entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")
    )


def _checked_split_ratio(split_ratio):
    """``(train, valid)`` shares as floats, or an error."""
    try:
        train_share, valid_share = (float(share) for share in split_ratio)
    except (TypeError, ValueError):
        raise VoxcelebPrepError(
            f"split_ratio must be two numbers (train, valid), got {split_ratio!r}"
        ) from None
    if train_share <= 0 or valid_share < 0:
        raise VoxcelebPrepError(
            f"split_ratio needs a positive train share and a non-negative valid share, got {split_ratio!r}"
        )
    return train_share, valid_share


def _write_outputs(save_folder, options_path, output_paths, train, valid, trials, test, options):
    """Writes every output atomically, then the options file that marks the work done."""

    def write_outputs():
        atomic_write_json(output_paths["train"], train)
        atomic_write_json(output_paths["valid"], valid)
        if "trials" in output_paths:
            with atomic_open(output_paths["trials"]) as handle:
                for trial in trials:
                    handle.write(f"{trial.label} {trial.enrol} {trial.test}\n")
            atomic_write_json(output_paths["test"], test)
        else:
            # Without a trial list, trials from an earlier run no longer describe the manifests.
            for name in (TRIALS_FILE, TEST_MANIFEST):
                stale = os.path.join(save_folder, name)
                if os.path.exists(stale):
                    os.remove(stale)

    prepare_common.write_outputs_then_options(
        save_folder, options_path, options, write_outputs, VoxcelebPrepError
    )


def main(argv=None):
    """VoxCeleb command line (``argv`` defaults to ``sys.argv[1:]``); bad input raises
    :class:`VoxcelebPrepError`, which :func:`~mmer_lobes.errors.run_script` reports.

    Example
    -------
    >>> main(["--data_folder", "/no/such/voxceleb", "--save_folder", "/tmp/x"])
    Traceback (most recent call last):
      ...
    data_prep.voxceleb_prepare.VoxcelebPrepError: VoxCeleb data folder does not exist: /no/such/voxceleb
    >>> run_script(main, "voxceleb_prepare.py", ["--data_folder", "/no/such", "--save_folder", "/tmp/x"])
    2
    """
    parser = prepare_common.prepare_argument_parser(
        "Write VoxCeleb train/valid manifests and a checked trial list.",
        data_folder_help="VoxCeleb folder holding wav/",
    )
    parser.add_argument(
        "--verification_pairs_file",
        default=None,
        help=f"trial list (default: <data_folder>/{DEFAULT_TRIAL_LIST} if present)",
    )
    parser.add_argument(
        "--seg_dur", type=float, default=None, help="cut training files into segments of this many seconds"
    )
    parser.add_argument(
        "--split_ratio", type=float, nargs=2, default=[90, 10], metavar=("TRAIN", "VALID"),
        help="train / valid shares of each speaker's utterances",
    )
    parser.add_argument("--seed", type=int, default=1234, help="seed of the train / valid split")

    args = parser.parse_args(argv)
    prepare_voxceleb(
        args.data_folder,
        args.save_folder,
        verification_pairs_file=args.verification_pairs_file,
        split_ratio=args.split_ratio,
        seg_dur=args.seg_dur,
        seed=args.seed,
    )


if __name__ == "__main__":
    sys.exit(run_script(main, "voxceleb_prepare.py"))
