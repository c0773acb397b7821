"""recipes/export.py and the interface folders: the files it writes (hyperparams.yaml, model
card, export_info.json), loading them with SpeechBrain alone (``foreign_class``, the project
blocked) against the project's interfaces on the checked-in inference YAMLs, in-place loading
(nothing written), the folders of one modality, the overrides of the inference YAMLs, and the
recipe's one-line errors.

The exported folders are the tiny folds trained by tests/test_interfaces.py (built once per
session): those tests are slow. The in-place loading tests use a random tiny folder (fast).
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import yaml
from ruamel.yaml import YAML

from mmer_lobes.audio import load_audio
from mmer_lobes.encoder_folders import render_template
from mmer_lobes.hparams_files import compose_yaml, parse_yaml_tree, read_yaml_file
from mmer_lobes.errors import run_script
from mmer_lobes.interfaces import (
    INPUT_HANDLING,
    InterfaceError,
    MultimodalEmotionRecognizer,
    SpeechEmotionRecognizer,
    TextEmotionRecognizer,
)
from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder
from mmer_lobes.scores import read_scores
from test_bundle import BLOCKER
from test_interfaces import CLASSES, INFERENCE_YAML, REPO_ROOT, build_exported_fold, probabilities, wav_path

EXPORT_YAML = os.path.join(REPO_ROOT, "hparams", "export.yaml")
PROJECT_TAG = re.compile(r"!(new|name|apply|applyref|module):(mmer_lobes|data_prep)\b")
FOLDERS = {  # the exported folders of build_exported_fold: class, inference YAML
    "iface": (MultimodalEmotionRecognizer, "multimodal"),
    "iface_speech": (SpeechEmotionRecognizer, "speech"),
    "iface_text": (TextEmotionRecognizer, "text"),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, iemocap_manifests, run_command):
    return build_exported_fold(tmp_path_factory, iemocap_manifests, run_command)


@pytest.fixture(scope="module")
def export_module(import_recipe):
    return import_recipe("export")


@pytest.fixture
def export(export_module, capsys):
    """Runs recipes/export.py in-process as its script does; returns (exit code, stderr)."""
    def run(*args):
        capsys.readouterr()
        code = run_script(export_module.main, "export.py", [str(a) for a in args])
        return code, capsys.readouterr().err
    return run


def one_line_error(result, *words):
    code, stderr = result
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("export.py: error: "), stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def read_info(folder):
    with open(os.path.join(folder, "export_info.json"), encoding="utf-8") as handle:
        return json.load(handle)


def read_yaml_values(path):
    with open(path, encoding="utf-8") as handle:
        return YAML(typ="rt").load(handle)


def test_export_errors_are_one_line(export, tmp_path):
    out = str(tmp_path / "out")
    assert "usage:" in one_line_error(export())
    one_line_error(export(EXPORT_YAML), "--output_folder is required")
    one_line_error(export(EXPORT_YAML, "--output_folder", out), "--speech_folder and/or --text_folder")
    one_line_error(export(EXPORT_YAML, "--speech_folder", tmp_path / "nope", "--output_folder", out),
                   "is not a folder")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one_line_error(export(EXPORT_YAML, "--speech_folder", tmp_path / "a", "--text_folder", tmp_path / "b",
                          "--output_folder", out), "--fusion_folder")
    one_line_error(export(EXPORT_YAML, "--speech_folder", tmp_path / "a", "--output_folder", out),
                   "is it a recipe output folder")
    # the input handling left export.yaml: a setting of its own there is an unknown key
    for key in ("--window_hop=5.0", "--silence_rms=0.0"):
        one_line_error(export(EXPORT_YAML, "--speech_folder", tmp_path / "a", "--output_folder", out, key),
                       "export.yaml")
    one_line_error(export(tmp_path / "missing.yaml", "--output_folder", out), "cannot read")
    assert not os.path.exists(out)


# ------------------------------------------------------------- the folders (slow) ----


@pytest.mark.slow
def test_export_folder_layout(exported):
    folder = exported["iface"]
    for name in ("hyperparams.yaml", "encoder.ckpt", "classifier.ckpt", "text_classifier.ckpt", "fusion.json",
                 "label_encoder.txt", "README.md", "custom_interface.py", "export_info.json"):
        assert os.path.isfile(os.path.join(folder, name)), name
    for name in ("encoder", "classifier", "text_classifier"):
        state = torch.load(os.path.join(folder, f"{name}.ckpt"), weights_only=True)
        assert state and all(torch.is_tensor(v) for v in state.values())
    assert sorted(os.listdir(exported["iface_speech"])) == sorted(
        ["hyperparams.yaml", "encoder.ckpt", "classifier.ckpt", "label_encoder.txt", "README.md",
         "custom_interface.py", "export_info.json"])
    assert sorted(os.listdir(exported["iface_text"])) == sorted(
        ["hyperparams.yaml", "text_classifier.ckpt", "label_encoder.txt", "README.md", "custom_interface.py",
         "export_info.json"])

    text = open(os.path.join(folder, "hyperparams.yaml"), encoding="utf-8").read()
    assert "SAFETY" in text and not PROJECT_TAG.search(text)
    assert "pretrainer: !new:custom_interface.CombinedPretrainer" in text
    assert "!new:custom_interface.FolderPretrainer" in text and "!name:custom_interface.load_json_into" in text
    assert "text_source: &" in text and "!apply:custom_interface.resolve_text_model" in text
    values = read_yaml_values(os.path.join(folder, "hyperparams.yaml"))
    speech, text_part = values["speech"], values["text"]
    # the trained fold's encoder definition and values (tests/test_interfaces.py TINY_SPEECH) ...
    definition = speech["encoder_definition"]
    assert list(definition["channels"]) == [4, 8, 16, 32] and definition["n_mels"] == 32
    assert speech["embedding_size"] == 32 and "features" not in definition and "architecture" not in speech
    assert definition["encoder"]["n_mels"] == 32 and definition["compute_features"]["n_mels"] == 32
    assert speech["encoder"] is definition["encoder"]  # one object, referenced
    assert definition["encoder"].tag.value == "!new:custom_interface.ResNetEncoder"
    assert speech["n_classes"] == text_part["n_classes"] == 4
    # ... and the input handling of hparams/inference/speech.yaml
    checked_in = read_yaml_values(INFERENCE_YAML["speech"])
    assert {k: speech[k] for k in INPUT_HANDLING} == {k: checked_in[k] for k in INPUT_HANDLING}
    with open(os.path.join(exported["text"], "hyperparams.yaml"), encoding="utf-8") as handle:
        trained_text_model = YAML(typ="rt").load(handle)["text_model"]
    assert text_part["text_model"] == trained_text_model

    with open(os.path.join(exported["fusion"], "weighted", "fusion_params.json")) as handle:
        params = json.load(handle)["params"]
    with open(os.path.join(folder, "fusion.json")) as handle:
        assert json.load(handle) == params
    with open(os.path.join(folder, "label_encoder.txt")) as handle:
        assert [line.split("=>")[0].strip().strip("'") for line in handle][:4] == CLASSES

    info = read_info(folder)
    assert info["synthetic_corpus"] is True and info["modalities"] == ["speech", "text"]
    assert info["interface_class"] == "MultimodalEmotionRecognizer" and info["classes"] == CLASSES
    assert info["inference"]["yaml"] == "hparams/inference/multimodal.yaml"
    overrides = info["inference"]["overrides"]
    assert overrides["speech"] == {"embedding_size": 32, "n_classes": 4}
    assert info["inference"]["encoder_definition"] == os.path.join(exported["speech"], "encoder.yaml")
    assert overrides["text"]["text_model"] == trained_text_model
    assert info["fusion"]["params"] == params and set(info["checkpoints"]) == {"encoder", "classifier", "text_classifier"}
    for name, kind in (("iface_speech", "speech"), ("iface_text", "text")):
        info = read_info(exported[name])
        assert info["modalities"] == [kind] and info["fusion"] is None
        assert info["interface_class"] == FOLDERS[name][0].__name__
        assert info["inference"]["yaml"] == f"hparams/inference/{kind}.yaml"
        assert info["inference"]["overrides"]["n_classes"] == 4


def _front_matter(card):
    assert card.startswith("---\n")
    head, _, body = card[4:].partition("\n---\n")
    return yaml.safe_load(head), body


def _test_ua(folder):
    with open(os.path.join(folder, "metrics_test.json")) as handle:
        return json.load(handle)["UA"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FOLDERS))
def test_model_card(exported, name):
    """The card's hub front matter parses as YAML; its test UA figures are the folds'
    metrics_test.json UA rounded to 2 decimals; its text names the class to load and warns
    about the synthetic corpus and about trust."""
    with open(os.path.join(exported[name], "README.md"), encoding="utf-8") as handle:
        card = handle.read()
    meta, body = _front_matter(card)
    assert {"license", "tags", "datasets", "model-index"} <= set(meta)
    assert meta["license"] == "other" and meta["datasets"] == ["iemocap"] and meta["library_name"] == "speechbrain"
    modalities = read_info(exported[name])["modalities"]
    tags = set(meta["tags"])
    assert {"speechbrain", "emotion-recognition"} <= tags
    assert ("audio-classification" in tags) == ("speech" in modalities)
    assert ("text-classification" in tags) == ("text" in modalities)
    assert ("late-fusion" in tags) == (name == "iface")
    expected = {f"{kind} model": _test_ua(exported[kind]) for kind in modalities}
    if name == "iface":
        expected["weighted fusion"] = _test_ua(os.path.join(exported["fusion"], "weighted"))
    results = meta["model-index"][0]["results"]
    got = {}
    for result in results:
        model = result["task"]["name"].split("(")[1].rstrip(")")
        metrics = {m["name"]: m["value"] for m in result["metrics"]}
        got[model] = metrics["UA"]
        assert "session 5" in result["dataset"]["name"] and "synthetic" in result["dataset"]["name"]
    assert got == {model: round(ua, 2) for model, ua in expected.items()}
    for ua in expected.values():
        assert f"| {ua:.2f} |" in body
    assert f'classname="{FOLDERS[name][0].__name__}"' in body
    assert "synthetic corpus" in body and "trust" in body


# ------------------------------------ loading without the project: foreign_class (slow) ----

FOREIGN_SCRIPT = BLOCKER + textwrap.dedent(r'''
    import json, os
    import torch
    from speechbrain.inference.interfaces import foreign_class

    cfg = json.load(open(sys.argv[1]))
    model = foreign_class(source=cfg["folder"], pymodule_file="custom_interface.py", classname=cfg["classname"])
    assert type(model).__name__ == cfg["classname"] and type(model).__module__ == "custom_interface"
    # the objects of hyperparams.yaml come from the folder's custom_interface.py
    module = sys.modules["custom_interface"]
    assert os.path.realpath(os.path.dirname(module.__file__)) == os.path.realpath(cfg["folder"])
    inputs = torch.load(cfg["inputs"], weights_only=True)
    out = {}
    for case, args in cfg["cases"].items():
        values = [inputs[a] if isinstance(a, str) and a in inputs else a for a in args]
        out[case] = model.classify_batch(*values)[0]
        out[case + "_flags"] = model.predict_batch(*values).flags
    torch.save(out, cfg["output"])
    assert_no_project_module()
''')


def _inputs(fold):
    """Clips of different lengths (a short one padded, a long one windowed) as a padded batch."""
    from speechbrain.utils.data_utils import batch_pad_right

    ids = sorted(fold["test_manifest"])[:3]
    signals = [load_audio(wav_path(fold, u)) for u in ids]
    short = signals[0][:3200]  # 0.2 s
    long = torch.cat(signals * (1 + int(31 * 16000 / sum(s.shape[0] for s in signals))))[:32 * 16000]
    wavs, lens = batch_pad_right([signals[0], short, signals[1], long, signals[2]])
    texts = [fold["test_manifest"][u]["transcript"] for u in ids]
    return {"wavs": wavs, "lens": lens}, [texts[0], None, "", "so very angry " * 200, texts[2]], \
        [texts[0], "so very angry " * 200, texts[1], "Fine."]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FOLDERS))
def test_foreign_class_without_the_project_gives_the_project_scores(exported, name, tmp_path):
    """An exported folder loads with SpeechBrain's foreign_class in a process where importing
    mmer_lobes and data_prep fails, imports neither, and gives the log-posteriors (to 1e-6)
    of the project's interface on the checked-in inference YAML with the export's overrides and
    encoder definition."""
    folder = exported[name]
    cls, kind = FOLDERS[name]
    info = read_info(folder)
    assert info["interface_class"] == cls.__name__
    tensors, mixed_texts, texts = _inputs(exported)
    if kind == "multimodal":
        cases = {"with_text": ["wavs", "lens", mixed_texts], "without_text": ["wavs", "lens", None]}
    elif kind == "speech":
        cases = {"speech": ["wavs", "lens"], "speech_full": ["wavs"]}
    else:
        cases = {"text": [texts], "one_text": [texts[:1]]}
    torch.save(tensors, tmp_path / "inputs.pt")
    cfg = {"folder": folder, "classname": cls.__name__, "inputs": str(tmp_path / "inputs.pt"),
           "cases": cases, "output": str(tmp_path / "out.pt")}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "foreign.py").write_text(FOREIGN_SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(os.listdir(folder))
    result = subprocess.run([sys.executable, str(tmp_path / "foreign.py"), str(tmp_path / "cfg.json")],
                            cwd=str(work), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert os.listdir(work) == [] and sorted(os.listdir(folder)) == before  # nothing written
    foreign = torch.load(tmp_path / "out.pt", weights_only=True)

    model = project_model(cls, folder, info, str(tmp_path))
    # the project's classes, not the folder's bundle
    assert type(model).__module__.startswith("mmer_lobes.interfaces.")
    assert {type(m).__module__.split(".")[0] for m in model.mods.values()} <= {"mmer_lobes", "speechbrain"}
    for case, args in cases.items():
        values = [tensors[a] if isinstance(a, str) and a in tensors else a for a in args]
        out_prob = model.classify_batch(*values)[0]
        assert foreign[case].shape == out_prob.shape == (len(values[0]), 4)
        torch.testing.assert_close(foreign[case], out_prob, atol=1e-6, rtol=0, msg=f"{name}: {case}")
        assert foreign[case + "_flags"] == model.predict_batch(*values).flags
    if kind != "text":
        flags = foreign[next(iter(cases)) + "_flags"]
        assert "padded_short_clip" in flags[1] and "windowed_long_clip" in flags[3]
    if kind == "multimodal":
        assert foreign["with_text_flags"][2] == ["speech_only_empty_text"]
        assert "truncated_text" in foreign["with_text_flags"][3]
        np.testing.assert_allclose(foreign["with_text"][1].numpy(), foreign["without_text"][1].numpy(), atol=1e-7)


def project_model(cls, folder, info, scratch):
    """The project's interface class on the checked-in inference YAML with what
    export_info.json records: its overrides and the fold's encoder definition.

    Speech and text load it as a user would, the definition given as
    ``encoder_definition: !include:<file>``. HyperPyYAML cannot pass such an include through
    multimodal.yaml's own includes, so the multimodal YAML is composed from the two resolved
    parts (mmer_lobes.hparams_files.compose_yaml, as the exporter composes it) in ``scratch``.
    """
    inference, modalities = info["inference"], info["modalities"]
    if modalities == ["text"]:
        return cls.from_hparams(source=folder, hparams_file=INFERENCE_YAML["text"], overrides=inference["overrides"])
    speech_overrides = inference["overrides"] if modalities == ["speech"] else inference["overrides"]["speech"]
    speech = "".join(f"{key}: {json.dumps(value)}\n" for key, value in speech_overrides.items()) + \
        f"encoder_definition: !include:{inference['encoder_definition']}\n"
    if modalities == ["speech"]:
        return cls.from_hparams(source=folder, hparams_file=INFERENCE_YAML["speech"], overrides=speech)
    parts = {"speech": compose_yaml(INFERENCE_YAML["speech"], speech_overrides,
                                    {"encoder_definition": read_yaml_file(inference["encoder_definition"])}),
             "text": compose_yaml(INFERENCE_YAML["text"], inference["overrides"]["text"])}
    path = os.path.join(scratch, "multimodal.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(compose_yaml(INFERENCE_YAML["multimodal"], nodes={k: parse_yaml_tree(v) for k, v in parts.items()}))
    return cls.from_hparams(source=folder, hparams_file=path)


def write_tiny_definition(folder, **changes):
    """The encoder definition of the tiny interface's network (with ``changes``), and the
    overrides that put it into the checked-in inference YAML."""
    path = os.path.join(folder, "encoder.yaml")
    values = {"n_mels": 16, "channels": [2, 4, 4, 8], "blocks": [1, 1, 1, 1], **changes}
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_template("paper_resnet34", values))
    return f"encoder_definition: !include:{path}\nembedding_size: 8\nn_classes: 4\n"


# ------------------------------------- interface folders load in place (fast) ----

def write_tiny_interface(folder):
    """A speech interface folder in the layout of recipes/export.py (random tiny model), its
    hyperparams.yaml written by hand with the project's tags."""
    os.makedirs(folder)
    encoder = ResNetEncoder(n_mels=16, channels=[2, 4, 4, 8], blocks=[1, 1, 1, 1])
    classifier = EmbeddingClassifier(encoder.output_size, 4, embedding_size=8)
    torch.save(encoder.state_dict(), os.path.join(folder, "encoder.ckpt"))
    torch.save(classifier.state_dict(), os.path.join(folder, "classifier.ckpt"))
    with open(os.path.join(folder, "label_encoder.txt"), "w", encoding="utf-8") as handle:
        handle.write("".join(f"'{c}' => {i}\n" for i, c in enumerate(CLASSES)))
        handle.write("================\n'starting_index' => 0\n")
    with open(os.path.join(folder, "export_info.json"), "w", encoding="utf-8") as handle:
        json.dump({"modalities": ["speech"], "interface_class": "SpeechEmotionRecognizer"}, handle)
    with open(os.path.join(folder, "hyperparams.yaml"), "w", encoding="utf-8") as handle:
        handle.write("""n_classes: 4
sample_rate: 16000
min_duration: 0.5
max_duration: 30.0
window_duration: 10.0
window_hop: 5.0
window_batch_size: 1
silence_rms: 1.0e-4
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: 16
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
encoder: !new:mmer_lobes.resnet.ResNetEncoder
    n_mels: 16
    channels: [2, 4, 4, 8]
    blocks: [1, 1, 1, 1]
classifier: !new:mmer_lobes.resnet.EmbeddingClassifier
    input_size: !apply:getattr [!ref <encoder>, output_size]
    n_classes: 4
    embedding_size: 8
log_softmax: !new:speechbrain.nnet.activations.Softmax
    apply_log: True
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    encoder: !ref <encoder>
    classifier: !ref <classifier>
pretrainer: !new:mmer_lobes.interfaces.loading.FolderPretrainer
    loadables:
        encoder: !ref <encoder>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        encoder: encoder.ckpt
        classifier: classifier.ckpt
        label_encoder: label_encoder.txt
    custom_hooks:
        encoder: !name:mmer_lobes.interfaces.loading.load_state_dict_strict
        classifier: !name:mmer_lobes.interfaces.loading.load_state_dict_strict
""")
    return folder


