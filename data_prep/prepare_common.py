"""Helpers shared by the corpus preparation scripts (IEMOCAP, VoxCeleb, RAVDESS, ...).

SpeechBrain-style skipping: a preparation saves its options in an options
file beside its outputs, written last; a later run with the same options and
every output present skips the work. Wav headers are read without decoding,
and every corpus error names the file, raised as the caller's error class; a
truncated wav (shorter than its header says) is a warning naming the file.
The caller's error class derives from :class:`mmer_lobes.errors.ProjectError`, so
the command lines report it on one line with exit status 2
(:func:`mmer_lobes.errors.run_script`).
"""
import argparse
import csv
import json
import logging
import os

import soundfile

from mmer_lobes.audio import wav_data_size
from mmer_lobes.files import atomic_write_json

logger = logging.getLogger(__name__)

# Beside the outputs: the options of the run that wrote them, written last.
OPTIONS_FILE = "prepare_opts.json"


def preparation_is_done(options_path, output_paths, options):
    """True when every output and the options file exist and the saved options equal ``options``.

    ``options`` is compared after a JSON round trip (tuples become lists), as
    it was saved. An unreadable or corrupt options file means "not done".

    Example
    -------
    >>> import json, os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> options_path = os.path.join(folder, "prepare_opts.json")
    >>> output = os.path.join(folder, "train.json")
    >>> _ = open(output, "w").write("{}")
    >>> preparation_is_done(options_path, [output], {"seed": 1})
    False
    >>> _ = open(options_path, "w").write(json.dumps({"seed": 1, "ratio": [90, 10]}))
    >>> preparation_is_done(options_path, [output], {"seed": 1, "ratio": (90, 10)})
    True
    >>> preparation_is_done(options_path, [output], {"seed": 2, "ratio": (90, 10)})
    False
    """
    if not all(os.path.isfile(path) for path in output_paths) or not os.path.isfile(options_path):
        return False
    try:
        with open(options_path, encoding="utf-8") as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        return False
    return saved == json.loads(json.dumps(options))


def write_outputs_then_options(save_folder, options_path, options, write_outputs, error_class=OSError):
    """Creates ``save_folder``, runs ``write_outputs()``, then writes the options file.

    The old options file is removed first and the new one written last, so a
    crash in between leaves no stale claim that the outputs match these
    options. ``write_outputs`` should write each output atomically. A save
    folder that cannot be created raises ``error_class`` naming the folder.

    Example
    -------
    >>> import json, os, tempfile
    >>> folder = os.path.join(tempfile.mkdtemp(), "out")
    >>> options_path = os.path.join(folder, "prepare_opts.json")
    >>> def write_outputs():
    ...     assert not os.path.exists(options_path)
    ...     atomic_write_json(os.path.join(folder, "train.json"), {"u1": {}})
    >>> write_outputs_then_options(folder, options_path, {"seed": 1}, write_outputs)
    >>> sorted(os.listdir(folder)), json.load(open(options_path))
    (['prepare_opts.json', 'train.json'], {'seed': 1})
    """
    try:
        os.makedirs(save_folder, exist_ok=True)
    except OSError as err:
        raise error_class(f"cannot create the save folder {save_folder}: {err}") from err
    if os.path.exists(options_path):
        os.remove(options_path)
    write_outputs()
    atomic_write_json(options_path, options)


def read_wav_header(path, error_class=ValueError):
    """``(n_samples, sample_rate)`` of a wav, read from its header (no decoding).

    Raises ``error_class`` naming the file when it is missing, unreadable or
    holds no samples. A file that ends before the data its header declares
    (truncated copy or download) is read as what it holds: a warning names the
    file and both sizes (:func:`mmer_lobes.audio.wav_data_size`), and the
    samples present are returned.

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "a.wav")
    >>> soundfile.write(path, numpy.zeros(8000), 16000)
    >>> read_wav_header(path)
    (8000, 16000)
    >>> try:
    ...     read_wav_header(os.path.join(folder, "b.wav"), KeyError)
    ... except KeyError as err:
    ...     print(err.args[0].replace(folder, "<folder>"))
    missing wav file: <folder>/b.wav
    >>> with open(path, "r+b") as handle:  # the last 1000 samples cut off
    ...     _ = handle.truncate(os.path.getsize(path) - 2000)
    >>> read_wav_header(path)
    (7000, 16000)
    """
    if not os.path.isfile(path):
        raise error_class(f"missing wav file: {path}")
    try:
        info = soundfile.info(path)
        size = wav_data_size(path)
    except (RuntimeError, OSError) as err:
        raise error_class(
            f"cannot read the wav header of {path} (corrupt or truncated file): {err}"
        ) from err
    frames = info.frames
    if size is not None and size.truncated:
        logger.warning("%s; using the samples present", size.describe(path))
        if size.present_samples is not None:
            frames = size.present_samples
    if frames <= 0:
        raise error_class(f"empty wav file (0 samples, truncated?): {path}")
    return frames, info.samplerate


