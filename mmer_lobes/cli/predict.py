"""``mmer-predict``: emotion recognition with an exported interface folder.

One clip (and optionally its transcript)::

    mmer-predict --model models/mmer_fold5 clip.wav --text "I can't believe it"
    mmer-predict --model models/mmer_fold5 --text "I can't believe it"      # text model only

prints the decision, the class probabilities, each modality's own prediction and the input
flags (``--json`` prints the same as JSON). Many clips::

    mmer-predict --model models/mmer_fold5 --batch manifest.json --output out.csv \\
        --data_root /data/IEMOCAP_full_release
    mmer-predict --model models/mmer_fold5 --batch clips/ --output out.json

A manifest is SpeechBrain JSON keyed by utterance id, each entry with ``wav`` (where
``{data_root}`` is replaced by ``--data_root``; relative paths are read from the current
folder, then from the manifest's folder) and optionally ``transcript`` (used as the text).
A folder is searched recursively for audio files (wav, flac, ogg). Clips are scored in
batches of similar durations, ``--batch_size`` at a time (default: the model's size for the
device, one clip at a time on a CPU, where that is fastest); a clip's result is the same in
any batch (the speech network masks the padding, :mod:`mmer_lobes.batching`). The output (``.csv`` or ``.json``)
is written only when every clip is done. Bad input (missing model, file or manifest entry,
unreadable audio, unknown output type) ends with a one-line error and exit code 2;
``--skip_errors`` records missing or unreadable clips (and, for a text-only model, entries
without a transcript) in the output's ``error`` field instead. Two clips with the same id
(``a.wav`` and ``a.flac`` in one folder) are an error, since ids key the output.
"""
import argparse
import csv
import json
import logging
import os
import sys

from mmer_lobes.errors import ProjectError, one_line, run_script

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
BACKENDS = ("torch", "onnx")
ONNX_FILE = "speech.onnx"  # recipes/export.py's name for it