def _legacy_savedir_default(monkeypatch):
    """Older SpeechBrain releases: from_hparams without savedir collected the folder's files
    in ./pretrained_models/<class>-<md5(source)> (1.1.2 writes nothing); emulated here, so
    the interfaces are checked against both behaviours."""
    import hashlib

    from speechbrain.inference import interfaces as sb_interfaces

    def from_hparams(cls, source, hparams_file="hyperparams.yaml", savedir=None, **kwargs):
        if savedir is None:
            digest = hashlib.md5(str(source).encode("UTF-8", errors="replace")).hexdigest()
            savedir = f"./pretrained_models/{cls.__name__}-{digest}"
        return sb_interfaces.pretrained_from_hparams(cls, source=source, hparams_file=hparams_file,
                                                     savedir=savedir, **kwargs)

    monkeypatch.setattr(sb_interfaces.Pretrained, "from_hparams", classmethod(from_hparams))


@pytest.mark.parametrize("legacy", [False, True], ids=["speechbrain", "legacy_savedir_default"])
def test_loading_without_savedir_writes_nothing(tmp_path, monkeypatch, legacy):
    from mmer_lobes.cli.predict import load_model

    folder = write_tiny_interface(str(tmp_path / "iface"))
    before = sorted(os.listdir(folder))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if legacy:
        _legacy_savedir_default(monkeypatch)
    wav = torch.randn(1, 16000, generator=torch.Generator().manual_seed(6)) * 0.1
    scores = []
    for source in (folder, os.path.relpath(folder)):
        model = SpeechEmotionRecognizer.from_hparams(source=source)
        assert model.classes == CLASSES
        out_prob, _, _, text_lab = model.classify_batch(wav)
        assert text_lab[0] in CLASSES
        scores.append(out_prob)
    # the checked-in inference YAML against the folder's checkpoints: the same model
    model = SpeechEmotionRecognizer.from_hparams(source=folder, hparams_file=INFERENCE_YAML["speech"],
                                                 overrides=write_tiny_definition(str(tmp_path)))
    assert model.input_handling.silence_rms == 1e-4
    scores.append(model.classify_batch(wav)[0])
    for other in scores[1:]:
        torch.testing.assert_close(other, scores[0], atol=1e-6, rtol=0)
    assert type(load_model(folder)) is SpeechEmotionRecognizer  # mmer-predict's loader
    assert os.listdir(work) == []
    assert sorted(os.listdir(folder)) == before  # loaded in place: nothing linked there either
    # an explicit savedir is SpeechBrain's business, as before
    saved = SpeechEmotionRecognizer.from_hparams(source=folder, savedir=str(tmp_path / "save"))
    assert saved.classes == CLASSES and os.path.isfile(tmp_path / "save" / "hyperparams.yaml")


