r"""Prepares MELD for emotion recognition: one manifest per official partition (train, dev,
test) and a ``corpus.json`` (mmer_lobes.corpora).

MELD, the Multimodal EmotionLines Dataset (Poria et al., 2019, ACL; GPL-3.0,
https://github.com/declare-lab/MELD), holds 13,708 utterances of dialogues from the TV
series Friends, each labelled with one of seven emotions (neutral, joy, surprise, anger,
sadness, disgust, fear) and a sentiment (neutral, positive, negative). The files read::

    <data_folder>/train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv
        Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,
        StartTime,EndTime (UTF-8; or in <data_folder>/data/MELD/, a clone of the repository)
    <data_folder>/train_splits/dia{D}_utt{U}.mp4                 the raw release's clips
    <data_folder>/dev_splits_complete/dia{D}_utt{U}.mp4          (MELD.Raw.tar.gz: train.tar.gz,
    <data_folder>/output_repeated_splits_test/dia{D}_utt{U}.mp4   dev.tar.gz, test.tar.gz)

The clips are used when their three folders are there (``audio="auto"``; ``"yes"`` requires
them, ``"no"`` prepares the text only). Each clip is decoded once, with ffmpeg (the
``ffmpeg`` on the PATH, else the one of the ``imageio-ffmpeg`` package), to a 16 kHz mono
16-bit wav under ``<save_folder>/wav/<split>/``; a rerun (after a kill, say) decodes only
the wavs not there yet. A clip that is missing or fails to decode (the release has a few
broken ones) is dropped, counted per partition and named in a warning; a partition none of
whose clips can be used is an error (a wrong folder, most likely). Entries keep the
native emotion; a label map in the experiment's YAML chooses the classes::

    {"dev_dia0_utt1": {"wav": "/abs/save_folder/wav/dev/dia0_utt1.wav", "duration": 1.335,
        "emo": "surprise", "sentiment": "negative", "speaker": "Monica", "transcript": "What?",
        "dialogue": "dev_dia0", "group": "dev"}}

Without the clips the entries have no ``wav`` nor ``duration`` and ``corpus.json`` lists the
text modality only. The transcripts are kept as the CSVs hold them (some releases carry
mojibake such as ``\x92`` for an apostrophe), white space stripped. The protocol is the
official one: train on train, hold out dev, test on test.

When the CSVs have at least the release's rows (train 9,989, dev 1,109, test 2,610) their
emotion counts are checked against the release's (:data:`FULL_CORPUS_COUNTS`); the clips
dropped for want of audio are reported apart, not counted as a mismatch.

Usage:
    python data_prep/meld_prepare.py --data_folder <MELD.Raw> --save_folder results/manifests/meld \
        [--audio auto|yes|no]
"""
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import soundfile
from tqdm import tqdm

from data_prep import prepare_common
from data_prep.group_manifests import check_known_counts, current_prepared_corpus, finish_preparation
from mmer_lobes.corpora import corpus_description
from mmer_lobes.errors import ProjectError, run_script

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
CSV_FILES = {split: f"{split}_sent_emo.csv" for split in SPLITS}
CSV_SUBFOLDER = os.path.join("data", "MELD")
CLIP_FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
EMOTIONS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
AUDIO_CHOICES = ("auto", "yes", "no")
SAMPLE_RATE = 16000
# The release's emotion counts per partition (train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv).
FULL_CORPUS_COUNTS = {
    "train": {"neutral": 4710, "joy": 1743, "surprise": 1205, "anger": 1109, "sadness": 683, "disgust": 271,
              "fear": 268},
    "dev": {"neutral": 470, "joy": 163, "surprise": 150, "anger": 153, "sadness": 111, "disgust": 22, "fear": 40},
    "test": {"neutral": 1256, "joy": 402, "surprise": 281, "anger": 345, "sadness": 208, "disgust": 68,
             "fear": 50},
}
PROTOCOL = {"name": "official", "train": ["train"], "holdout": ["dev"], "test": ["test"]}
DECODE_WORKERS = min(8, os.cpu_count() or 1)
DECODE_TIMEOUT_S = 300
N_DROPPED_NAMED = 5


