r"""Prepares a corpus of your own, described by one CSV file, for emotion recognition: one
manifest per group and a ``corpus.json`` (mmer_lobes.corpora), as the other prepare
scripts write them.

The CSV has a header line and one row per utterance; ``path``, ``label`` and ``speaker``
are required, ``text`` and ``group`` optional, and any other column is copied into the
entries as a string field under its own name::

    path,label,speaker,text
    spk01/happy_001.wav,happy,spk01,What a lovely day.
    spk02/angry_004.flac,angry,spk02,Get out of my way.
    /data/extra/spk03_sad_002.ogg,sad,spk03,I miss her.

* ``path``: the audio file, relative to the CSV's folder or absolute; any format
  soundfile reads (wav, flac, ogg). The duration is read from its header.
* ``label``: the emotion, kept as written (a label map in the experiment's YAML chooses
  the classes).
* ``speaker``: who speaks; the folds are speaker-independent.
* ``text`` (optional): the transcript. With texts the corpus has the modalities speech and
  text; a text is assumed spontaneous (it carries emotion), unless ``--fixed_text`` says
  it is the same sentences read in every emotion (then the text branch refuses it).
* ``group`` (optional): your own division of the corpus (sessions, recording sites...);
  the protocol is then to leave one group out. Without it every speaker is a group and
  the protocol is ``n_folds`` speaker-independent folds, stratified by class.

The utterance id is the file's path relative to the CSV's folder (the absolute path for a
file outside it) without its extension, ``/`` replaced by ``_``. A file under the CSV's
folder is written as ``{data_root}/<relative path>``: pass the CSV's folder as the
recipes' ``data_folder``. A manifest entry::

    {"spk01_happy_001": {"wav": "{data_root}/spk01/happy_001.wav", "duration": 2.35,
        "emo": "happy", "speaker": "spk01", "transcript": "What a lovely day.",
        "group": "spk01"}}

Every error is one line naming the CSV, and the line or column: a missing column, an empty
path, label or speaker, a missing or unreadable audio file, two rows of one utterance id.
A user corpus has no published counts, so none is checked; the count table is printed.

``recipes/experiment.py`` prepares the corpus itself when its YAML says
``prepare_corpus: data_prep.csv_prepare.prepare_csv`` (``prepare_options`` may give
``n_folds``, ``corpus_name``, ``fixed_text``) and ``data_folder`` is the CSV's folder,
holding that one ``.csv`` file.

Usage:
    python data_prep/csv_prepare.py --csv my_corpus/labels.csv --save_folder results/manifests/my_corpus \
        [--corpus_name NAME] [--n_folds 5] [--fixed_text]
"""
import argparse
import csv
import logging
import os
import re
import sys
from collections import Counter

from tqdm import tqdm

from data_prep import prepare_common
from data_prep.group_manifests import current_prepared_corpus, finish_preparation
from mmer_lobes.corpora import CORPUS_FILE, corpus_description
from mmer_lobes.errors import ProjectError, run_script
from mmer_lobes.jobs import file_digest

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("path", "label", "speaker")
OPTIONAL_COLUMNS = ("text", "group")
# Fields the script writes itself: an extra column of one of these names would overwrite it.
ENTRY_FIELDS = ("wav", "duration", "emo", "speaker", "transcript", "group")
# Files the save folder already holds beside the manifests.
RESERVED_FILE_STEMS = (os.path.splitext(CORPUS_FILE)[0], os.path.splitext(prepare_common.OPTIONS_FILE)[0])


class CsvPrepError(ProjectError, ValueError):
    """The CSV, its audio files or the options cannot be prepared."""