def test_a_checkpoint_that_does_not_fit_is_an_error(tmp_path):
    """Checkpoints load strictly: the YAML's architecture must be the checkpoint's."""
    folder = write_tiny_interface(str(tmp_path / "iface"))
    overrides = write_tiny_definition(str(tmp_path), channels=[2, 4, 8, 8])
    with pytest.raises(InterfaceError, match="encoder.ckpt does not fit ResNetEncoder"):
        SpeechEmotionRecognizer.from_hparams(source=folder, hparams_file=INFERENCE_YAML["speech"], overrides=overrides)
    with pytest.raises(InterfaceError, match="holds no hyperparams.yaml"):
        SpeechEmotionRecognizer.from_hparams(source=str(tmp_path))


# ------------------------------------ the exported folders of one modality (slow) ----


@pytest.fixture(scope="module")
def clip(exported):
    """(utterance id, 16 kHz mono path, transcript) of one test utterance."""
    utt = sorted(exported["test_manifest"])[0]
    return utt, wav_path(exported, utt), exported["test_manifest"][utt]["transcript"]


@pytest.mark.slow
def test_text_only_and_speech_only_interfaces(exported, clip):
    utt, path, transcript = clip
    speech = SpeechEmotionRecognizer.from_hparams(source=exported["iface_speech"])
    assert speech.classes == CLASSES
    result = speech.predict_file(path)
    assert result.decided_by == "speech" and result.flags == [] and result.text is None
    reference = read_scores(os.path.join(exported["speech"], "scores", "test.csv"))
    np.testing.assert_allclose([result.probabilities[c] for c in CLASSES],
                               probabilities(reference.scores[reference.ids.index(utt)]), atol=1e-5)
    card = open(os.path.join(exported["iface_speech"], "README.md"), encoding="utf-8").read()
    assert "padded_short_clip" in card and "transcript" not in card.split("## Inputs")[1].split("## Limits")[0]

    text = TextEmotionRecognizer.from_hparams(source=exported["iface_text"])
    assert text.classes == CLASSES
    result = text.predict_text(transcript)
    assert result.decided_by == "text" and result.speech is None
    reference = read_scores(os.path.join(exported["text"], "scores", "test.csv"))
    np.testing.assert_allclose([result.probabilities[c] for c in CLASSES],
                               probabilities(reference.scores[reference.ids.index(utt)]), atol=1e-5)
    out_prob, _, index, text_lab = text.classify_batch([transcript, "so very angry " * 200])
    assert out_prob.shape == (2, 4) and text_lab == [CLASSES[i] for i in index.tolist()]
    assert text.encode_batch([transcript]).shape[:2] == (1, 1)

    # a folder lacks what another interface needs: an error at loading, naming a missing key
    for cls, folder in ((TextEmotionRecognizer, "iface_speech"), (MultimodalEmotionRecognizer, "iface_speech"),
                        (SpeechEmotionRecognizer, "iface_text"), (MultimodalEmotionRecognizer, "iface_text")):
        with pytest.raises(ValueError, match=r"Need hparams\['\w+'\]"):
            cls.from_hparams(source=exported[folder])


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["speechbrain", "legacy_savedir_default"])
def test_exported_folders_load_in_place(exported, tmp_path, monkeypatch, legacy):
    """Loaded without savedir, an exported folder is read where it is: nothing is written
    in the current folder (no pretrained_models/), nor in the interface folder."""
    folders = {"iface": MultimodalEmotionRecognizer, "iface_speech": SpeechEmotionRecognizer,
               "iface_text": TextEmotionRecognizer}
    before = {name: sorted(os.listdir(exported[name])) for name in folders}
    monkeypatch.chdir(tmp_path)
    if legacy:
        _legacy_savedir_default(monkeypatch)
    for name, cls in folders.items():
        model = cls.from_hparams(source=exported[name])
        assert model.classes == CLASSES
    assert os.listdir(tmp_path) == []
    assert {name: sorted(os.listdir(exported[name])) for name in folders} == before