class MeldPrepError(ProjectError, ValueError):
    """The MELD tree, its CSVs or the options cannot be prepared."""


def find_csv_folder(data_folder):
    """The folder holding MELD's three CSVs: ``data_folder`` itself or its ``data/MELD``.

    Example
    -------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "data", "MELD"))
    >>> for split in SPLITS:
    ...     _ = open(os.path.join(root, "data", "MELD", CSV_FILES[split]), "w").write("")
    >>> os.path.relpath(find_csv_folder(root), root)
    'data/MELD'
    """
    candidates = [data_folder, os.path.join(data_folder, CSV_SUBFOLDER)]
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, CSV_FILES[split])) for split in SPLITS):
            return folder
    for folder in candidates:  # one CSV there: name the others
        missing = [CSV_FILES[split] for split in SPLITS if not os.path.isfile(os.path.join(folder, CSV_FILES[split]))]
        if len(missing) < len(SPLITS):
            raise MeldPrepError(f"{folder} lacks {', '.join(missing)} (MELD's CSVs are {', '.join(CSV_FILES.values())})")
    raise MeldPrepError(f"no MELD CSVs ({', '.join(CSV_FILES.values())}) in {data_folder} nor in "
                        f"{os.path.join(data_folder, CSV_SUBFOLDER)}")


def meld_entries(rows, path, split):
    """``{utterance id: entry}`` (no audio fields) of the rows of one MELD CSV
    (:func:`data_prep.prepare_common.read_csv_rows`), in the file's order; an unknown emotion, a bad id or a repeated
    one raises :class:`MeldPrepError` naming the file and line.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "dev_sent_emo.csv")
    >>> _ = open(path, "w").write(
    ...     "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\\n"
    ...     '2, What? ,Monica,surprise,negative,0,1,4,7,"00:21:01,927","00:21:03,261"\\n')
    >>> meld_entries(prepare_common.read_csv_rows(path, REQUIRED_COLUMNS), path, "dev")
    {'dev_dia0_utt1': {'emo': 'surprise', 'sentiment': 'negative', 'speaker': 'Monica', 'transcript': 'What?', 'dialogue': 'dev_dia0', 'group': 'dev'}}
    """
    entries, lines = {}, {}
    for line, row in rows:
        emotion = (row["Emotion"] or "").strip().lower()
        if emotion not in EMOTIONS:
            raise MeldPrepError(f"{path} line {line}: unknown Emotion {row['Emotion']!r} (MELD's are "
                                f"{', '.join(EMOTIONS)})")
        try:
            dialogue, utterance = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
        except (TypeError, ValueError):
            raise MeldPrepError(f"{path} line {line}: Dialogue_ID and Utterance_ID must be integers, got "
                                f"{row['Dialogue_ID']!r} and {row['Utterance_ID']!r}") from None
        utt_id = f"{split}_dia{dialogue}_utt{utterance}"
        if utt_id in entries:
            raise MeldPrepError(f"{path}: dialogue {dialogue} utterance {utterance} is on lines {lines[utt_id]} "
                                f"and {line}")
        lines[utt_id] = line
        entries[utt_id] = {"emo": emotion, "sentiment": (row["Sentiment"] or "").strip().lower(),
                           "speaker": (row["Speaker"] or "").strip(), "transcript": (row["Utterance"] or "").strip(),
                           "dialogue": f"{split}_dia{dialogue}", "group": split}
    return entries


def find_clip_folders(folders):
    """``{split: clip folder or None}``: where each partition's mp4 folder is, the first of
    ``folders`` that holds it.

    Example
    -------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "dev_splits_complete"))
    >>> {split: folder and os.path.basename(folder) for split, folder in find_clip_folders([root]).items()}
    {'train': None, 'dev': 'dev_splits_complete', 'test': None}
    """
    found = {}
    for split in SPLITS:
        paths = [os.path.join(folder, CLIP_FOLDERS[split]) for folder in folders]
        found[split] = next((path for path in paths if os.path.isdir(path)), None)
    return found