class PredictError(ProjectError, ValueError):
    """A bad input: reported on one line, exit code 2.

    Example
    -------
    >>> main(["--model", "/no/such/model", "clip.wav"])
    2
    """


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="mmer-predict",
        description="Speech + text emotion recognition with an interface folder written by "
                    "recipes/export.py.",
    )
    parser.add_argument("--model", required=True, help="the interface folder")
    parser.add_argument("audio", nargs="?", help="an audio file to classify")
    parser.add_argument("--text", help="the transcript of the clip (or a text alone)")
    parser.add_argument("--batch", help="a manifest (.json) or a folder of audio files")
    parser.add_argument("--output", help="with --batch: results file, .csv or .json")
    parser.add_argument("--data_root", help="replaces {data_root} in manifest paths")
    parser.add_argument("--skip_errors", action="store_true",
                        help="with --batch: record unreadable clips instead of stopping")
    parser.add_argument("--json", action="store_true", help="single clip: print JSON")
    parser.add_argument("--batch_size", type=int,
                        help="with --batch: clips scored at a time (default: the model's size for the device)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="the speech network on PyTorch (default) or on onnxruntime (the folder's speech.onnx, "
                             "written by recipes/export.py --onnx=True)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--savedir", help="where SpeechBrain links the model files (default: none)")
    return parser.parse_args(argv)


def _quiet_libraries():
    """Keeps library logs and progress bars of model loading off the terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # read by transformers / huggingface_hub when (and only if) a text model is loaded
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("speechbrain").setLevel(logging.WARNING)


def load_model(folder, device="cpu", savedir=None):
    """Loads an interface folder, with one-line errors for the usual mistakes.

    Example
    -------
    >>> load_model("/no/such/model")
    Traceback (most recent call last):
    ...
    mmer_lobes.cli.predict.PredictError: model folder /no/such/model does not exist
    """
    from mmer_lobes.interfaces import RECOGNIZERS

    if not os.path.isdir(folder):
        raise PredictError(f"model folder {folder} does not exist")
    info_path = os.path.join(folder, "export_info.json")
    if not os.path.isfile(os.path.join(folder, "hyperparams.yaml")) or not os.path.isfile(info_path):
        raise PredictError(
            f"{folder} holds no hyperparams.yaml and export_info.json: not an interface folder "
            f"(write one with recipes/export.py)"
        )
    try:
        with open(info_path, encoding="utf-8") as handle:
            recognizer = RECOGNIZERS[tuple(json.load(handle)["modalities"])]
        if device == "cuda":  # SpeechBrain wants the index
            device = "cuda:0"
        return recognizer.from_hparams(source=os.path.abspath(folder), savedir=savedir, run_opts={"device": device})
    except Exception as error:  # any failure to build the model is reported on one line
        raise PredictError(f"cannot load the model in {folder}: {one_line(error)}") from None


def use_backend(model, folder, backend):
    """Runs the speech network of ``model`` on ``backend``: "torch", or "onnx" (the folder's
    ``speech.onnx`` on onnxruntime).

    Example
    -------
    >>> use_backend(object(), "/no/model", "onnx")
    Traceback (most recent call last):
    ...
    mmer_lobes.cli.predict.PredictError: --backend onnx runs the speech network, and this model has none
    """
    if backend == "torch":
        return model
    speech = _speech_part(model)
    if speech is None:
        raise PredictError(f"--backend {backend} runs the speech network, and this model has none")
    path = os.path.join(folder, ONNX_FILE)
    if not os.path.isfile(path):
        raise PredictError(f"{folder} has no {ONNX_FILE}: export the model again with recipes/export.py ... --onnx=True")
    try:
        speech.use_onnx(path)
    except ProjectError as error:
        raise PredictError(f"--backend {backend}: {error}") from None
    return model


def modalities(model):
    """The modalities a loaded model scores: ``speech``, ``text`` or both."""
    return [m for m in ("speech", "text") if hasattr(model, "predict_" + ("file" if m == "speech" else "text"))]


def classify(model, path=None, text=None):
    """The :class:`~mmer_lobes.interfaces.results.EmotionPrediction` of a clip and/or a
    transcript with whatever the model holds; an input the model cannot use is flagged."""
    held = modalities(model)
    if path is not None and "speech" in held:
        result = model.predict_file(path, text=text) if "text" in held else model.predict_file(path)
        if text is not None and str(text).strip() and "text" not in held:
            result.flags.append("text_ignored_no_text_model")
        return result
    if "text" not in held:
        raise PredictError("this model has no text model: give an audio file")
    if text is None or not str(text).strip():
        raise PredictError("this model has no speech model: give a transcript" if path is not None
                           else "give an audio file or a transcript")
    result = model.predict_text(text)
    if path is not None:
        result.flags.insert(0, "audio_ignored_no_speech_model")
    return result


def _format_probabilities(probabilities):
    return "  ".join(f"{name} {p:.3f}" for name, p in probabilities.items())


def format_prediction(prediction, name=None):
    """The human-readable report of one prediction.

    Example
    -------
    >>> from mmer_lobes.interfaces import EmotionPrediction, ModalityPrediction
    >>> speech = ModalityPrediction("sad", {"neu": 0.4, "sad": 0.6})
    >>> print(format_prediction(EmotionPrediction("sad", speech.probabilities, "speech",
    ...       speech=speech, flags=["speech_only_empty_text"], duration=2.5), "a.wav"))
    a.wav (2.50 s)
    label: sad  [speech]
    probabilities: neu 0.400  sad 0.600
    speech: sad  (neu 0.400  sad 0.600)
    flags: speech_only_empty_text
    """
    lines = []
    if name:
        duration = f" ({prediction.duration:.2f} s)" if prediction.duration is not None else ""
        lines.append(f"{name}{duration}")
    lines.append(f"label: {prediction.label}  [{prediction.decided_by}]")
    lines.append(f"probabilities: {_format_probabilities(prediction.probabilities)}")
    for modality in ("speech", "text"):
        result = getattr(prediction, modality)
        if result is not None:
            lines.append(
                f"{modality + ':':8s}{result.label}  ({_format_probabilities(result.probabilities)})"
            )
    lines.append(f"flags: {', '.join(prediction.flags) if prediction.flags else '-'}")
    return "\n".join(lines)


# ----------------------------------------------------------------------- batch input ----


def _resolve(path, manifest_folder):
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(manifest_folder, path)
    return candidate if os.path.exists(candidate) else path


def read_manifest(path, data_root=None):
    """``[(id, audio path, transcript or None)]`` of a SpeechBrain JSON manifest.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "test.json")
    >>> with open(path, "w") as handle:
    ...     json.dump({"u1": {"wav": "{data_root}/u1.wav", "transcript": "Oh no."}}, handle)
    >>> read_manifest(path, data_root="/corpus")
    [('u1', '/corpus/u1.wav', 'Oh no.')]
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise PredictError(f"cannot read manifest {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PredictError(f"manifest {path} is not valid JSON: {error}") from None
    if isinstance(data, list):
        entries = []
        for index, entry in enumerate(data):
            if not isinstance(entry, dict):
                raise PredictError(f"manifest {path}: entry {index} is not an object")
            wav = entry.get("wav")
            utt = entry.get("id") or (os.path.splitext(os.path.basename(wav))[0] if isinstance(wav, str) else str(index))
            entries.append((str(utt), entry))
    elif isinstance(data, dict):
        entries = list(data.items())
    else:
        raise PredictError(f"manifest {path} must hold an object keyed by utterance id")
    if not entries:
        raise PredictError(f"manifest {path} holds no entries")
    folder = os.path.dirname(os.path.abspath(path))
    items = []
    for utt, entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("wav"), str) or not entry["wav"]:
            raise PredictError(f"manifest {path}: entry {utt} has no 'wav' path")
        wav = entry["wav"]
        if "{data_root}" in wav:
            if not data_root:
                raise PredictError(
                    f"manifest {path} uses {{data_root}} (entry {utt}): pass --data_root <folder>"
                )
            wav = wav.replace("{data_root}", data_root)
        transcript = entry.get("transcript")
        if transcript is not None and not isinstance(transcript, str):
            raise PredictError(f"manifest {path}: entry {utt} has a transcript that is not a string")
        items.append((str(utt), _resolve(wav, folder), transcript))
    return items