# ------------------------------------------------------- overrides and their errors (slow) ----


@pytest.mark.slow
def test_speech_overrides_change_the_exported_input_handling(exported, export, tmp_path):
    out = tmp_path / "speech_min1"
    code, stderr = export(EXPORT_YAML, "--speech_folder", exported["speech"], "--output_folder", out,
                          "--speech_overrides", "{min_duration: 1.0, silence_rms: 0.0}")
    assert code == 0, stderr
    values = read_yaml_values(out / "hyperparams.yaml")
    assert values["min_duration"] == 1.0 and values["silence_rms"] == 0.0
    info = read_info(out)
    assert info["inference"]["overrides"]["min_duration"] == 1.0
    model = SpeechEmotionRecognizer.from_hparams(source=str(out))
    assert model.input_handling.min_duration == 1.0 and model.input_handling.silence_rms == 0.0
    assert model.predict_batch(torch.zeros(1, 12000)).flags == [["padded_short_clip"]]  # 0.75 s, not silent
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "shorter than 1.0 s" in card and "Silence is not checked" in card


@pytest.mark.slow
def test_export_errors_on_real_folds(exported, export, tmp_path):
    out = tmp_path / "out"
    speech = ["--speech_folder", exported["speech"]]
    one_line_error(export(EXPORT_YAML, *speech, "--output_folder", out, "--speech_overrides", "{nope: 1}"),
                   "hparams/inference/speech.yaml has no key nope")
    one_line_error(export(EXPORT_YAML, "--text_folder", exported["text"], "--output_folder", out,
                          "--text_overrides", "{channels: [1]}"), "hparams/inference/text.yaml has no key channels")
    for setting, words in (("{window_hop: soon}", "window_hop must be a number"),
                           ("{window_duration: 60.0}", "window_duration <= max_duration"),
                           ("{silence_rms: -1.0}", "silence_rms must be >= 0")):
        one_line_error(export(EXPORT_YAML, *speech, "--output_folder", out, "--speech_overrides", setting),
                       "the input handling of the speech model", words)
    assert not out.exists()
    one_line_error(export(EXPORT_YAML, *speech, "--output_folder", exported["iface_speech"]),
                   "already holds an interface", "--overwrite=True")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    one_line_error(export(EXPORT_YAML, *speech, "--output_folder", tmp_path / "other"),
                   "exists and is not an interface folder")
    one_line_error(export(EXPORT_YAML, *speech, "--text_folder", exported["text"], "--output_folder", out,
                          "--fusion_folder", exported["fusion"]), "fusion_params.json")
    assert not out.exists() and os.listdir(tmp_path / "other") == ["notes.txt"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no staging folder left


@pytest.mark.slow
def test_bad_input_handling_is_refused_without_the_check(exported, export, tmp_path):
    out = tmp_path / "out"
    one_line_error(export(EXPORT_YAML, "--speech_folder", exported["speech"], "--output_folder", out,
                          "--check=False", "--speech_overrides", "{window_hop: soon}"), "window_hop")
    assert not out.exists()