def use_audio(audio, clip_folders, data_folder):
    """Whether the clips are decoded, for the ``audio`` option (``auto``, ``yes``, ``no``)
    and the clip folders found (:func:`find_clip_folders`); some folders but not all, or
    ``yes`` without them, raise :class:`MeldPrepError` naming what is missing.

    Example
    -------
    >>> use_audio("auto", {"train": None, "dev": None, "test": None}, "MELD.Raw")
    False
    >>> use_audio("auto", {"train": "t", "dev": "d", "test": "o"}, "MELD.Raw")
    True
    """
    if audio not in AUDIO_CHOICES:
        raise MeldPrepError(f"audio must be one of {', '.join(AUDIO_CHOICES)}, got {audio!r}")
    if audio == "no":
        return False
    missing = [CLIP_FOLDERS[split] for split in SPLITS if not clip_folders[split]]
    if audio == "auto" and len(missing) == len(SPLITS):
        return False
    if missing:
        raise MeldPrepError(f"{data_folder} lacks the clip folder{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)} (extract MELD.Raw's train/dev/test archives there, or prepare "
                            "the text only with --audio no)")
    return True


def find_ffmpeg():
    """The ffmpeg executable: ``ffmpeg`` on the PATH, else the one the ``imageio-ffmpeg``
    package ships; neither raises :class:`MeldPrepError` saying how to install one.

    Example
    -------
    >>> try:
    ...     executable = find_ffmpeg()
    ... except MeldPrepError:  # neither is installed here
    ...     executable = "ffmpeg"
    >>> "ffmpeg" in os.path.basename(executable)
    True
    """
    executable = shutil.which("ffmpeg")
    if executable:
        return executable
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        raise MeldPrepError("decoding MELD's mp4 clips needs ffmpeg: install it (apt-get install ffmpeg, "
                            "conda install ffmpeg) or `pip install imageio-ffmpeg`; or prepare the text only "
                            "with --audio no") from None


def wav_is_ready(path):
    """True when ``path`` is a readable 16 kHz mono wav holding samples (a clip decoded by an
    earlier run).

    Example
    -------
    >>> import os, tempfile, numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "dia0_utt0.wav")
    >>> wav_is_ready(path)
    False
    >>> soundfile.write(path, numpy.zeros(1600), 16000, subtype="PCM_16")
    >>> wav_is_ready(path)
    True
    """
    if not os.path.isfile(path):
        return False
    try:
        info = soundfile.info(path)
    except (RuntimeError, OSError):
        return False
    return info.samplerate == SAMPLE_RATE and info.channels == 1 and info.frames > 0


