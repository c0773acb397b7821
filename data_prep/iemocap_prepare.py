r"""Prepares IEMOCAP for emotion recognition: one JSON manifest per session.

Reads an ``IEMOCAP_full_release`` folder and writes ``Session1.json`` ...
``Session5.json`` into a save folder, one entry per evaluated utterance whose
majority label survives the label map:

    {"Ses01F_impro01_F000": {
        "wav": "{data_root}/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav",
        "duration": 1.94, "transcript": "Excuse me.", "emo": "neu", "emo_raw": "neu",
        "speaker": "Ses01F", "gender": "F", "session": 1, "dialogue": "Ses01F_impro01",
        "improvised": true, "vad": [2.5, 2.5, 2.5]}}

``vad`` is the header's mean [valence, arousal, dominance] (1-5 scales); ``improvised``
is true for the ``impro`` dialogues and false for the ``script`` ones.

One file per session means a leave-one-session-out fold is a choice of files,
never a re-preparation. ``corpus.json`` beside them names the sessions as the groups
and leave-one-session-out as the protocol (mmer_lobes.corpora). Paths start with a ``{data_root}`` placeholder so the
manifests move with the corpus.

The default label map gives the paper's 4 classes (happy and excited merged):
ang 1103, hap 1636, neu 1708, sad 1084 = 5531 utterances on the full corpus.
Any other count on a tree that looks like the full release is reported with a
loud warning. ``label_map=None`` (CLI: ``--keep_all_labels``) keeps every
label except ``xxx`` (no majority).

Corpus files read (per session ``k``):
    Session{k}/dialog/EmoEvaluation/<dialog>.txt   majority labels (.txt files only)
    Session{k}/dialog/transcriptions/<dialog>.txt  transcripts (UTF-8, else latin-1)
    Session{k}/sentences/wav/<dialog>/<utt>.wav    audio (only the header is read)

A second run with the same options finds ``prepare_opts.json`` beside the
manifests and skips the work.

Usage:
    python data_prep/iemocap_prepare.py \
        --data_folder /path/to/IEMOCAP_full_release \
        --save_folder results/manifests/iemocap [--keep_all_labels] [--sessions 1 2 3 4 5]

Errors in the corpus (missing folders or wavs, corrupt wavs, unparsable
evaluation lines) raise ``IemocapPrepError`` with a message naming the file;
the CLI prints it on one line, ``iemocap_prepare.py: error: <message>``, and
exits with status 2 (:func:`mmer_lobes.errors.run_script`).
"""
import logging
import os
import re
import sys
from collections import Counter
from typing import NamedTuple, Optional, Tuple

from tqdm import tqdm

from data_prep import prepare_common
from data_prep.group_manifests import write_prepared_corpus
from mmer_lobes.corpora import CORPUS_FILE, corpus_description
from mmer_lobes.errors import ProjectError, run_script

logger = logging.getLogger(__name__)

ALL_SESSIONS = (1, 2, 3, 4, 5)