def read_csv_rows(csv_path):
    """The CSV's column names and its rows as ``(line number, {column: value})`` pairs, the
    values stripped of surrounding blanks; a missing required column, a repeated or unnamed
    column, or a row with more cells than the header raises :class:`CsvPrepError` naming the
    file (and the line).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "mine.csv")
    >>> _ = open(path, "w").write("path,label,speaker,mood\\na.wav,happy,s1,calm\\n\\nb.wav,sad,s2,\\n")
    >>> columns, rows = read_csv_rows(path)
    >>> columns, rows[1]
    (['path', 'label', 'speaker', 'mood'], (4, {'path': 'b.wav', 'label': 'sad', 'speaker': 's2', 'mood': ''}))
    >>> _ = open(path, "w").write("path,emotion,speaker\\na.wav,happy,s1\\n")
    >>> read_csv_rows(path)
    Traceback (most recent call last):
    ...
    data_prep.csv_prepare.CsvPrepError: .../mine.csv has no label column (columns: path, emotion, speaker; required: path, label, speaker)
    """
    if not os.path.isfile(csv_path):
        raise CsvPrepError(f"CSV file does not exist: {csv_path}")
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise CsvPrepError(f"{csv_path} is empty: it needs a header line {','.join(REQUIRED_COLUMNS)}")
            columns = [name.strip() for name in header]
            rows = []
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue  # a blank line
                if len(cells) > len(columns):
                    raise CsvPrepError(f"{csv_path} line {reader.line_num}: {len(cells)} cells, the header names "
                                       f"{len(columns)} columns (a comma in a value must be quoted)")
                cells = [cell.strip() for cell in cells] + [""] * (len(columns) - len(cells))
                rows.append((reader.line_num, dict(zip(columns, cells))))
    except UnicodeDecodeError as err:
        raise CsvPrepError(f"{csv_path} is not UTF-8 text: {err}") from None
    except csv.Error as err:
        raise CsvPrepError(f"{csv_path} is not a valid CSV file: {err}") from None
    if "" in columns:
        raise CsvPrepError(f"{csv_path}: column {columns.index('') + 1} of the header has no name")
    repeated = sorted(name for name, n in Counter(columns).items() if n > 1)
    if repeated:
        raise CsvPrepError(f"{csv_path}: the header names the column {repeated[0]} twice")
    for column in REQUIRED_COLUMNS:
        if column not in columns:
            raise CsvPrepError(f"{csv_path} has no {column} column (columns: {', '.join(columns)}; required: "
                               f"{', '.join(REQUIRED_COLUMNS)})")
    clashing = [name for name in columns if name in ENTRY_FIELDS and name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if clashing:
        raise CsvPrepError(f"{csv_path}: the column {clashing[0]} would overwrite the entries' own {clashing[0]} "
                           "field; rename it")
    return columns, rows


def utterance_id(relative_or_absolute_path):
    """The utterance id of an audio path (relative to the CSV's folder, or absolute): the
    path without its extension, ``/`` replaced by ``_``.

    Example
    -------
    >>> utterance_id("spk01/happy_001.wav"), utterance_id("/data/extra/sad.v2.ogg")
    ('spk01_happy_001', 'data_extra_sad.v2')
    """
    stem = os.path.splitext(relative_or_absolute_path.replace(os.sep, "/"))[0]
    return stem.lstrip("/").replace("/", "_")


def file_safe_name(group):
    """The manifest file name (without ``.json``) of a group: letters, digits, ``.``, ``_``
    and ``-`` kept, anything else ``_``; names of the save folder's own files get ``_group``.

    Example
    -------
    >>> file_safe_name("Session 1"), file_safe_name("site/a"), file_safe_name("corpus"), file_safe_name("..")
    ('Session_1', 'site_a', 'corpus_group', 'group')
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(group)).strip(".") or "group"
    if name.lower() in RESERVED_FILE_STEMS:
        name += "_group"
    return name


def manifest_files(groups, csv_path, kind):
    """``{group: "<file-safe name>.json"}`` for the groups (sorted); two groups whose file
    names would be one (also ignoring case) raise :class:`CsvPrepError`.

    Example
    -------
    >>> manifest_files(["s2", "Session 1"], "mine.csv", "group")
    {'Session 1': 'Session_1.json', 's2': 's2.json'}
    >>> manifest_files(["a b", "a_b"], "mine.csv", "group")
    Traceback (most recent call last):
    ...
    data_prep.csv_prepare.CsvPrepError: mine.csv: the groups 'a b' and 'a_b' would both be written to a_b.json; rename one
    """
    files, taken = {}, {}
    for group in sorted(groups):
        file = file_safe_name(group) + ".json"
        if file.lower() in taken:
            raise CsvPrepError(f"{csv_path}: the {kind}s {taken[file.lower()]!r} and {group!r} would both be "
                               f"written to {file}; rename one")
        taken[file.lower()] = group
        files[group] = file
    return files


def find_csv(csv_path):
    """The CSV file: ``csv_path`` itself, or the one ``.csv`` file directly in the folder
    ``csv_path`` (so that ``recipes/experiment.py``, which calls a prepare function with the
    corpus's data folder, can name this one); anything else raises :class:`CsvPrepError`.

    Example
    -------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "mine.csv"), "w").write("path,label,speaker\\n")
    >>> find_csv(folder) == find_csv(os.path.join(folder, "mine.csv")) == os.path.join(folder, "mine.csv")
    True
    >>> find_csv(os.path.join(folder, "other.csv"))
    Traceback (most recent call last):
    ...
    data_prep.csv_prepare.CsvPrepError: CSV file does not exist: .../other.csv
    """
    if os.path.isdir(csv_path):
        found = sorted(name for name in os.listdir(csv_path)
                       if name.lower().endswith(".csv") and os.path.isfile(os.path.join(csv_path, name)))
        if len(found) != 1:
            raise CsvPrepError(f"{csv_path} is a folder holding {len(found)} CSV files "
                               f"({', '.join(found) or 'none'}); name the CSV to prepare")
        return os.path.join(csv_path, found[0])
    if not os.path.isfile(csv_path):
        raise CsvPrepError(f"CSV file does not exist: {csv_path}")
    return csv_path


def prepare_csv(csv_path, save_folder, corpus_name=None, n_folds=5, skip_prep=False, fixed_text=False):
    """Writes one manifest per group and ``corpus.json`` from a CSV; returns ``{group: path}``.

    Arguments
    ---------
    csv_path : str
        The CSV (see the module docstring): ``path,label,speaker[,text][,group]``; or a
        folder holding one ``.csv`` file (the corpus's data folder).
    save_folder : str
    corpus_name : str, optional
        The corpus, as reports name it; the CSV file's stem by default.
    n_folds : int
        Speaker-independent folds of the default protocol when there is no ``group`` column
        (at least this many speakers are needed).
    skip_prep : bool
        Do nothing (the manifests are assumed ready).
    fixed_text : bool
        The texts are fixed sentences read in every emotion: ``corpus.json`` marks the text
        as carrying no emotion.

    Example
    -------
    >>> import contextlib, io, json, os, tempfile, numpy, soundfile
    >>> root = tempfile.mkdtemp()
    >>> rows = ["path,label,speaker,text"]
    >>> for n in range(4):
    ...     soundfile.write(os.path.join(root, f"u{n}.wav"), numpy.zeros(1600 * (n + 1)), 16000)
    ...     rows.append(f"u{n}.wav,{'happy' if n % 2 else 'sad'},s{n // 2},hello {n}")
    >>> _ = open(os.path.join(root, "mine.csv"), "w").write("\\n".join(rows) + "\\n")
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     paths = prepare_csv(os.path.join(root, "mine.csv"), os.path.join(root, "manifests"), n_folds=2)
    >>> sorted(paths)
    ['s0', 's1']
    >>> json.load(open(paths["s1"]))["u3"]  # doctest: +NORMALIZE_WHITESPACE
    {'wav': '{data_root}/u3.wav', 'duration': 0.4, 'emo': 'happy', 'speaker': 's1',
     'transcript': 'hello 3', 'group': 's1'}
    """
    if skip_prep:
        logger.info("skip_prep: CSV manifests are not prepared")
        return None
    try:
        n_folds = int(n_folds)
    except (TypeError, ValueError):
        raise CsvPrepError(f"n_folds must be a whole number, got {n_folds!r}") from None
    if n_folds < 2:
        raise CsvPrepError(f"n_folds must be at least 2, got {n_folds}")
    csv_path = os.path.abspath(find_csv(csv_path))
    corpus_name = corpus_name or os.path.splitext(os.path.basename(csv_path))[0]
    options = {"csv": csv_path, "csv_sha256": file_digest(csv_path), "corpus_name": corpus_name,
               "n_folds": n_folds, "fixed_text": bool(fixed_text), "corpus_format": 1}
    current = current_prepared_corpus(save_folder, options)
    if current:
        return current
    columns, rows = read_csv_rows(csv_path)
    if not rows:
        raise CsvPrepError(f"{csv_path} has a header but no row")
    csv_folder = os.path.dirname(csv_path)
    has_text, has_group = "text" in columns, "group" in columns
    extra_columns = [name for name in columns if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    # The rows are checked first, the audio headers read last: a mistake in the CSV is
    # reported before the (long) pass over the audio files.
    entries, line_of, audio_paths = {}, {}, {}
    for line, row in rows:
        for column in REQUIRED_COLUMNS + (("group",) if has_group else ()):
            if not row[column]:
                raise CsvPrepError(f"{csv_path} line {line}: empty {column}")
        path = os.path.normpath(os.path.join(csv_folder, os.path.expanduser(row["path"])))
        relative = os.path.relpath(path, csv_folder)
        inside = relative != os.pardir and not relative.startswith(os.pardir + os.sep)
        utt_id = utterance_id(relative if inside else path)
        if utt_id in entries:
            raise CsvPrepError(f"{csv_path} lines {line_of[utt_id]} and {line}: both give the utterance id {utt_id} "
                               f"(the path without its extension); each file must appear once")
        entry = {"wav": "{data_root}/" + relative.replace(os.sep, "/") if inside else path,
                 "duration": None, "emo": row["label"], "speaker": row["speaker"]}
        if has_text:
            entry["transcript"] = row["text"]
        entry.update((name, row[name]) for name in extra_columns)
        entry["group"] = row["group"] if has_group else row["speaker"]
        entries[utt_id], line_of[utt_id], audio_paths[utt_id] = entry, line, path
    speakers = sorted({entry["speaker"] for entry in entries.values()})
    if has_group:
        groups = sorted({entry["group"] for entry in entries.values()})
        if len(groups) < 2:
            raise CsvPrepError(f"{csv_path}: the group column names one group ({groups[0]}); leaving one group out "
                               "needs at least 2 (drop the column for speaker-independent folds)")
        groups_of = {}
        for entry in entries.values():
            groups_of.setdefault(entry["speaker"], set()).add(entry["group"])
        shared = [speaker for speaker in speakers if len(groups_of[speaker]) > 1]
        if shared:
            logger.warning("%s: the speakers %s are in more than one group: leaving one group out is not "
                           "speaker-independent", csv_path, ", ".join(shared))
        files = manifest_files(groups, csv_path, "group")
        protocol, group_kind = {"name": "leave_one_group_out"}, "group"
    else:
        if len(speakers) < 2:
            raise CsvPrepError(f"{csv_path}: {len(speakers)} speaker found, speaker-independent folds need at "
                               "least 2 (or add a group column)")
        if len(speakers) < n_folds:
            raise CsvPrepError(f"{csv_path}: {len(speakers)} speakers found, {n_folds} speaker-independent folds "
                               f"need at least {n_folds}; pass --n_folds {len(speakers)} or fewer "
                               "(or add a group column)")
        files = manifest_files(speakers, csv_path, "speaker")
        protocol, group_kind = {"name": "speaker_folds", "folds": n_folds}, "speaker"
    for utt_id, entry in tqdm(entries.items(), desc=f"{os.path.basename(csv_path)} audio files", unit="file"):
        try:
            n_samples, sample_rate = prepare_common.read_wav_header(audio_paths[utt_id], CsvPrepError)
        except CsvPrepError as err:
            raise CsvPrepError(f"{csv_path} line {line_of[utt_id]}: {err}") from None
        entry["duration"] = round(n_samples / sample_rate, 3)
    manifests = {group: {} for group in files}
    for utt_id, entry in entries.items():
        manifests[entry["group"]][utt_id] = entry
    texts = [entry["transcript"] for entry in entries.values()] if has_text else []
    empty_texts = [line_of[utt_id] for utt_id, entry in entries.items() if has_text and not entry["transcript"]]
    with_text = bool(texts) and len(empty_texts) < len(texts)
    if with_text and empty_texts:
        logger.warning("%s: the text is empty on %d of %d rows (first: line %d): prepared as speech only",
                       csv_path, len(empty_texts), len(texts), min(empty_texts))
        with_text = False
    modalities = ["speech", "text"] if with_text else ["speech"]
    labels = sorted({entry["emo"] for entry in entries.values()})
    description = corpus_description(corpus_name, labels, files, protocol, group_kind, modalities=modalities,
                                     text_carries_emotion=not fixed_text)
    return finish_preparation(save_folder, manifests, description, options, Counter(), CsvPrepError)


def main(argv=None):
    """CSV command line (``argv`` defaults to ``sys.argv[1:]``).

    Example
    -------
    >>> run_script(main, "csv_prepare.py", ["--csv", "/no/such.csv", "--save_folder", "/tmp/x"])
    2
    """
    parser = argparse.ArgumentParser(description="Write the manifests (one per group) and corpus.json of a "
                                                 "corpus described by a CSV (path,label,speaker[,text][,group]).")
    parser.add_argument("--csv", required=True, help="the CSV (a header line, then one row per utterance), or a "
                                                     "folder holding one .csv file")
    parser.add_argument("--save_folder", required=True, help="where the manifests are written")
    parser.add_argument("--corpus_name", default=None, help="the corpus, as reports name it (default: the CSV's stem)")
    parser.add_argument("--n_folds", type=int, default=5,
                        help="speaker-independent folds when the CSV has no group column")
    parser.add_argument("--fixed_text", action="store_true",
                        help="the texts are fixed sentences read in every emotion (they carry no emotion)")
    args = parser.parse_args(argv)
    prepare_csv(args.csv, args.save_folder, args.corpus_name, args.n_folds, fixed_text=args.fixed_text)


if __name__ == "__main__":
    sys.exit(run_script(main, "csv_prepare.py"))