def prepare_argument_parser(description, data_folder_help):
    """An argument parser with the ``--data_folder`` and ``--save_folder`` every preparation takes.

    Example
    -------
    >>> parser = prepare_argument_parser("Write manifests.", "the corpus folder")
    >>> args = parser.parse_args(["--data_folder", "corpus", "--save_folder", "out"])
    >>> args.data_folder, args.save_folder
    ('corpus', 'out')
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data_folder", required=True, help=data_folder_help)
    parser.add_argument("--save_folder", required=True, help="where the manifests are written")
    return parser


def format_count_table(rows, labels):
    """Formats ``(row name, Counter)`` pairs as a table with one column per label and a total.

    Example
    -------
    >>> from collections import Counter
    >>> print(format_count_table([("Ses01F", Counter(ang=2, neu=1))], ["ang", "neu"]))
              ang  neu  total
    Ses01F      2    1      3
    """
    name_width = max([len(name) for name, _ in rows] + [8])
    widths = [max(len(label), 4) for label in labels]
    header = " " * name_width + "".join(
        f" {label:>{width}}" for label, width in zip(labels, widths)
    ) + "  total"
    lines = [header]
    for name, counts in rows:
        cells = "".join(f" {counts.get(label, 0):>{width}}" for label, width in zip(labels, widths))
        total = sum(counts.get(label, 0) for label in labels)
        lines.append(f"{name:<{name_width}}{cells} {total:>6}")
    return "\n".join(lines)


def read_csv_rows(path, required_columns, error_class=ValueError):
    """``[(line number, row dict)]`` of a CSV file with a header line (UTF-8, a byte-order
    mark allowed); a missing file, a missing column, bytes that are not UTF-8 or a malformed
    line raise ``error_class`` naming the file.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "dev_sent_emo.csv")
    >>> _ = open(path, "w").write('Utterance,Emotion\\r\\n"Oh, no.",sadness\\r\\n')
    >>> read_csv_rows(path, ["Utterance", "Emotion"])
    [(2, {'Utterance': 'Oh, no.', 'Emotion': 'sadness'})]
    >>> try:
    ...     read_csv_rows(path, ["Utterance", "Speaker"])
    ... except ValueError as err:
    ...     print(str(err).replace(path, "<path>"))
    <path> lacks the column Speaker (its header: Utterance, Emotion)
    """
    if not os.path.isfile(path):
        raise error_class(f"missing CSV file: {path}")
    rows = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            missing = [column for column in required_columns if column not in header]
            if missing:
                raise error_class(f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                  f"(its header: {', '.join(header) or 'none'})")
            for row in reader:
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as err:
        raise error_class(f"{path} is not UTF-8 text: {err}") from err
    except csv.Error as err:
        raise error_class(f"{path} line {reader.line_num}: malformed CSV: {err}") from err
    return rows


def list_audio_files(data_folder, audio_folder, pattern, error_class=ValueError):
    """Every file name matching ``pattern`` in ``<data_folder>/<audio_folder>`` (else in
    ``data_folder`` itself, for a copy without that level) -> its path relative to
    ``data_folder``.

    Example
    -------
    >>> import re, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(folder, "wav"))
    >>> _ = open(os.path.join(folder, "wav", "03a01Fa.wav"), "w").write("")
    >>> list_audio_files(folder, "wav", re.compile(r"^\\d{2}a01Fa\\.wav$"))
    {'03a01Fa.wav': 'wav/03a01Fa.wav'}
    """
    candidate = os.path.join(data_folder, audio_folder)
    prefix = audio_folder if os.path.isdir(candidate) else ""
    folder = candidate if prefix else data_folder
    try:
        names = sorted(os.listdir(folder))
    except OSError as err:
        raise error_class(f"cannot list {folder}: {err}") from err
    return {name: os.path.join(prefix, name) for name in names
            if pattern.match(name) and os.path.isfile(os.path.join(folder, name))}
