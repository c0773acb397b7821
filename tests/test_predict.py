"""mmer-predict (mmer_lobes/cli/predict.py): the console script on single clips and batches,
and its one-line errors.

Fast tests cover argument, manifest and output handling without a model, and that only the
command-line package imports itself; the slow ones use the tiny folds trained and exported by
tests/test_interfaces.py (built once per session).
"""
import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from mmer_lobes.cli import predict
from mmer_lobes.interfaces import EmotionPrediction, ModalityPrediction
from mmer_lobes.scores import read_scores
from test_interfaces import CLASSES, REPO_ROOT, build_exported_fold, wav_path

SCRIPT = os.path.join(os.path.dirname(sys.executable), "mmer-predict")


@pytest.fixture(scope="session")
def exported(tmp_path_factory, iemocap_manifests, run_command):
    return build_exported_fold(tmp_path_factory, iemocap_manifests, run_command)


def run_cli(*args, cwd=None):
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def one_line_error(result, *words):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mmer-predict: error: "), result.stderr
    for word in words:
        assert word in lines[0]


# ------------------------------------------------------------------------------ fast ----


def test_console_script_is_installed():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("mmer-predict") == "mmer_lobes.cli.predict:main"
    assert os.path.isfile(SCRIPT)
    assert "from mmer_lobes.cli.predict import main" in open(SCRIPT, encoding="utf-8").read()


CLI_IMPORT = re.compile(r"^\s*(?:from\s+mmer_lobes\.cli\b|from\s+mmer_lobes\s+import\s+(?:\(\s*)?(?:[\w\s,]*,\s*)?cli\b"
                        r"|import\s+(?:[\w.\s]*,\s*)?mmer_lobes\.cli\b|from\s+\.+\s*cli\b|from\s+\.+\s+import\s+(?:[\w\s,]*,\s*)?cli\b)",
                        re.MULTILINE)


def test_cli_import_pattern():
    for line in ("from mmer_lobes.cli.predict import main", "from mmer_lobes.cli import predict",
                 "from mmer_lobes import cli", "from mmer_lobes import audio, cli", "import mmer_lobes.cli.predict",
                 "import os, mmer_lobes.cli", "    from mmer_lobes.cli.predict import load_model",
                 "from ..cli import predict", "from .. import cli"):
        assert CLI_IMPORT.search(line), line
    for line in ("from mmer_lobes.client import x", "import mmer_lobes.clips", "# see mmer_lobes.cli.predict",
                 "from mmer_lobes import clients", '"""mmer_lobes.cli.predict: the script"""'):
        assert not CLI_IMPORT.search(line), line


def test_only_the_cli_imports_the_cli():
    """The command line sits on top: no module of mmer_lobes outside mmer_lobes/cli imports it."""
    package = os.path.join(REPO_ROOT, "mmer_lobes")
    checked, offenders = 0, []
    for root, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if os.path.relpath(root, package).split(os.sep)[0] == "cli":
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                checked += 1
                with open(path, encoding="utf-8") as handle:
                    for match in CLI_IMPORT.finditer(handle.read()):
                        offenders.append(f"{os.path.relpath(path, REPO_ROOT)}: {match.group(0).strip()}")
    assert checked > 20 and offenders == []