def decode_clip(ffmpeg, clip, wav_path):
    """Decodes ``clip`` to a 16 kHz mono 16-bit ``wav_path`` (written to a temporary name,
    then renamed); returns None, or why the clip has no audio.

    Example
    -------
    >>> decode_clip("ffmpeg", "/no/such/dia0_utt0.mp4", "/tmp/dia0_utt0.wav")
    'missing clip'
    """
    if not os.path.isfile(clip):
        return "missing clip"
    folder = os.path.dirname(os.path.abspath(wav_path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(wav_path) + ".", suffix=".tmp")
    os.close(handle)
    try:
        command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", clip, "-vn",
                   "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "wav", tmp_path]
        try:
            result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    errors="replace", timeout=DECODE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"ffmpeg ran past {DECODE_TIMEOUT_S} s"
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            return f"ffmpeg failed: {lines[-1] if lines else f'exit status {result.returncode}'}"
        if not wav_is_ready(tmp_path):
            return "decoded to no audio"
        os.replace(tmp_path, wav_path)
        return None
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def decode_clips(jobs, workers=DECODE_WORKERS):
    """Decodes the clips of ``jobs`` (``{utterance id: (clip, wav path)}``) whose wav is not
    ready yet, ``workers`` at a time; returns ``{utterance id: why it has no audio}`` for
    the ones that failed. ffmpeg is looked up only when there is a clip to decode.

    Example
    -------
    >>> decode_clips({"dev_dia0_utt0": ("/no/such/dia0_utt0.mp4", "/no/such/dia0_utt0.wav")})
    {'dev_dia0_utt0': 'missing clip'}
    """
    failed, pending = {}, {}
    for utt_id, (clip, wav_path) in jobs.items():
        if wav_is_ready(wav_path):
            continue
        if not os.path.isfile(clip):
            failed[utt_id] = "missing clip"
        else:
            pending[utt_id] = (clip, wav_path)
    if not pending:
        return failed
    ffmpeg = find_ffmpeg()
    logger.info("MELD: decoding %d clips with %s (%d at a time)", len(pending), ffmpeg, workers)
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        try:
            reasons = pool.map(lambda job: decode_clip(ffmpeg, *job), pending.values())
            for utt_id, reason in tqdm(zip(pending, reasons), total=len(pending), desc="MELD clips", unit="clip"):
                if reason:
                    failed[utt_id] = reason
        except BaseException:  # Ctrl-C: stop at the clips being decoded; a rerun resumes
            pool.shutdown(cancel_futures=True)
            raise
    return {utt_id: failed[utt_id] for utt_id in jobs if utt_id in failed}


def prepare_meld(data_folder, save_folder, audio="auto", skip_prep=False, expect_full_corpus=None):
    """Writes ``train.json``, ``dev.json``, ``test.json`` and ``corpus.json``; returns ``{split: path}``.

    Arguments
    ---------
    data_folder : str
        The folder holding MELD's three CSVs (or ``data/MELD/`` holding them) and, for the
        audio, the raw release's clip folders.
    save_folder : str
        Where the manifests go, and the decoded wavs (``wav/<split>/``).
    audio : str
        ``auto`` (decode the clips when their folders are there), ``yes`` (they must be) or
        ``no`` (text only).
    skip_prep : bool
        Do nothing (the manifests are assumed ready).
    expect_full_corpus : bool or None
        Whether the emotion counts must be the release's; None decides from the CSVs (each
        has at least the release's rows).

    Example
    -------
    >>> import contextlib, io, json, os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
    >>> for split, emotion in (("train", "joy"), ("dev", "anger"), ("test", "fear")):
    ...     row = f'1,Hi.,Ross,{emotion},positive,0,0,1,1,"00:00:01,000","00:00:02,000"'
    ...     _ = open(os.path.join(root, CSV_FILES[split]), "w").write(header + "\\n" + row + "\\n")
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     paths = prepare_meld(root, os.path.join(root, "manifests"))
    >>> list(paths), json.load(open(paths["dev"]))
    (['train', 'dev', 'test'], {'dev_dia0_utt0': {'emo': 'anger', 'sentiment': 'positive', 'speaker': 'Ross', 'transcript': 'Hi.', 'dialogue': 'dev_dia0', 'group': 'dev'}})
    """
    if skip_prep:
        logger.info("skip_prep: MELD manifests are not prepared")
        return None
    if audio not in AUDIO_CHOICES:
        raise MeldPrepError(f"audio must be one of {', '.join(AUDIO_CHOICES)}, got {audio!r}")
    if not os.path.isdir(data_folder):
        raise MeldPrepError(f"MELD data folder does not exist: {data_folder}")
    csv_folder = find_csv_folder(data_folder)
    clip_folders = find_clip_folders(list(dict.fromkeys([csv_folder, data_folder])))
    with_audio = use_audio(audio, clip_folders, data_folder)
    options = {"data_folder": os.path.abspath(data_folder), "audio": with_audio, "corpus_format": 1}
    current = current_prepared_corpus(save_folder, options)
    if current:
        return current
    # Every CSV's columns are checked before the first progress bar starts.
    csv_paths = {split: os.path.join(csv_folder, CSV_FILES[split]) for split in SPLITS}
    tables = {split: prepare_common.read_csv_rows(csv_paths[split], REQUIRED_COLUMNS, MeldPrepError) for split in SPLITS}
    manifests = {split: meld_entries(tqdm(tables[split], desc=f"MELD {split}", unit="utterance"),
                                     csv_paths[split], split) for split in SPLITS}
    if expect_full_corpus or (expect_full_corpus is None and all(
            len(manifests[split]) >= sum(FULL_CORPUS_COUNTS[split].values()) for split in SPLITS)):
        for split in SPLITS:
            check_known_counts("MELD", Counter(entry["emo"] for entry in manifests[split].values()),
                               FULL_CORPUS_COUNTS[split], f"the full {split} partition")
    else:
        logger.info("MELD: %s utterances: not the full release, counts not checked",
                    " / ".join(f"{split} {len(manifests[split])}" for split in SPLITS))
    dropped = Counter()
    if with_audio:
        # The decoded wavs live in the save folder, not in the corpus folder that the
        # recipes put in place of {data_root}, so the manifests name them by absolute path.
        wav_folder = os.path.join(os.path.abspath(save_folder), "wav")
        jobs, clips = {}, {}
        for split in SPLITS:
            for utt_id in manifests[split]:
                name = utt_id[len(split) + 1:]
                clips[utt_id] = os.path.join(clip_folders[split], name + ".mp4")
                jobs[utt_id] = (clips[utt_id], os.path.join(wav_folder, split, name + ".wav"))
        failed = decode_clips(jobs)
        if failed:
            per_split = Counter(utt_id.split("_", 1)[0] for utt_id in failed)
            logger.warning("MELD: %d clips are missing or could not be decoded and were dropped (%s); first: %s",
                           len(failed), ", ".join(f"{split} {n}" for split, n in per_split.items()),
                           "; ".join(f"{clips[utt_id]}: {failed[utt_id]}"
                                     for utt_id in list(failed)[:N_DROPPED_NAMED]))
        for split in SPLITS:
            if manifests[split] and all(utt_id in failed for utt_id in manifests[split]):
                first = next(iter(manifests[split]))
                raise MeldPrepError(f"none of the {len(manifests[split])} clips of {CSV_FILES[split]} could be used "
                                    f"from {clip_folders[split]} (first: {clips[first]}: {failed[first]}); is it "
                                    f"the release's {CLIP_FOLDERS[split]} folder? (--audio no prepares the text only)")
            entries = {}
            for utt_id, entry in manifests[split].items():
                if utt_id in failed:
                    dropped[f"{split}: {'missing clip' if failed[utt_id] == 'missing clip' else 'broken clip'}"] += 1
                    continue
                wav_path = jobs[utt_id][1]
                n_samples, sample_rate = prepare_common.read_wav_header(wav_path, MeldPrepError)
                entries[utt_id] = {"wav": wav_path, "duration": round(n_samples / sample_rate, 3), **entry}
            manifests[split] = entries
    found = Counter(entry["emo"] for entries in manifests.values() for entry in entries.values())
    labels = [label for label in EMOTIONS if label in found]
    description = corpus_description(
        "MELD", labels, {split: f"{split}.json" for split in SPLITS}, PROTOCOL, "partition",
        modalities=["speech", "text"] if with_audio else ["text"], text_carries_emotion=True,
    )
    return finish_preparation(save_folder, manifests, description, options, dropped, MeldPrepError)


def main(argv=None):
    """MELD command line (``argv`` defaults to ``sys.argv[1:]``).

    Example
    -------
    >>> run_script(main, "meld_prepare.py", ["--data_folder", "/no/such", "--save_folder", "/tmp/x"])
    2
    """
    parser = prepare_common.prepare_argument_parser(
        "Write MELD manifests (train, dev, test) and corpus.json; decode the clips to wav when there.",
        data_folder_help="the MELD folder (*_sent_emo.csv, and the raw release's clip folders for the audio)",
    )
    parser.add_argument("--audio", choices=AUDIO_CHOICES, default="auto",
                        help="decode the mp4 clips: auto (when their folders are there), yes (required), no")
    args = parser.parse_args(argv)
    prepare_meld(args.data_folder, args.save_folder, args.audio)


if __name__ == "__main__":
    sys.exit(run_script(main, "meld_prepare.py"))