# The paper's 4 classes: happy and excited merged; every other label is dropped.
DEFAULT_LABEL_MAP = {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"}

# Header label of a turn on which the annotators found no majority.
NO_MAJORITY_LABEL = "xxx"

# Class counts of the full corpus under DEFAULT_LABEL_MAP (paper, section 1 of DESIGN.md).
FULL_CORPUS_COUNTS = {"ang": 1103, "hap": 1636, "neu": 1708, "sad": 1084}

# The full release has 10039 evaluated turns; a tree with at least this many is
# taken to be the full corpus, so a miscount there is a bug or a damaged copy.
FULL_CORPUS_MIN_TURNS = 10000

OPTIONS_FILE = prepare_common.OPTIONS_FILE

# Bumped when the manifest fields change, so old manifests are not reused.
MANIFEST_FORMAT_VERSION = 2

UTTERANCE_ID_PATTERN = re.compile(r"^Ses(\d{2})[FM]_\S+_([FM])\d+$")
EVALUATION_LINE_PATTERN = re.compile(
    r"^\[\s*(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\s*\]\s+(\S+)\s+([A-Za-z]+)\s+\[([^\]]*)\]\s*$"
)
TRANSCRIPTION_LINE_PATTERN = re.compile(r"^(Ses\d{2}[FM]_\S+_[FM]\d+)\s*\[[^\]]*\]:\s*(.*)$")


class IemocapPrepError(ProjectError, ValueError):
    """The IEMOCAP tree cannot be turned into manifests; the message names the file."""


class EvaluatedTurn(NamedTuple):
    """One header line of an EmoEvaluation file: a turn and its majority label."""

    start: float
    stop: float
    utterance_id: str
    label: str
    vad: Tuple[float, float, float]


def parse_evaluation_line(line) -> Optional[EvaluatedTurn]:
    r"""Parses one line of an EmoEvaluation file.

    Returns the turn for a block header, ``None`` for every other line (the
    ``%`` column header, annotator lines, blank lines), and raises
    ``ValueError`` for a line that starts like a header but does not parse.

    Example
    -------
    >>> parse_evaluation_line("[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]")
    EvaluatedTurn(start=6.2901, stop=8.2357, utterance_id='Ses01F_impro01_F000', label='neu', vad=(2.5, 2.5, 2.5))
    >>> parse_evaluation_line("C-E2:\tNeutral;\t()") is None
    True
    >>> parse_evaluation_line("% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]") is None
    True
    >>> parse_evaluation_line("[6.2901 - 8.2357]\tSes01F_impro01_F000")
    Traceback (most recent call last):
     ...
    ValueError: unparsable evaluation header line (expected '[START - END]<TAB>UTTERANCE_ID<TAB>LABEL<TAB>[V, A, D]')
    """
    line = line.strip()
    if not line.startswith("["):
        return None
    match = EVALUATION_LINE_PATTERN.match(line)
    expected = "expected '[START - END]<TAB>UTTERANCE_ID<TAB>LABEL<TAB>[V, A, D]'"
    if match is None:
        raise ValueError(f"unparsable evaluation header line ({expected})")
    start, stop, utterance_id, label, vad_text = match.groups()
    if UTTERANCE_ID_PATTERN.match(utterance_id) is None:
        raise ValueError(f"unparsable utterance id {utterance_id!r} ({expected})")
    try:
        vad = tuple(float(value) for value in vad_text.split(","))
    except ValueError:
        vad = ()
    if len(vad) != 3:
        raise ValueError(f"unparsable [V, A, D] values [{vad_text}] ({expected})")
    return EvaluatedTurn(float(start), float(stop), utterance_id, label.lower(), vad)


def parse_transcription_line(line) -> Optional[Tuple[str, str]]:
    """Parses one transcription line into ``(utterance_id, transcript)``.

    Lines that carry no utterance id (``M: Yeah.``, ``MXX``/``FXX`` turns)
    give ``None``: they belong to no evaluated utterance.

    Example
    -------
    >>> parse_transcription_line("Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.")
    ('Ses01F_impro01_F000', 'Excuse me.')
    >>> parse_transcription_line("M: Yeah.") is None
    True
    >>> parse_transcription_line("Ses01F_impro01_MXX0 [010.0000-011.0000]: Hm.") is None
    True
    """
    match = TRANSCRIPTION_LINE_PATTERN.match(line.strip())
    if match is None:
        return None
    utterance_id, transcript = match.groups()
    return utterance_id, transcript.strip()


def speaker_of(utterance_id):
    """Speaker of an utterance: its session prefix plus the gender letter of the last id segment.

    The dialog prefix names who started the dialog, not who speaks the turn,
    hence the last segment.

    Example
    -------
    >>> speaker_of("Ses01F_impro01_M003")
    'Ses01M'
    >>> speaker_of("Ses05M_script01_1b_F012")
    'Ses05F'
    """
    match = UTTERANCE_ID_PATTERN.match(utterance_id)
    if match is None:
        raise ValueError(f"not an IEMOCAP utterance id: {utterance_id!r}")
    session_digits, gender = match.groups()
    return f"Ses{session_digits}{gender}"


def session_of(utterance_id):
    """Session number of an utterance id.

    Example
    -------
    >>> session_of("Ses03M_impro05b_F010")
    3
    """
    return int(speaker_of(utterance_id)[3:5])


def map_label(raw_label, label_map=DEFAULT_LABEL_MAP):
    """Maps a header label to a class, or ``None`` when the utterance is dropped.

    ``label_map=None`` keeps every label except ``xxx`` (no majority).

    Example
    -------
    >>> map_label("exc")
    'hap'
    >>> map_label("fru") is None
    True
    >>> map_label("fru", label_map=None)
    'fru'
    >>> map_label("xxx", label_map=None) is None
    True
    """
    if label_map is None:
        return None if raw_label == NO_MAJORITY_LABEL else raw_label
    return label_map.get(raw_label)


def read_text_lines(path):
    """Reads a text file as UTF-8, falling back to latin-1 (some IEMOCAP files are not UTF-8).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(path, "wb").write("caf\\xe9\\n".encode("latin-1"))
    >>> read_text_lines(path)
    ['café']
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.splitlines()


def read_evaluation_file(path):
    r"""Reads the evaluated turns of one EmoEvaluation file.

    Raises ``IemocapPrepError`` naming the file and line of an unparsable header.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "Ses01F_impro01.txt")
    >>> _ = open(path, "w").write(
    ...     "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
    ...     "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
    ...     "C-E2:\tNeutral;\t()\n")
    >>> [turn.utterance_id for turn in read_evaluation_file(path)]
    ['Ses01F_impro01_F000']
    """
    turns = []
    for line_number, line in enumerate(read_text_lines(path), start=1):
        try:
            turn = parse_evaluation_line(line)
        except ValueError as err:
            raise IemocapPrepError(f"{path}, line {line_number}: {err}: {line.strip()!r}") from err
        if turn is not None:
            turns.append(turn)
    return turns


def read_transcription_file(path):
    """Reads one transcription file into ``{utterance_id: transcript}``.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "Ses01F_impro01.txt")
    >>> _ = open(path, "w").write(
    ...     "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\\nM: Yeah.\\n")
    >>> read_transcription_file(path)
    {'Ses01F_impro01_F000': 'Excuse me.'}
    """
    if not os.path.isfile(path):
        raise IemocapPrepError(f"missing transcription file: {path}")
    transcripts = {}
    for line in read_text_lines(path):
        parsed = parse_transcription_line(line)
        if parsed is not None:
            utterance_id, transcript = parsed
            transcripts.setdefault(utterance_id, transcript)
    return transcripts


def wav_duration(path):
    """Duration in seconds of a wav file, read from its header (no decoding).

    Raises ``IemocapPrepError`` naming the file when it is missing, unreadable
    or holds no samples (see ``prepare_common.read_wav_header``).

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "Ses01F_impro01_F000.wav")
    >>> soundfile.write(path, numpy.zeros(20000), 16000)
    >>> wav_duration(path)
    1.25
    """
    n_samples, sample_rate = prepare_common.read_wav_header(path, IemocapPrepError)
    return round(n_samples / sample_rate, 4)


def find_session_folders(data_folder, sessions=ALL_SESSIONS):
    """Checks the corpus layout and returns ``{session: folder}``.

    Raises ``IemocapPrepError`` for a missing data folder, a folder that is not
    an IEMOCAP release, or a missing session or EmoEvaluation folder.

    Example
    -------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "Session1", "dialog", "EmoEvaluation"))
    >>> folders = find_session_folders(root, sessions=(1,))
    >>> os.path.basename(folders[1])
    'Session1'
    >>> try:
    ...     find_session_folders(root, sessions=(1, 2))
    ... except IemocapPrepError as err:
    ...     print(str(err).replace(root, "<root>"))
    missing session folder: <root>/Session2
    """
    if not os.path.isdir(data_folder):
        raise IemocapPrepError(f"IEMOCAP data folder does not exist: {data_folder}")
    present = [k for k in ALL_SESSIONS if os.path.isdir(os.path.join(data_folder, f"Session{k}"))]
    if not present:
        hint = ""
        nested = os.path.join(data_folder, "IEMOCAP_full_release")
        if os.path.isdir(nested):
            hint = f" (did you mean {nested}?)"
        raise IemocapPrepError(
            f"{data_folder} is not an IEMOCAP_full_release folder: it has no "
            f"Session1 ... Session5 folders{hint}"
        )
    folders = {}
    for session in sessions:
        folder = os.path.join(data_folder, f"Session{session}")
        if not os.path.isdir(folder):
            raise IemocapPrepError(f"missing session folder: {folder}")
        evaluation_folder = os.path.join(folder, "dialog", "EmoEvaluation")
        if not os.path.isdir(evaluation_folder):
            raise IemocapPrepError(f"missing EmoEvaluation folder: {evaluation_folder}")
        folders[session] = folder
    return folders


def list_evaluation_files(session_folder):
    """The EmoEvaluation ``.txt`` files of a session, sorted.

    Sub-folders (``Attribute/``, ``Categorical/``, ``Self-evaluation/``) and
    hidden files (macOS ``._*`` copies found in some distributions) are skipped.

    Example
    -------
    >>> import os, tempfile
    >>> session = tempfile.mkdtemp()
    >>> folder = os.path.join(session, "dialog", "EmoEvaluation")
    >>> os.makedirs(os.path.join(folder, "Attribute"))
    >>> for name in ("Ses01F_impro01.txt", "._Ses01F_impro01.txt", "notes.doc"):
    ...     _ = open(os.path.join(folder, name), "w").write("")
    >>> [os.path.basename(path) for path in list_evaluation_files(session)]
    ['Ses01F_impro01.txt']
    """
    folder = os.path.join(session_folder, "dialog", "EmoEvaluation")
    names = sorted(
        name
        for name in os.listdir(folder)
        if name.endswith(".txt")
        and not name.startswith(".")
        and os.path.isfile(os.path.join(folder, name))
    )
    if not names:
        raise IemocapPrepError(f"no EmoEvaluation .txt files in {folder}")
    return [os.path.join(folder, name) for name in names]


def read_dialog(data_folder, session, evaluation_path, label_map=DEFAULT_LABEL_MAP):
    r"""Reads one dialog: its evaluated turns and the manifest entries of the kept ones.

    Returns ``(turns, entries)``; ``entries`` maps utterance ids to manifest
    entries. Raises ``IemocapPrepError`` for a missing transcript or wav.

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> session = os.path.join(root, "Session1")
    >>> for sub in ("dialog/EmoEvaluation", "dialog/transcriptions",
    ...             "sentences/wav/Ses01F_impro01"):
    ...     os.makedirs(os.path.join(session, sub))
    >>> evaluation = os.path.join(session, "dialog/EmoEvaluation/Ses01F_impro01.txt")
    >>> _ = open(evaluation, "w").write(
    ...     "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
    ...     "[9.0000 - 9.5000]\tSes01F_impro01_M000\txxx\t[2.0000, 3.0000, 3.0000]\n")
    >>> _ = open(os.path.join(session, "dialog/transcriptions/Ses01F_impro01.txt"), "w").write(
    ...     "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\n"
    ...     "Ses01F_impro01_M000 [009.0000-009.5000]: Do you have your forms?\n")
    >>> soundfile.write(os.path.join(session, "sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"),
    ...                 numpy.zeros(16000), 16000)
    >>> turns, entries = read_dialog(root, 1, evaluation)
    >>> len(turns), list(entries)
    (2, ['Ses01F_impro01_F000'])
    >>> entries["Ses01F_impro01_F000"]["wav"]
    '{data_root}/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav'
    >>> [entries["Ses01F_impro01_F000"][k] for k in ("dialogue", "improvised", "vad")]
    ['Ses01F_impro01', True, [2.5, 2.5, 2.5]]
    """
    dialog = os.path.splitext(os.path.basename(evaluation_path))[0]
    turns = read_evaluation_file(evaluation_path)
    transcription_path = os.path.join(
        data_folder, f"Session{session}", "dialog", "transcriptions", f"{dialog}.txt"
    )
    transcripts = read_transcription_file(transcription_path)
    entries = {}
    for turn in turns:
        utterance_id = turn.utterance_id
        if session_of(utterance_id) != session:
            raise IemocapPrepError(
                f"{evaluation_path}: utterance {utterance_id} does not belong to session {session}"
            )
        emotion = map_label(turn.label, label_map)
        if emotion is None:
            continue
        if utterance_id not in transcripts:
            raise IemocapPrepError(
                f"no transcript for evaluated utterance {utterance_id} in {transcription_path}"
            )
        relative_wav = f"Session{session}/sentences/wav/{dialog}/{utterance_id}.wav"
        wav_path = os.path.join(data_folder, *relative_wav.split("/"))
        if not os.path.isfile(wav_path):
            raise IemocapPrepError(
                f"missing wav for evaluated utterance {utterance_id} "
                f"(labelled in {evaluation_path}): {wav_path}"
            )
        speaker = speaker_of(utterance_id)
        entries[utterance_id] = {
            "wav": "{data_root}/" + relative_wav,
            "duration": wav_duration(wav_path),
            "transcript": transcripts[utterance_id],
            "emo": emotion,
            "emo_raw": turn.label,
            "speaker": speaker,
            "gender": speaker[-1],
            "session": session,
            # The dialogue groups the hold-out (no dialogue split between train and hold-out);
            # scripted dialogues reuse the same scripts in every session, so the report shows
            # improvised and scripted test utterances apart.
            "dialogue": dialog,
            "improvised": "_impro" in dialog,
            "vad": list(turn.vad),
        }
    return turns, entries


def full_corpus_check_applies(n_turns, sessions, expect_full_corpus=None):
    """Whether the class counts must equal those of the full corpus.

    An explicit ``expect_full_corpus`` wins; otherwise the check applies when
    all five sessions are prepared and they hold at least
    ``FULL_CORPUS_MIN_TURNS`` evaluated turns (the full release has 10039).

    Example
    -------
    >>> full_corpus_check_applies(10039, (1, 2, 3, 4, 5))
    True
    >>> full_corpus_check_applies(50, (1, 2, 3, 4, 5))
    False
    >>> full_corpus_check_applies(50, (1, 2), expect_full_corpus=True)
    True
    """
    if expect_full_corpus is not None:
        return bool(expect_full_corpus)
    return set(sessions) == set(ALL_SESSIONS) and n_turns >= FULL_CORPUS_MIN_TURNS


def check_full_corpus_counts(found_counts, expected_counts=None):
    """Compares 4-class counts with the full corpus; a mismatch is a loud warning.

    ``expected_counts`` defaults to ``FULL_CORPUS_COUNTS``. Returns ``True``
    when the counts match.

    Example
    -------
    >>> check_full_corpus_counts({"ang": 1103, "hap": 1636, "neu": 1708, "sad": 1084})
    True
    """
    if expected_counts is None:
        expected_counts = FULL_CORPUS_COUNTS
    found = {label: int(found_counts.get(label, 0)) for label in expected_counts}
    extra = {label: n for label, n in found_counts.items() if label not in expected_counts and n}
    if found == dict(expected_counts) and not extra:
        return True
    banner = "!" * 78

    def describe(counts):
        total = sum(counts.values())
        return " / ".join(f"{label} {n}" for label, n in counts.items()) + f" = {total}"

    logger.warning(
        "\n%s\nIEMOCAP CLASS COUNTS DO NOT MATCH THE FULL CORPUS\n"
        "  expected: %s\n  found:    %s\n"
        "The corpus copy is incomplete or damaged, or its files were parsed wrongly;\n"
        "results will not be comparable with the paper.\n%s",
        banner,
        describe(dict(expected_counts)),
        describe({**found, **extra}),
        banner,
    )
    return False


def summarize(manifests, dropped_labels, save_folder):
    """Text summary of prepared manifests: counts per speaker, session and class.

    Example
    -------
    >>> entry = {"emo": "neu", "speaker": "Ses01F"}
    >>> print(summarize({1: {"u1": entry}}, Counter(xxx=2), "out"))
    IEMOCAP: 1 utterances, 1 sessions, classes neu -> out
              neu  total
    Ses01F      1      1
    Session1    1      1
    total       1      1
    dropped (label not kept): xxx 2
    """
    labels = sorted({entry["emo"] for entries in manifests.values() for entry in entries.values()})
    rows = []
    grand_total = Counter()
    for session, entries in sorted(manifests.items()):
        per_speaker = {}
        for entry in entries.values():
            per_speaker.setdefault(entry["speaker"], Counter())[entry["emo"]] += 1
        session_total = Counter()
        for speaker, counts in sorted(per_speaker.items()):
            rows.append((speaker, counts))
            session_total.update(counts)
        rows.append((f"Session{session}", session_total))
        grand_total.update(session_total)
    rows.append(("total", grand_total))
    n_utterances = sum(grand_total.values())
    dropped = ", ".join(f"{label} {n}" for label, n in dropped_labels.most_common())
    return (
        f"IEMOCAP: {n_utterances} utterances, {len(manifests)} sessions, "
        f"classes {' '.join(labels)} -> {save_folder}\n"
        + prepare_common.format_count_table(rows, labels)
        + f"\ndropped (label not kept): {dropped or 'none'}"
    )


def prepare_iemocap(
    data_folder,
    save_folder,
    label_map=DEFAULT_LABEL_MAP,
    sessions=ALL_SESSIONS,
    skip_prep=False,
    expect_full_corpus=None,
):
    r"""Writes ``Session{k}.json`` manifests for the chosen IEMOCAP sessions.

    Arguments
    ---------
    data_folder : str
        The ``IEMOCAP_full_release`` folder (holding ``Session1`` ... ``Session5``).
    save_folder : str
        Where the manifests and ``prepare_opts.json`` are written.
    label_map : dict or None
        Header label -> class; labels not in the map are dropped. ``None``
        keeps every label except ``xxx``.
    sessions : sequence of int
        Sessions to prepare.
    skip_prep : bool
        If True, do nothing (the manifests are assumed ready).
    expect_full_corpus : bool or None
        Whether the 4-class counts must be 1103 / 1636 / 1708 / 1084; ``None``
        decides from the tree (all five sessions, at least 10000 turns).

    Returns
    -------
    dict
        ``{session: manifest path}``.

    Example
    -------
    >>> import contextlib, io, json, os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> session = os.path.join(root, "Session1")
    >>> for sub in ("dialog/EmoEvaluation", "dialog/transcriptions",
    ...             "sentences/wav/Ses01F_impro01"):
    ...     os.makedirs(os.path.join(session, sub))
    >>> _ = open(os.path.join(session, "dialog/EmoEvaluation/Ses01F_impro01.txt"), "w").write(
    ...     "[6.2901 - 8.2357]\tSes01F_impro01_M000\texc\t[2.5000, 2.5000, 2.5000]\n")
    >>> _ = open(os.path.join(session, "dialog/transcriptions/Ses01F_impro01.txt"), "w").write(
    ...     "Ses01F_impro01_M000 [006.2901-008.2357]: Great news!\n")
    >>> soundfile.write(os.path.join(session, "sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav"),
    ...                 numpy.zeros(16000), 16000)
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     paths = prepare_iemocap(root, os.path.join(root, "manifests"), sessions=(1,))
    >>> entry = json.load(open(paths[1]))["Ses01F_impro01_M000"]
    >>> entry["emo"], entry["emo_raw"], entry["speaker"], entry["duration"]
    ('hap', 'exc', 'Ses01M', 1.0)
    """
    sessions = _checked_sessions(sessions)
    manifest_paths = {k: os.path.join(save_folder, f"Session{k}.json") for k in sessions}
    if skip_prep:
        logger.info("skip_prep: IEMOCAP manifests are not prepared")
        return manifest_paths
    label_map = None if label_map is None else {str(k): str(v) for k, v in dict(label_map).items()}
    options = {
        "data_folder": os.path.abspath(data_folder),
        "sessions": list(sessions),
        "label_map": label_map,
        "manifest_format": MANIFEST_FORMAT_VERSION,
    }
    options_path = os.path.join(save_folder, OPTIONS_FILE)
    outputs = [*manifest_paths.values(), os.path.join(save_folder, CORPUS_FILE)]
    if prepare_common.preparation_is_done(options_path, outputs, options):
        message = f"IEMOCAP manifests in {save_folder} are up to date (same options): skipping preparation"
        logger.info(message)
        print(message)
        return manifest_paths

    # Everything is read and checked before anything is written, so a bad
    # corpus leaves the save folder as it was.
    session_folders = find_session_folders(data_folder, sessions)
    evaluation_files = [
        (session, path) for session in sessions for path in list_evaluation_files(session_folders[session])
    ]
    manifests = {session: {} for session in sessions}
    origin_of = {}
    raw_label_counts = Counter()
    for session, evaluation_path in tqdm(evaluation_files, desc="IEMOCAP dialogs", unit="dialog"):
        turns, entries = read_dialog(data_folder, session, evaluation_path, label_map)
        for turn in turns:
            if turn.utterance_id in origin_of:
                raise IemocapPrepError(
                    f"utterance {turn.utterance_id} is evaluated twice: in "
                    f"{origin_of[turn.utterance_id]} and {evaluation_path}"
                )
            origin_of[turn.utterance_id] = evaluation_path
            raw_label_counts[turn.label] += 1
        manifests[session].update(entries)

    _warn_about_empty_transcripts(manifests)
    n_turns = sum(raw_label_counts.values())
    if full_corpus_check_applies(n_turns, sessions, expect_full_corpus):
        # Checked on the raw labels, so the guard also covers other label maps.
        four_class_counts = Counter()
        for raw_label, n in raw_label_counts.items():
            if raw_label in DEFAULT_LABEL_MAP:
                four_class_counts[DEFAULT_LABEL_MAP[raw_label]] += n
        check_full_corpus_counts(four_class_counts)

    _write_manifests(save_folder, manifests, options)
    kept = Counter(
        entry["emo_raw"] for entries in manifests.values() for entry in entries.values()
    )
    summary = summarize(manifests, raw_label_counts - kept, save_folder)
    logger.info("%s", summary)
    print(summary)
    return manifest_paths


def _checked_sessions(sessions):
    """Session numbers as a sorted tuple of ints in 1..5, or an error."""
    try:
        checked = tuple(sorted({int(session) for session in sessions}))
    except (TypeError, ValueError):
        raise IemocapPrepError(f"sessions must be numbers in 1..5, got {sessions!r}") from None
    if not checked or not set(checked) <= set(ALL_SESSIONS):
        raise IemocapPrepError(f"sessions must be numbers in 1..5, got {sessions!r}")
    return checked


def _warn_about_empty_transcripts(manifests):
    """Logs the utterances whose transcript is empty (the text model sees only [CLS] [SEP])."""
    empty = [
        utterance_id
        for entries in manifests.values()
        for utterance_id, entry in entries.items()
        if not entry["transcript"]
    ]
    if empty:
        logger.warning(
            "%d utterances have an empty transcript, e.g. %s", len(empty), ", ".join(empty[:5])
        )


def _write_manifests(save_folder, manifests, options):
    """Writes every session manifest and ``corpus.json`` (sessions as groups, left out one
    at a time) atomically, then the options file that marks the work done."""
    labels = sorted({entry["emo"] for entries in manifests.values() for entry in entries.values()})
    description = corpus_description(
        "IEMOCAP", labels, {str(k): f"Session{k}.json" for k in manifests},
        {"name": "leave_one_group_out"}, "session",
    )
    return write_prepared_corpus(save_folder, {str(k): entries for k, entries in manifests.items()},
                                 description, options, IemocapPrepError)


def main(argv=None):
    """IEMOCAP command line (``argv`` defaults to ``sys.argv[1:]``); a bad corpus raises
    :class:`IemocapPrepError`, which :func:`~mmer_lobes.errors.run_script` reports.

    Example
    -------
    >>> main(["--data_folder", "/no/such/IEMOCAP_full_release", "--save_folder", "/tmp/x"])
    Traceback (most recent call last):
      ...
    data_prep.iemocap_prepare.IemocapPrepError: IEMOCAP data folder does not exist: /no/such/IEMOCAP_full_release
    >>> run_script(main, "iemocap_prepare.py", ["--data_folder", "/no/such", "--save_folder", "/tmp/x"])
    2
    """
    parser = prepare_common.prepare_argument_parser(
        "Write IEMOCAP Session{k}.json manifests for emotion recognition.",
        data_folder_help="the IEMOCAP_full_release folder",
    )
    parser.add_argument(
        "--keep_all_labels",
        action="store_true",
        help="keep every majority label except xxx instead of the 4 classes ang/hap(+exc)/neu/sad",
    )
    parser.add_argument(
        "--sessions", type=int, nargs="+", default=list(ALL_SESSIONS), help="sessions to prepare"
    )

    args = parser.parse_args(argv)
    prepare_iemocap(
        args.data_folder,
        args.save_folder,
        label_map=None if args.keep_all_labels else DEFAULT_LABEL_MAP,
        sessions=args.sessions,
    )


if __name__ == "__main__":
    sys.exit(run_script(main, "iemocap_prepare.py"))