def test_missing_model_and_bad_output_fail_before_loading(tmp_path, capsys):
    assert predict.main(["--model", str(tmp_path / "none"), "clip.wav"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mmer-predict: error: model folder {tmp_path / 'none'} does not exist")
    assert predict.main(["--model", str(tmp_path), "clip.wav"]) == 2
    assert "holds no hyperparams.yaml" in capsys.readouterr().err
    assert predict.main(["--model", str(tmp_path / "none"), "--batch", "m.json", "--output", "o.txt"]) == 2
    assert "must end in .csv or .json" in capsys.readouterr().err
    assert predict.main(["--model", str(tmp_path / "none"), "--batch", "m.json"]) == 2
    assert "--batch needs --output" in capsys.readouterr().err


def test_manifest_reading(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({
        "u1": {"wav": "{data_root}/x/u1.wav", "transcript": "Hi."},
        "u2": {"wav": "a.wav"},
    }))
    items = predict.read_manifest(str(manifest), data_root="/data")
    assert items == [("u1", "/data/x/u1.wav", "Hi."), ("u2", str(tmp_path / "a.wav"), None)]
    with pytest.raises(predict.PredictError, match="pass --data_root"):
        predict.read_manifest(str(manifest))
    manifest.write_text(json.dumps({"u1": {"transcript": "no wav"}}))
    with pytest.raises(predict.PredictError, match="entry u1 has no 'wav'"):
        predict.read_manifest(str(manifest))
    manifest.write_text("{not json")
    with pytest.raises(predict.PredictError, match="not valid JSON"):
        predict.read_manifest(str(manifest))
    manifest.write_text(json.dumps([{"wav": "/x/clip.wav", "transcript": "Oh."}]))
    assert predict.read_manifest(str(manifest)) == [("clip", "/x/clip.wav", "Oh.")]
    with pytest.raises(predict.PredictError, match="not found: /x/clip.wav"):
        predict.check_items(predict.read_manifest(str(manifest)))
    with pytest.raises(predict.PredictError, match="no such manifest or folder"):
        predict.batch_items(str(tmp_path / "nothing.json"))


def test_folder_reading(tmp_path):
    for name in ("b.wav", "sub/a.flac", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    items = predict.read_folder(str(tmp_path))
    assert [(u, os.path.relpath(p, tmp_path)) for u, p, _ in items] == [("b", "b.wav"), ("sub/a", "sub/a.flac")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(predict.PredictError, match="no audio files"):
        predict.read_folder(str(tmp_path / "empty"))


def test_report_format():
    prediction = EmotionPrediction(
        label="ang", probabilities={"ang": 0.7, "sad": 0.3}, decided_by="fusion:weighted",
        speech=ModalityPrediction("sad", {"ang": 0.4, "sad": 0.6}),
        text=ModalityPrediction("ang", {"ang": 0.9, "sad": 0.1}),
        flags=["padded_short_clip"], duration=0.25,
    )
    assert predict.format_prediction(prediction, "clip.wav").splitlines() == [
        "clip.wav (0.25 s)",
        "label: ang  [fusion:weighted]",
        "probabilities: ang 0.700  sad 0.300",
        "speech: sad  (ang 0.400  sad 0.600)",
        "text:   ang  (ang 0.900  sad 0.100)",
        "flags: padded_short_clip",
    ]


# ------------------------------------------------------------------------------ slow ----


@pytest.mark.slow
def test_single_clip_with_text(exported):
    utt = sorted(exported["test_manifest"])[5]
    transcript = exported["test_manifest"][utt]["transcript"]
    result = run_cli("--model", exported["iface"], wav_path(exported, utt), "--text", transcript, "--json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    fused = read_scores(os.path.join(exported["fusion"], "weighted", "scores", "test.csv"))
    speech = read_scores(os.path.join(exported["speech"], "scores", "test.csv"))
    text = read_scores(os.path.join(exported["text"], "scores", "test.csv"))
    for got, reference in ((output, fused), (output["speech"], speech), (output["text"], text)):
        expected = np.exp(reference.scores[reference.ids.index(utt)])
        np.testing.assert_allclose([got["probabilities"][c] for c in CLASSES], expected, atol=1e-5)
        assert got["label"] == CLASSES[int(np.argmax(expected))]
    assert output["decided_by"] == "fusion:weighted" and output["flags"] == []


@pytest.mark.slow
def test_batch_manifest_to_csv(exported, tmp_path):
    ids = sorted(exported["test_manifest"])[:4]
    manifest = {u: dict(exported["test_manifest"][u]) for u in ids}
    manifest[ids[1]]["transcript"] = ""
    del manifest[ids[2]]["transcript"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    out = tmp_path / "results" / "out.csv"
    result = run_cli("--model", exported["iface"], "--batch", str(path), "--output", str(out),
                     "--data_root", exported["data_folder"])
    assert result.returncode == 0, result.stderr
    assert "4 clips classified" in result.stdout and "100%" in result.stderr  # tqdm bar
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ids
    assert [r["decided_by"] for r in rows] == ["fusion:weighted", "speech", "speech", "fusion:weighted"]
    assert rows[1]["flags"] == "speech_only_empty_text" and rows[2]["flags"] == "speech_only_no_text"
    assert rows[1]["text_label"] == "" and rows[0]["text_label"] in CLASSES
    for row in rows:
        total = sum(float(row[f"p_{c}"]) for c in CLASSES)
        assert abs(total - 1.0) < 1e-5 and row["label"] in CLASSES and row["error"] == ""


@pytest.mark.slow
def test_batch_size_changes_no_result(exported, tmp_path, capsys):
    """Eight clips of mixed durations, with and without transcripts, scored 5 at a time (two
    padded batches) give the rows and probabilities of one clip at a time, the CPU default."""
    ids = sorted(exported["test_manifest"])[:8]
    manifest = {u: dict(exported["test_manifest"][u]) for u in ids}
    del manifest[ids[3]]["transcript"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    outputs = {}
    for size in (None, 5):
        out = tmp_path / f"out_{size}.csv"
        flag = [] if size is None else ["--batch_size", str(size)]
        assert predict.main(["--model", exported["iface"], "--batch", str(path), "--output", str(out),
                             "--data_root", exported["data_folder"], *flag]) == 0
        with open(out, newline="") as handle:
            outputs[size] = list(csv.DictReader(handle))
    assert [r["id"] for r in outputs[5]] == ids == [r["id"] for r in outputs[None]]
    for alone, batched in zip(outputs[None], outputs[5]):
        assert alone["label"] == batched["label"] and alone["flags"] == batched["flags"]
        for column in alone:
            if column.startswith(("p_", "speech_p_", "text_p_")) and alone[column]:
                assert abs(float(alone[column]) - float(batched[column])) < 1e-5, column
    assert predict.main(["--model", exported["iface"], "--batch", str(path), "--output", str(tmp_path / "x.csv"),
                         "--batch_size", "0"]) == 2
    assert "--batch_size must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_onnx_backend_gives_the_torch_scores(exported, tmp_path, capsys):
    """The folder exported with --onnx=True holds speech.onnx (recorded in export_info.json);
    --backend onnx scores the speech network on onnxruntime, with the PyTorch results."""
    info = json.load(open(os.path.join(exported["iface"], "export_info.json")))
    assert info["onnx"]["file"] == "speech.onnx" and info["onnx"]["n_mels"] == 32
    ids = sorted(exported["test_manifest"])[:6]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({u: exported["test_manifest"][u] for u in ids}))
    outputs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.csv"
        assert predict.main(["--model", exported["iface"], "--batch", str(path), "--output", str(out),
                             "--data_root", exported["data_folder"], "--backend", backend, "--batch_size", "4"]) == 0
        with open(out, newline="") as handle:
            outputs[backend] = list(csv.DictReader(handle))
    for torch_row, onnx_row in zip(outputs["torch"], outputs["onnx"]):
        assert torch_row["id"] == onnx_row["id"] and torch_row["label"] == onnx_row["label"]
        for column in torch_row:
            if column.startswith(("p_", "speech_p_")):
                assert abs(float(torch_row[column]) - float(onnx_row[column])) < 1e-4, column
    # a folder exported without --onnx says how to get one
    assert predict.main(["--model", exported["iface_speech"], str(tmp_path / "x.wav"), "--backend", "onnx"]) == 2
    assert "has no speech.onnx: export the model again with recipes/export.py ... --onnx=True" in capsys.readouterr().err


@pytest.mark.slow
def test_batch_folder_to_json_and_bad_clips(exported, tmp_path, capsys):
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    ids = sorted(exported["test_manifest"])[:2]
    data, rate = soundfile.read(wav_path(exported, ids[0]))
    soundfile.write(str(folder / "one.wav"), data, rate)
    soundfile.write(str(folder / "sub" / "two.flac"), data[: rate // 10], rate)
    out = tmp_path / "out.json"
    model = exported["iface_speech"]
    assert predict.main(["--model", model, "--batch", str(folder), "--output", str(out)]) == 0
    results = json.loads(out.read_text())
    assert sorted(results) == ["one", "sub/two"]
    assert results["sub/two"]["flags"] == ["padded_short_clip"]
    assert results["one"]["decided_by"] == "speech" and results["one"]["error"] == ""

    # a corrupt clip stops the batch (and nothing is written), or is recorded with --skip_errors
    (folder / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    out2 = tmp_path / "out2.csv"
    assert predict.main(["--model", model, "--batch", str(folder), "--output", str(out2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mmer-predict: error: cannot read audio file") and "bad.wav" in err
    assert not out2.exists()
    assert predict.main(["--model", model, "--batch", str(folder), "--output", str(out2), "--skip_errors"]) == 0
    with open(out2, newline="") as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    assert "cannot read audio file" in rows["bad"]["error"] and rows["bad"]["label"] == ""
    assert rows["one"]["label"] in CLASSES

    # a manifest that points at missing files: stops before any work, or rows with --skip_errors
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"x": {"wav": str(tmp_path / "missing.wav")},
                                    "y": {"wav": str(folder / "one.wav")}}))
    assert predict.main(["--model", model, "--batch", str(manifest), "--output", str(out2)]) == 2
    assert "1 of 2 audio files not found" in capsys.readouterr().err
    assert predict.main(["--model", model, "--batch", str(manifest), "--output", str(out2), "--skip_errors"]) == 0
    with open(out2, newline="") as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    assert "not found" in rows["x"]["error"] and rows["y"]["label"] == results["one"]["label"]

    # two clips with one id would overwrite each other in the JSON output
    soundfile.write(str(folder / "one.flac"), data, rate)
    assert predict.main(["--model", model, "--batch", str(folder), "--output", str(out)]) == 2
    assert "id one names both" in capsys.readouterr().err


@pytest.mark.slow
def test_bad_single_inputs_exit_2(exported, tmp_path):
    missing = str(tmp_path / "missing.wav")
    one_line_error(run_cli("--model", exported["iface_speech"], missing), "audio file not found", missing)
    empty = str(tmp_path / "empty.wav")
    soundfile.write(empty, np.zeros(0), 16000)
    one_line_error(run_cli("--model", exported["iface_speech"], empty), "holds no samples", empty)


@pytest.mark.slow
def test_cli_writes_nothing_in_the_current_folder(exported, tmp_path):
    """mmer-predict without --savedir reads the model folder in place."""
    utt = sorted(exported["test_manifest"])[0]
    before = sorted(os.listdir(exported["iface"]))
    result = run_cli("--model", exported["iface"], wav_path(exported, utt), "--text", "Hello.",
                     cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path) == [] and sorted(os.listdir(exported["iface"])) == before


@pytest.mark.slow
def test_models_of_one_modality(exported, capsys):
    """load_model picks the class from export_info.json; an input the model cannot use is
    flagged, or a one-line error when nothing usable is left."""
    utt = sorted(exported["test_manifest"])[1]
    path, transcript = wav_path(exported, utt), exported["test_manifest"][utt]["transcript"]
    speech, text = predict.load_model(exported["iface_speech"]), predict.load_model(exported["iface_text"])
    assert type(speech).__name__ == "SpeechEmotionRecognizer" and predict.modalities(speech) == ["speech"]
    assert type(text).__name__ == "TextEmotionRecognizer" and predict.modalities(text) == ["text"]
    assert type(predict.load_model(exported["iface"])).__name__ == "MultimodalEmotionRecognizer"

    result = predict.classify(speech, path, transcript)
    assert result.decided_by == "speech" and result.flags == ["text_ignored_no_text_model"]
    assert predict.classify(speech, path).flags == []
    result = predict.classify(text, path, transcript)
    assert result.decided_by == "text" and result.flags == ["audio_ignored_no_speech_model"]
    reference = read_scores(os.path.join(exported["text"], "scores", "test.csv"))
    np.testing.assert_allclose([result.probabilities[c] for c in CLASSES],
                               np.exp(reference.scores[reference.ids.index(utt)]), atol=1e-5)
    with pytest.raises(predict.PredictError, match="this model has no speech model: give a transcript"):
        predict.classify(text, path)

    assert predict.main(["--model", exported["iface_text"], "--text", transcript, "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["decided_by"] == "text" and output["speech"] is None
    assert output["probabilities"] == result.probabilities
    # (in-process, the text model's loading bar shows: transformers was imported before
    # mmer-predict could turn it off; the console script's stderr is the one line alone)
    one_line_error(run_cli("--model", exported["iface_text"], path),
                   "mmer-predict: error: this model has no speech model: give a transcript")


@pytest.mark.slow
def test_text_alone_to_a_speech_model_is_a_one_line_error(exported):
    result = run_cli("--model", exported["iface_speech"], "--text", "Hello there.")
    one_line_error(result, "no text model")