def read_folder(folder):
    """``[(id, audio path, None)]`` of the audio files under ``folder`` (sorted).

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("b.wav", "a.flac", "notes.txt"):
    ...     open(os.path.join(folder, name), "wb").close()
    >>> [(utt, os.path.basename(path)) for utt, path, _ in read_folder(folder)]
    [('a', 'a.flac'), ('b', 'b.wav')]
    """
    items = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(AUDIO_EXTENSIONS):
                path = os.path.join(root, name)
                utt = os.path.splitext(os.path.relpath(path, folder))[0].replace(os.sep, "/")
                items.append((utt, path, None))
    if not items:
        raise PredictError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {folder}")
    return items


def batch_items(source, data_root=None):
    """The items of ``--batch``: :func:`read_folder` of a folder, else :func:`read_manifest`.

    Example
    -------
    >>> batch_items("/no/such/manifest.json")
    Traceback (most recent call last):
    ...
    mmer_lobes.cli.predict.PredictError: --batch /no/such/manifest.json: no such manifest or folder
    """
    if os.path.isdir(source):
        items = read_folder(source)
    elif not os.path.isfile(source):
        raise PredictError(f"--batch {source}: no such manifest or folder")
    else:
        items = read_manifest(source, data_root)
    seen = {}
    for utt, path, _ in items:  # ids key the JSON output: one may not hide another
        if utt in seen:
            raise PredictError(f"--batch {source}: id {utt} names both {seen[utt]} and {path}")
        seen[utt] = path
    return items


def check_items(items):
    """Every audio file exists; otherwise one error naming the first missing ones.

    Example
    -------
    >>> check_items([("u1", "/no/u1.wav", None)])
    Traceback (most recent call last):
    ...
    mmer_lobes.cli.predict.PredictError: 1 of 1 audio files not found: /no/u1.wav (u1)
    """
    missing = [(utt, path) for utt, path, _ in items if not os.path.isfile(path)]
    if missing:
        shown = ", ".join(f"{path} ({utt})" for utt, path in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise PredictError(f"{len(missing)} of {len(items)} audio files not found: {shown}{more}")


def _csv_rows(results, classes):
    header = ["id", "path", "label", "decided_by", *[f"p_{c}" for c in classes],
              "speech_label", *[f"speech_p_{c}" for c in classes],
              "text_label", *[f"text_p_{c}" for c in classes], "flags", "duration", "error"]
    rows = [header]
    for utt, path, prediction, error in results:
        if prediction is None:
            rows.append([utt, path, "", "", *[""] * len(classes), "", *[""] * len(classes),
                         "", *[""] * len(classes), "", "", error])
            continue
        row = [utt, path, prediction.label, prediction.decided_by,
               *[f"{prediction.probabilities[c]:.6f}" for c in classes]]
        for modality in (prediction.speech, prediction.text):
            if modality is None:
                row += ["", *[""] * len(classes)]
            else:
                row += [modality.label, *[f"{modality.probabilities[c]:.6f}" for c in classes]]
        duration = "" if prediction.duration is None else f"{prediction.duration:.3f}"
        row += [";".join(prediction.flags), duration, ""]
        rows.append(row)
    return rows


def write_results(path, results, classes):
    """Writes ``[(id, audio path, prediction or None, error)]`` to a .json or .csv file.

    Example
    -------
    >>> import tempfile
    >>> from mmer_lobes.interfaces import EmotionPrediction
    >>> path = os.path.join(tempfile.mkdtemp(), "out.csv")
    >>> ok = EmotionPrediction("sad", {"neu": 0.25, "sad": 0.75}, "speech", duration=1.5)
    >>> write_results(path, [("u1", "u1.wav", ok, ""), ("u2", "u2.wav", None, "bad")], ["neu", "sad"])
    >>> rows = list(csv.DictReader(open(path)))
    >>> rows[0]["label"], rows[0]["p_sad"], rows[0]["duration"], rows[1]["error"]
    ('sad', '0.750000', '1.500', 'bad')
    """
    from mmer_lobes.files import atomic_open, atomic_write_json

    if path.lower().endswith(".json"):
        atomic_write_json(path, {
            utt: dict(prediction.to_dict() if prediction else {}, path=audio, error=error)
            for utt, audio, prediction, error in results
        })
    else:
        with atomic_open(path) as handle:
            csv.writer(handle, lineterminator="\n").writerows(_csv_rows(results, classes))


def _check_output(path):
    if not path:
        raise PredictError("--batch needs --output <file.csv|file.json>")
    if not path.lower().endswith((".csv", ".json")):
        raise PredictError(f"--output {path}: the file name must end in .csv or .json")


def _speech_part(model):
    """The speech recognizer inside ``model`` (itself, or a multimodal model's), or None."""
    if "speech" not in modalities(model):
        return None
    return getattr(model, "speech", model)


def _duration(path):
    """Seconds of audio a file's header declares (0 when it cannot be read: the read that
    follows reports the error)."""
    import soundfile

    try:
        return soundfile.info(path).duration
    except Exception:  # noqa: BLE001 - any unreadable file is reported when it is read
        return 0.0


def item_batches(items, batch_size, max_duration):
    """Indices of ``items`` in batches of at most ``batch_size`` clips of similar durations
    (longest first); a clip longer than ``max_duration`` (scored on windows) goes alone, so
    a batch never pads short clips to a long recording's length.

    Example
    -------
    >>> item_batches([("a", "/no/a.wav", None), ("b", "/no/b.wav", None)], 8, 30.0)
    [[0, 1]]
    """
    from mmer_lobes.batching import length_sorted_batches

    durations = [_duration(path) for _, path, _ in items]
    long = [i for i, seconds in enumerate(durations) if seconds > max_duration]
    whole = [i for i, seconds in enumerate(durations) if seconds <= max_duration]
    batches = [[whole[j] for j in batch] for batch in length_sorted_batches([durations[i] for i in whole], batch_size)]
    return batches + [[i] for i in long]


def _classify_batch(model, items, skip_errors):
    """``(utt, path, prediction or None, error)`` of each item, scored in one padded batch."""
    import torch

    from mmer_lobes.audio import AudioError
    from mmer_lobes.interfaces import InterfaceError
    from mmer_lobes.interfaces.inputs import read_audio_file

    held = modalities(model)
    rows, signals = {}, {}
    for index, (utt, path, transcript) in enumerate(items):
        try:
            if "speech" not in held:
                if not (transcript or "").strip():
                    raise InterfaceError(f"the text model needs a transcript, and entry {utt} has none")
            else:
                signals[index] = read_audio_file(path, model.sample_rate)
        except (AudioError, InterfaceError) as error:
            if not skip_errors:
                raise PredictError(f"{error} (entry {utt}); --skip_errors records it and goes on") from None
            rows[index] = (utt, path, None, str(error))
    ready = [i for i in range(len(items)) if i not in rows]
    if ready and "speech" not in held:
        predictions = model.predict_batch([items[i][2] for i in ready]).predictions()
    elif ready:
        longest = max(signals[i][0].shape[0] for i in ready)
        wavs = torch.zeros(len(ready), longest)
        for row, i in enumerate(ready):
            wavs[row, :signals[i][0].shape[0]] = signals[i][0]
        lens = torch.tensor([signals[i][0].shape[0] / longest for i in ready])
        if "text" in held:
            predictions = model.predict_batch(wavs, lens, [items[i][2] for i in ready]).predictions()
        else:
            predictions = model.predict_batch(wavs, lens).predictions()
        for i, prediction in zip(ready, predictions):  # as predict_file reports a file
            signal, reading_flags = signals[i]
            prediction.flags = reading_flags + prediction.flags
            prediction.duration = signal.shape[0] / model.sample_rate
            if (items[i][2] or "").strip() and "text" not in held:
                prediction.flags.append("text_ignored_no_text_model")
    for i, prediction in zip(ready, predictions if ready else []):
        rows[i] = (items[i][0], items[i][1], prediction, "")
    return [rows[i] for i in range(len(items))]


def _run_batch(model, args):
    from tqdm import tqdm

    _check_output(args.output)
    if args.audio or args.text:
        raise PredictError("--batch takes no audio file and no --text (use the manifest's transcript)")
    if args.batch_size is not None and args.batch_size < 1:
        raise PredictError(f"--batch_size must be at least 1, got {args.batch_size}")
    items = batch_items(args.batch, args.data_root)
    speech = _speech_part(model)
    if speech is not None and not args.skip_errors:
        check_items(items)  # before any work; with --skip_errors a missing file is a row
    if speech is not None:
        speech.max_batch_size = args.batch_size
        batches = item_batches(items, speech.batch_size, speech.input_handling.max_duration)
    else:
        size = args.batch_size or 32
        batches = [list(range(start, min(start + size, len(items)))) for start in range(0, len(items), size)]
    results = [None] * len(items)
    with tqdm(total=len(items), desc="mmer-predict", unit="clip", file=sys.stderr) as progress:
        for batch in batches:
            for index, row in zip(batch, _classify_batch(model, [items[i] for i in batch], args.skip_errors)):
                results[index] = row
            progress.update(len(batch))
    write_results(args.output, results, model.classes)
    failed = sum(1 for r in results if r[2] is None)
    print(f"{len(results) - failed} clips classified"
          + (f", {failed} failed (see the error field)" if failed else "") + f": {args.output}")


def _run_single(model, args):
    if args.output:
        raise PredictError("--output goes with --batch")
    if args.audio is None and args.text is None:
        raise PredictError("give an audio file, a --text, or --batch <manifest|folder>")
    prediction = classify(model, args.audio, args.text)
    name = args.audio
    if args.json:
        print(json.dumps(prediction.to_dict(), indent=2))
    else:
        print(format_prediction(prediction, name))


def _main(argv):
    args = _parse_args(argv)
    _quiet_libraries()
    if args.batch:  # output errors before the model is loaded
        _check_output(args.output)
    model = use_backend(load_model(args.model, args.device, args.savedir), args.model, args.backend)
    try:
        if args.batch:
            _run_batch(model, args)
        else:
            _run_single(model, args)
    except OSError as error:  # an output file that cannot be written
        raise PredictError(f"{error.filename or ''} {error.strerror or error}".strip()) from None


def main(argv=None):
    """Console entry point; returns the exit code (0, or 2 on bad input, with one line).

    Example
    -------
    >>> main(["--model", "/no/such/model", "--batch", "clips", "--output", "out.txt"])
    2
    """
    return run_script(_main, "mmer-predict", argv)


if __name__ == "__main__":
    sys.exit(main())
