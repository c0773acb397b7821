"""Inference interfaces and export: a tiny fold is trained with the real recipes, exported,
reloaded in a fresh process, and must give the recipes' own scores back; plus the handling
of bad input (resampling, downmixing, short and long clips, empty text, unreadable files).

The tests without a trained fold (a random tiny model built in-process) are fast; the ones
on the trained fold are marked slow.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from mmer_lobes.audio import AudioError, load_audio
from mmer_lobes.interfaces import (
    InterfaceError,
    MultimodalEmotionRecognizer,
    SpeechEmotionRecognizer,
)
from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder
from mmer_lobes.scores import read_scores

CLASSES = ["ang", "hap", "neu", "sad"]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SPEECH = ["--mode=scratch", "--number_of_epochs=1", "--channels=[4,8,16,32]", "--n_mels=32",
               "--embedding_size=32", "--chunk_frames=[100]", "--augment_copies=1",
               "--num_workers=0",
               # lr 0.1 (the default) diverges in one tiny epoch: probabilities underflow to 0/1
               "--scratch_lr=0.01"]

_FOLD = {}


def build_exported_fold(tmp_path_factory, iemocap_manifests, run_command):
    """Trains speech and text on fold 5 of mini-IEMOCAP (tiny), fuses, exports a speech +
    text folder and a speech-only folder. Built once per test session (shared with
    tests/test_predict.py); returns a dict of paths."""
    if _FOLD:
        return _FOLD
    data_folder, manifest_folder = iemocap_manifests
    root = str(tmp_path_factory.mktemp("export_fold"))
    speech, text = os.path.join(root, "speech"), os.path.join(root, "text")
    fusion, iface = os.path.join(root, "fusion"), os.path.join(root, "iface")
    iface_speech = os.path.join(root, "iface_speech")
    common = [f"--data_folder={data_folder}", "--test_session=5",
              f"--manifest_folder={manifest_folder}", "--skip_prep=True"]
    run_command(["recipes/train.py", "hparams/resnet_ser.yaml", *common, *TINY_SPEECH,
                 f"--output_folder={speech}"])
    run_command(["recipes/train_text.py", "hparams/bert_text.yaml", *common,
                 "--number_of_epochs=1", f"--output_folder={text}"])
    run_command(["recipes/fuse.py", "hparams/fusion.yaml", "--speech_folder", speech,
                 "--text_folder", text, "--output_folder", fusion])
    run_command(["recipes/export.py", "hparams/export.yaml", "--speech_folder", speech, "--text_folder", text,
                 "--fusion_folder", os.path.join(fusion, "weighted"), "--output_folder", iface])
    run_command(["recipes/export.py", "hparams/export.yaml", "--speech_folder", speech,
                 "--output_folder", iface_speech, "--check=False"])
    with open(os.path.join(speech, "fold", "test.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    _FOLD.update(root=root, speech=speech, text=text, fusion=fusion, iface=iface,
                 iface_speech=iface_speech, data_folder=data_folder, test_manifest=manifest)
    return _FOLD


@pytest.fixture(scope="session")
def exported(tmp_path_factory, iemocap_manifests, run_command):
    return build_exported_fold(tmp_path_factory, iemocap_manifests, run_command)


def wav_path(fold, utt):
    return fold["test_manifest"][utt]["wav"].replace("{data_root}", fold["data_folder"])


def probabilities(log_posteriors):
    return np.exp(np.asarray(log_posteriors, dtype=np.float64))


# -------------------------------------------------------------- fresh-process reload ----

RELOAD_SCRIPT = r'''
import json, sys
import torch
from speechbrain.inference.interfaces import foreign_class
from speechbrain.utils.data_utils import batch_pad_right
from mmer_lobes.audio import load_audio
from mmer_lobes.fusion import fusion_from_dict
from mmer_lobes.interfaces import MultimodalEmotionRecognizer

cfg = json.load(open(sys.argv[1]))
model = MultimodalEmotionRecognizer.from_hparams(source=cfg["folder"], savedir=cfg["savedir"])
manifest = cfg["manifest"]
wav = lambda u: manifest[u]["wav"].replace("{data_root}", cfg["data_root"])
ids, size = cfg["order"], cfg["batch_size"]
out = {"speech": {}, "text": {}, "fused": {m: {} for m in cfg["methods"]}, "file": {}}
learned = model.fusion
for first in range(0, len(ids), size):
    batch = ids[first:first + size]
    wavs, lens = batch_pad_right([load_audio(wav(u)) for u in batch])
    texts = [manifest[u]["transcript"] for u in batch]
    for method, params in cfg["methods"].items():
        model.fusion = fusion_from_dict(params) if params else learned
        result = model.classify_batch(wavs, lens, texts)
        for k, u in enumerate(batch):
            out["fused"][method][u] = result.log_posteriors[k].tolist()
            out["speech"][u] = result.speech_log_posteriors[k].tolist()
            out["text"][u] = result.text_log_posteriors[k].tolist()
model.fusion = learned
for u in ids:
    out["file"][u] = {"fused": model.classify_file(wav(u), text=manifest[u]["transcript"]).to_dict(),
                      "speech": model.classify_file(wav(u)).to_dict()}
u = ids[0]
other = foreign_class(source=cfg["folder"], pymodule_file="custom_interface.py",
                      classname="MultimodalEmotionRecognizer", savedir=cfg["savedir2"])
out["foreign_class"] = {"type": type(other).__name__, "id": u,
                        "result": other.classify_file(wav(u), text=manifest[u]["transcript"]).to_dict()}
json.dump(out, open(cfg["output"], "w"))
'''


@pytest.fixture(scope="module")
def reloaded(exported, tmp_path_factory):
    """Runs the reload script in a fresh Python process; returns its results."""
    work = tmp_path_factory.mktemp("reload")
    order = read_scores(os.path.join(exported["speech"], "scores", "test.csv")).ids
    methods = {"weighted": None}
    for method in ("znorm", "logreg"):
        with open(os.path.join(exported["fusion"], method, "fusion_params.json")) as handle:
            methods[method] = json.load(handle)["params"]
    cfg = {
        "folder": exported["iface"], "savedir": str(work / "save"), "savedir2": str(work / "save2"),
        "manifest": exported["test_manifest"], "data_root": exported["data_folder"],
        "order": order, "batch_size": 32, "methods": methods, "output": str(work / "out.json"),
    }
    (work / "cfg.json").write_text(json.dumps(cfg))
    (work / "reload.py").write_text(RELOAD_SCRIPT)
    result = subprocess.run([sys.executable, str(work / "reload.py"), str(work / "cfg.json")],
                            cwd=str(work), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((work / "out.json").read_text())


def _check_rows(score_file, got, atol):
    reference = read_scores(score_file)
    assert reference.classes == CLASSES
    assert sorted(got) == sorted(reference.ids)
    for utt, row in zip(reference.ids, reference.scores):
        np.testing.assert_allclose(probabilities(got[utt]), probabilities(row), atol=atol, rtol=0,
                                   err_msg=f"{score_file}: {utt}")


@pytest.mark.slow
def test_export_folder_layout(exported):
    folder = exported["iface"]
    for name in ("hyperparams.yaml", "encoder.ckpt", "classifier.ckpt", "text_classifier.ckpt",
                 "label_encoder.txt", "README.md", "custom_interface.py", "export_info.json"):
        assert os.path.isfile(os.path.join(folder, name)), name
    for name in ("encoder", "classifier", "text_classifier"):
        state = torch.load(os.path.join(folder, f"{name}.ckpt"), weights_only=True)
        assert state and all(torch.is_tensor(v) for v in state.values())
    text = open(os.path.join(folder, "hyperparams.yaml"), encoding="utf-8").read()
    assert "pretrainer: !new:mmer_lobes.interfaces.FolderPretrainer" in text
    assert "\nmodules:\n" in text
    assert "text_source: !apply:mmer_lobes.text.default_text_model_path []" in text
    assert "channels: [4, 8, 16, 32]" in text and "n_mels: 32" in text
    assert "\nsilence_rms: 0.0001\n" in text  # the input handling of hparams/export.yaml
    with open(os.path.join(exported["fusion"], "weighted", "fusion_params.json")) as handle:
        weight = json.load(handle)["params"]["weight"]
    assert f"weight: {weight}" in text
    card = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
    assert "synthetic corpus" in card and "trust" in card
    with open(os.path.join(exported["fusion"], "weighted", "metrics_test.json")) as handle:
        fused_ua = json.load(handle)["UA"]
    assert f"{fused_ua:.2f}" in card
    with open(os.path.join(folder, "label_encoder.txt")) as handle:
        assert [line.split("=>")[0].strip().strip("'") for line in handle][:4] == CLASSES
    info = json.load(open(os.path.join(folder, "export_info.json")))
    assert info["synthetic_corpus"] is True and info["modalities"] == ["speech", "text"]


@pytest.mark.slow
def test_fresh_process_gives_the_recipe_scores(exported, reloaded):
    """classify_batch on padded batches of 32 (speech, text, learned weighted fusion): the
    recipes' score-file probabilities within 1e-5, since every clip is scored alone."""
    _check_rows(os.path.join(exported["speech"], "scores", "test.csv"), reloaded["speech"], 1e-5)
    _check_rows(os.path.join(exported["text"], "scores", "test.csv"), reloaded["text"], 1e-5)
    _check_rows(os.path.join(exported["fusion"], "weighted", "scores", "test.csv"),
                reloaded["fused"]["weighted"], 1e-5)


@pytest.mark.slow
def test_other_fusions_match_fuse_py(exported, reloaded):
    """znorm and logreg scale the scores (by 1/std, by the regression weights), so the
    6-decimal rounding of the score files that fuse.py reads shows at about 1e-5."""
    for method in ("znorm", "logreg"):
        _check_rows(os.path.join(exported["fusion"], method, "scores", "test.csv"),
                    reloaded["fused"][method], 1e-4)


@pytest.mark.slow
def test_classify_file_matches_the_recipe_on_every_utterance(exported, reloaded):
    """One file at a time gives the score-file rows of the recipe, fused and speech alone."""
    speech = read_scores(os.path.join(exported["speech"], "scores", "test.csv"))
    fused = read_scores(os.path.join(exported["fusion"], "weighted", "scores", "test.csv"))
    assert sorted(reloaded["file"]) == sorted(speech.ids)
    for utt, result in reloaded["file"].items():
        expected_speech = probabilities(speech.scores[speech.ids.index(utt)])
        expected_fused = probabilities(fused.scores[fused.ids.index(utt)])
        got = result["fused"]
        assert got["decided_by"] == "fusion:weighted" and got["flags"] == []
        np.testing.assert_allclose([got["probabilities"][c] for c in CLASSES], expected_fused, atol=1e-5)
        np.testing.assert_allclose([got["speech"]["probabilities"][c] for c in CLASSES], expected_speech, atol=1e-5)
        assert got["label"] == CLASSES[int(np.argmax(expected_fused))]
        alone = result["speech"]
        assert alone["decided_by"] == "speech" and alone["flags"] == ["speech_only_no_text"]
        np.testing.assert_allclose([alone["probabilities"][c] for c in CLASSES], expected_speech, atol=1e-5)


@pytest.mark.slow
def test_foreign_class_loads_the_folder(reloaded):
    assert reloaded["foreign_class"]["type"] == "MultimodalEmotionRecognizer"
    utt = reloaded["foreign_class"]["id"]
    assert reloaded["foreign_class"]["result"] == reloaded["file"][utt]["fused"]


# ------------------------------------------------------------------- bad input ----


@pytest.fixture(scope="module")
def multimodal(exported):
    return MultimodalEmotionRecognizer.from_hparams(source=exported["iface"])


@pytest.fixture(scope="module")
def clip(exported):
    """(utterance id, 16 kHz mono path, transcript) of one test utterance."""
    utt = sorted(exported["test_manifest"])[0]
    return utt, wav_path(exported, utt), exported["test_manifest"][utt]["transcript"]


@pytest.mark.slow
def test_44k_stereo_gives_the_16k_mono_result(multimodal, clip, tmp_path):
    import torchaudio

    _, path, transcript = clip
    signal = load_audio(path, 16000)
    upsampled = torchaudio.functional.resample(signal, 16000, 44100).numpy()
    stereo = str(tmp_path / "stereo44k.wav")
    soundfile.write(stereo, np.stack([upsampled, 0.5 * upsampled], axis=1), 44100, subtype="FLOAT")
    reference = multimodal.classify_file(path, text=transcript)
    converted = multimodal.classify_file(stereo, text=transcript)
    assert converted.flags == ["resampled", "downmixed"] and reference.flags == []
    assert converted.label == reference.label
    for c in CLASSES:
        assert abs(converted.probabilities[c] - reference.probabilities[c]) < 1e-2
        assert abs(converted.speech.probabilities[c] - reference.speech.probabilities[c]) < 1e-2


@pytest.mark.slow
def test_short_clip_is_padded_and_flagged(multimodal, clip, tmp_path):
    _, path, _ = clip
    signal = load_audio(path, 16000)[:800]  # 0.05 s
    short = str(tmp_path / "short.wav")
    soundfile.write(short, signal.numpy(), 16000, subtype="FLOAT")
    result = multimodal.classify_file(short, text="Fine.")
    assert result.flags == ["padded_short_clip"] and result.decided_by == "fusion:weighted"
    padded = torch.zeros(8000)
    padded[:800] = signal
    # the same 800 samples given as a padded batch item (relative length 0.1)
    expected = multimodal.classify_batch(padded.unsqueeze(0), torch.tensor([0.1]), ["Fine."])
    np.testing.assert_allclose([result.probabilities[c] for c in CLASSES],
                               expected.log_posteriors[0].exp().numpy(), atol=1e-6)
    assert abs(result.duration - 0.05) < 1e-9


@pytest.mark.slow
def test_empty_text_gives_the_speech_result(multimodal, clip):
    _, path, _ = clip
    speech_only = multimodal.classify_file(path)
    for empty in ("", "   "):
        result = multimodal.classify_file(path, text=empty)
        assert result.flags == ["speech_only_empty_text"]
        assert result.decided_by == "speech" and result.text is None
        assert result.probabilities == speech_only.probabilities
        assert result.speech.probabilities == speech_only.probabilities
    batch = multimodal.classify_batch(load_audio(path).repeat(3, 1), torch.ones(3), ["", "Oh no.", None])
    assert batch.decided_by == ["speech", "fusion:weighted", "speech"]
    assert batch.flags == [["speech_only_empty_text"], [], ["speech_only_no_text"]]
    assert torch.isnan(batch.text_log_posteriors[0]).all()
    assert batch.predictions()[0].text is None and batch.predictions()[1].text is not None
    for empty in ("", " "):  # with no audio, an empty text leaves nothing to classify
        with pytest.raises(InterfaceError, match="is empty"):
            multimodal.classify_text(empty)


@pytest.mark.slow
def test_long_transcript_is_truncated_and_flagged(multimodal, clip):
    _, path, _ = clip
    result = multimodal.classify_file(path, text="so very angry " * 200)
    assert result.flags == ["truncated_text"] and result.decided_by == "fusion:weighted"


@pytest.mark.slow
def test_unreadable_audio_is_a_clear_error(multimodal, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 4)
    empty = str(tmp_path / "empty.wav")
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    missing = str(tmp_path / "missing.wav")
    for path, words in ((str(corrupt), "cannot read"), (empty, "no samples"), (missing, "not found")):
        with pytest.raises(AudioError, match=words) as error:
            multimodal.classify_file(path, text="hello")
        assert path in str(error.value)


@pytest.mark.slow
def test_text_only_and_speech_only_interfaces(exported, clip):
    from mmer_lobes.interfaces import TextEmotionRecognizer

    _, path, transcript = clip
    speech = SpeechEmotionRecognizer.from_hparams(source=exported["iface_speech"])
    assert speech.modalities == ["speech"]
    with pytest.raises(InterfaceError, match="needs a text model"):
        TextEmotionRecognizer.from_hparams(source=exported["iface_speech"])
    result = speech.classify_file(path)
    assert result.decided_by == "speech" and result.flags == []
    card = open(os.path.join(exported["iface_speech"], "README.md"), encoding="utf-8").read()
    assert "padded_short_clip" in card and "transcript" not in card.split("## Inputs")[1].split("## Limits")[0]
    mixed = MultimodalEmotionRecognizer.from_hparams(source=exported["iface_speech"])
    assert mixed.classify_file(path, text=transcript).flags == ["text_ignored_no_text_model"]


@pytest.mark.slow
@pytest.mark.parametrize("legacy", [False, True], ids=["speechbrain", "legacy_savedir_default"])
def test_exported_folder_loads_in_place(exported, tmp_path, monkeypatch, legacy):
    """Loaded without savedir, an exported folder is read where it is: nothing is written
    in the current folder (no pretrained_models/), nor in the interface folder."""
    before = sorted(os.listdir(exported["iface"]))
    monkeypatch.chdir(tmp_path)
    if legacy:
        _legacy_savedir_default(monkeypatch)
    model = MultimodalEmotionRecognizer.from_hparams(source=exported["iface"])
    assert model.modalities == ["speech", "text"]
    assert os.listdir(tmp_path) == [] and sorted(os.listdir(exported["iface"])) == before


# ------------------------------------------------ fast: a random tiny model in-process ----


@pytest.fixture(scope="module")
def tiny():
    """A SpeechEmotionRecognizer on randomly initialised tiny modules (no training), with
    short thresholds so that windowing is cheap to test."""
    from hyperpyyaml import load_hyperpyyaml

    torch.manual_seed(0)
    hparams = load_hyperpyyaml("""
        classes: [ang, hap, neu, sad]
        sample_rate: 16000
        min_duration: 0.5
        max_duration: 3.0
        window_duration: 2.0
        window_hop: 1.5
        window_batch_size: 2
        compute_features: !new:speechbrain.lobes.features.Fbank
            n_mels: 16
        mean_var_norm: !new:speechbrain.processing.features.InputNormalization
            norm_type: sentence
        log_softmax: !new:speechbrain.nnet.activations.Softmax
            apply_log: True
    """)
    encoder = ResNetEncoder(n_mels=16, channels=[2, 4, 4, 8], blocks=[1, 1, 1, 1])
    hparams["encoder"] = encoder
    hparams["classifier"] = EmbeddingClassifier(encoder.output_size, 4, embedding_size=8)
    modules = {name: hparams[name] for name in ("compute_features", "mean_var_norm", "encoder", "classifier")}
    return SpeechEmotionRecognizer(modules=modules, hparams=hparams, run_opts={"device": "cpu"})


def test_long_clip_is_scored_on_averaged_windows(tiny):
    signal = torch.randn(5 * 16000) * 0.1
    scores, flags = tiny.speech_log_posteriors(signal.unsqueeze(0))
    assert flags == [["windowed_long_clip"]]
    starts = [0, 24000, 48000]  # 2 s windows every 1.5 s; the last one ends at 5 s
    with torch.no_grad():
        windows = torch.stack([signal[s:s + 32000] for s in starts])
        expected = torch.log_softmax(tiny._speech_forward(windows, torch.ones(3)).mean(0), dim=-1)
    assert torch.allclose(scores[0], expected, atol=1e-6)
    assert torch.allclose(scores.exp().sum(), torch.tensor(1.0))


def test_batch_of_short_normal_and_long_clips(tiny):
    short, normal, long = torch.randn(1000), torch.randn(20000), torch.randn(60000)
    batch = torch.zeros(3, 60000)
    batch[0, :1000], batch[1, :20000], batch[2] = short, normal, long
    lens = torch.tensor([1000, 20000, 60000]) / 60000
    result = tiny.classify_batch(batch, lens)
    assert result.flags == [["padded_short_clip"], [], ["windowed_long_clip"]]
    assert result.labels == [CLASSES[int(i)] for i in result.log_posteriors.argmax(1)]
    assert result.speech_log_posteriors is not None and result.text_log_posteriors is None
    # every item is scored alone: the same as in a batch of its own, whatever its neighbours
    for index, clip in enumerate((short, normal, long)):
        alone = tiny.classify_batch(clip.unsqueeze(0))
        assert torch.allclose(result.log_posteriors[index], alone.log_posteriors[0], atol=1e-6)
    padded = torch.zeros(1, 8000)
    padded[0, :1000] = short
    with torch.no_grad():  # padded for the network, scored on its real 1000 samples
        expected_short = tiny._speech_forward(padded, torch.tensor([1000 / 8000]))[0]
    assert torch.allclose(result.log_posteriors[0], expected_short, atol=1e-6)
    with torch.no_grad():
        expected_normal = tiny._speech_forward(normal.unsqueeze(0), torch.ones(1))[0]
    assert torch.allclose(result.log_posteriors[1], expected_normal, atol=1e-6)


def test_texts_must_match_the_batch_and_none_means_no_text(tiny):
    wavs = torch.randn(2, 16000) * 0.1
    mixed = MultimodalEmotionRecognizer(modules=dict(tiny.mods), hparams=dict(vars(tiny.hparams)))
    for texts in (["one"], ["one", "two", "three"]):
        with pytest.raises(InterfaceError, match=f"{len(texts)} texts for a batch of 2"):
            mixed.classify_batch(wavs, None, texts)
    result = mixed.classify_batch(wavs, None, ["Hello there.", None])
    assert result.flags == [["text_ignored_no_text_model"], []]
    assert result.decided_by == ["speech", "speech"]


def test_input_handling_is_checked_when_loading(tiny):
    for key, value, words in (("window_duration", 40.0, "window_duration <= max_duration"),
                              ("window_hop", 0.0, "window_hop"),
                              ("window_batch_size", 0, "window_batch_size"),
                              ("silence_rms", -1e-4, "silence_rms must be >= 0"),
                              ("silence_rms", float("nan"), "silence_rms must be >= 0")):
        hparams = dict(vars(tiny.hparams), **{key: value})
        with pytest.raises(InterfaceError, match=words):
            SpeechEmotionRecognizer(modules=dict(tiny.mods), hparams=hparams)
    hparams = dict(vars(tiny.hparams))
    del hparams["window_hop"]
    with pytest.raises(InterfaceError, match="has no window_hop"):
        SpeechEmotionRecognizer(modules=dict(tiny.mods), hparams=hparams)


def test_bad_batches_are_clear_errors(tiny):
    with pytest.raises(InterfaceError, match="batch, time"):
        tiny.classify_batch(torch.zeros(2, 3, 100))
    with pytest.raises(InterfaceError, match="lengths"):
        tiny.classify_batch(torch.zeros(2, 100), torch.ones(3))
    with pytest.raises(InterfaceError, match="relative lengths"):
        tiny.classify_batch(torch.zeros(2, 100), torch.tensor([0.0, 1.0]))
    bad = torch.zeros(1, 16000)
    bad[0, 5] = float("nan")
    with pytest.raises(InterfaceError, match="non-finite"):
        tiny.classify_batch(bad)


def test_audio_flags_and_non_finite_files(tiny, tmp_path):
    stereo = str(tmp_path / "stereo8k.wav")
    soundfile.write(stereo, np.random.RandomState(0).randn(8000, 2).astype(np.float32) * 0.1, 8000)
    signal, flags = tiny.read_audio(stereo)
    assert flags == ["resampled", "downmixed"] and signal.shape == (16000,)
    result = tiny.classify_file(stereo)
    assert result.flags == ["resampled", "downmixed"] and result.duration == 1.0
    nan_file = str(tmp_path / "nan.wav")
    data = np.zeros(16000, dtype=np.float32)
    data[100] = np.nan
    soundfile.write(nan_file, data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite") as error:
        tiny.classify_file(nan_file)
    assert nan_file in str(error.value)


def test_speech_interface_needs_speech_modules(tiny):
    with pytest.raises(InterfaceError, match="needs a speech model"):
        SpeechEmotionRecognizer(modules={}, hparams=dict(vars(tiny.hparams)))


def test_export_errors_are_one_line(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_recipe", os.path.join(REPO_ROOT, "recipes", "export.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def export(*args):
        assert module.main(list(args)) == 2
        stderr = capsys.readouterr().err
        assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("export.py: error: ")
        return stderr

    out = str(tmp_path / "out")
    yaml_file = os.path.join(REPO_ROOT, "hparams", "export.yaml")
    assert "usage:" in export()
    assert "--output_folder is required" in export(yaml_file)
    assert "--speech_folder and/or --text_folder" in export(yaml_file, "--output_folder", out)
    assert "is not a folder" in export(yaml_file, "--speech_folder", str(tmp_path / "nope"),
                                       "--output_folder", out)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert "--fusion_folder" in export(yaml_file, "--speech_folder", str(tmp_path / "a"),
                                       "--text_folder", str(tmp_path / "b"), "--output_folder", out)
    assert "not a recipe output folder" in export(yaml_file, "--speech_folder", str(tmp_path / "a"),
                                                  "--output_folder", out)
    assert "window_hop must be a number" in export(yaml_file, "--speech_folder", str(tmp_path / "a"),
                                                   "--output_folder", out, "--window_hop=soon")
    assert "min_duration <= window_duration" in export(
        yaml_file, "--speech_folder", str(tmp_path / "a"), "--output_folder", out,
        "--window_duration=60")
    # silence_rms is an input-handling setting: read from export.yaml and checked at export
    assert "silence_rms must be a number" in export(yaml_file, "--speech_folder", str(tmp_path / "a"),
                                                    "--output_folder", out, "--silence_rms=quiet")
    assert "silence_rms must be >= 0" in export(yaml_file, "--speech_folder", str(tmp_path / "a"),
                                                "--output_folder", out, "--silence_rms=-1.0")
    assert "cannot read" in export(str(tmp_path / "missing.yaml"), "--output_folder", out)
    assert not os.path.exists(out)


# ------------------------------------------- short, silent and truncated inputs (fast) ----


def test_short_clip_padding_is_excluded_from_normalisation_and_pooling(tiny):
    """A clip shorter than min_duration is zero-padded for the network, but its relative
    length counts only its real samples: the score is the modules' own computation on the
    padded clip with relative length 3000 / 8000 (as a recipe's padded batch item), not the
    one with relative length 1 that lets the padding into the sentence mean/variance and
    the statistics pooling."""
    clip = torch.randn(3000, generator=torch.Generator().manual_seed(3)) * 0.1
    scores, flags = tiny.speech_log_posteriors(clip.unsqueeze(0))
    assert flags == [["padded_short_clip"]]
    padded = torch.zeros(1, 8000)  # min_duration 0.5 s at 16 kHz
    padded[0, :3000] = clip

    def direct(relative_length):
        lens = torch.tensor([relative_length])
        with torch.no_grad():
            feats = tiny.mods.compute_features(padded)
            feats = tiny.mods.mean_var_norm(feats, lens)
            # the encoder keeps round(0.375 * 51) = 19 of 51 feature frames, hence
            # ceil(19 / 8) = 3 of 7 pooled frames (mmer_lobes.resnet.trunk_lengths)
            pooled = tiny.mods.encoder(feats, lens)
            return tiny.hparams.log_softmax(tiny.mods.classifier(pooled))[0]

    torch.testing.assert_close(scores[0], direct(3000 / 8000), atol=1e-5, rtol=0)
    assert (scores[0] - direct(1.0)).abs().max() > 1e-3


def test_silent_input_is_flagged(tiny):
    """RMS below silence_rms (over the real samples) flags silent_input; the clip is scored."""
    noise = torch.randn(3, 16000, generator=torch.Generator().manual_seed(4))
    batch = torch.stack([torch.zeros(16000), 1e-6 * noise[0], 0.1 * noise[1]])
    result = tiny.classify_batch(batch)
    assert result.flags == [["silent_input"], ["silent_input"], []]
    assert torch.isfinite(result.log_posteriors).all()
    # a short silent clip is flagged whatever its padding; a loud one padded in a batch is not
    padded = torch.zeros(2, 16000)
    padded[1, :4000] = 0.1 * noise[2, :4000]
    result = tiny.classify_batch(padded, torch.tensor([0.25, 0.25]))
    assert result.flags == [["padded_short_clip", "silent_input"], ["padded_short_clip"]]
    off = SpeechEmotionRecognizer(modules=dict(tiny.mods), hparams=dict(vars(tiny.hparams), silence_rms=0.0))
    assert off.classify_batch(torch.zeros(1, 16000)).flags == [[]]
    # RMS over the real samples only: 200 samples at RMS 2e-4 (above 1e-4) are not silent,
    # though over the 8000 samples they are padded to their RMS would be 3e-5
    quiet = torch.zeros(1, 16000)
    quiet[0, :200] = 2e-4 * torch.sign(noise[0, :200])
    assert tiny.classify_batch(quiet, torch.tensor([200 / 16000])).flags == [["padded_short_clip"]]
    # RMS about the mean: a DC offset (a cheap input's bias) is not sound
    assert tiny.classify_batch(torch.full((1, 16000), 1e-3)).flags == [["silent_input"]]


def test_silence_rms_default_for_old_folders_is_the_export_setting(tiny):
    """tiny's hyperparams have no silence_rms (as folders exported before it existed): they
    load, with the value hparams/export.yaml gives new exports."""
    from hyperpyyaml import load_hyperpyyaml

    from mmer_lobes.interfaces import INPUT_HANDLING, INPUT_HANDLING_DEFAULTS

    assert not hasattr(tiny.hparams, "silence_rms") and "silence_rms" in INPUT_HANDLING
    with open(os.path.join(REPO_ROOT, "hparams", "export.yaml"), encoding="utf-8") as handle:
        settings = load_hyperpyyaml(handle)
    assert tiny.silence_rms == INPUT_HANDLING_DEFAULTS["silence_rms"] == settings["silence_rms"]


def _truncated_copy(path, out, cut_bytes):
    data = open(path, "rb").read()
    with open(out, "wb") as handle:
        handle.write(data[:-cut_bytes])
    return out


def test_truncated_wav_is_flagged(tiny, tmp_path):
    """A wav that ends before the data its header declares: soundfile reads what is there
    without a word; the interface scores it and flags truncated_file. An intact copy is not
    flagged; a file cut inside its header is an AudioError naming it."""
    intact = str(tmp_path / "intact.wav")
    signal = np.random.RandomState(5).randn(16000).astype(np.float32) * 0.1
    soundfile.write(intact, signal, 16000, subtype="PCM_16")
    truncated = _truncated_copy(intact, str(tmp_path / "truncated.wav"), 8000)  # 4000 samples
    assert soundfile.info(truncated).frames == 12000  # soundfile: short, silently
    result = tiny.classify_file(truncated)
    assert result.flags == ["truncated_file"] and result.duration == 0.75
    assert tiny.classify_file(intact).flags == []
    stereo = str(tmp_path / "stereo8k.wav")
    soundfile.write(stereo, np.stack([signal, signal], axis=1), 8000, subtype="FLOAT")
    cut = _truncated_copy(stereo, str(tmp_path / "stereo8k_cut.wav"), 1001)
    assert tiny.classify_file(cut).flags == ["resampled", "downmixed", "truncated_file"]
    header_only = _truncated_copy(intact, str(tmp_path / "header.wav"), 32000)  # all data
    with pytest.raises(AudioError, match="no samples") as error:
        tiny.classify_file(header_only)
    assert header_only in str(error.value) and "declares 16000 samples" in str(error.value)
    broken = _truncated_copy(intact, str(tmp_path / "broken.wav"), 32044 - 30)
    with pytest.raises(AudioError, match="cannot read audio file") as error:
        tiny.classify_file(broken)
    assert broken in str(error.value)


# ------------------------------------------------ loading writes nothing (fast) ----


def write_tiny_interface(folder):
    """A speech interface folder in the layout of recipes/export.py (random tiny model)."""
    os.makedirs(folder)
    encoder = ResNetEncoder(n_mels=16, channels=[2, 4, 4, 8], blocks=[1, 1, 1, 1])
    classifier = EmbeddingClassifier(encoder.output_size, 4, embedding_size=8)
    torch.save(encoder.state_dict(), os.path.join(folder, "encoder.ckpt"))
    torch.save(classifier.state_dict(), os.path.join(folder, "classifier.ckpt"))
    with open(os.path.join(folder, "label_encoder.txt"), "w", encoding="utf-8") as handle:
        handle.write("".join(f"'{c}' => {i}\n" for i, c in enumerate(CLASSES)))
        handle.write("================\n'starting_index' => 0\n")
    with open(os.path.join(folder, "hyperparams.yaml"), "w", encoding="utf-8") as handle:
        handle.write(f"""classes: {CLASSES}
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
pretrainer: !new:mmer_lobes.interfaces.FolderPretrainer
    loadables:
        encoder: !ref <encoder>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        label_encoder: label_encoder.txt
    custom_hooks:
        encoder: !name:mmer_lobes.interfaces.load_state_dict_strict
        classifier: !name:mmer_lobes.interfaces.load_state_dict_strict
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
    from mmer_lobes.predict import load_model

    folder = write_tiny_interface(str(tmp_path / "iface"))
    before = sorted(os.listdir(folder))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if legacy:
        _legacy_savedir_default(monkeypatch)
    for source in (folder, os.path.relpath(folder)):
        model = SpeechEmotionRecognizer.from_hparams(source=source)
        assert model.classes == CLASSES
        assert model.classify_batch(torch.randn(1, 16000) * 0.1).labels[0] in CLASSES
    assert load_model(folder).classes == CLASSES  # mmer-predict's loader
    assert os.listdir(work) == []
    assert sorted(os.listdir(folder)) == before  # loaded in place: nothing linked there either
    # an explicit savedir is SpeechBrain's business, as before
    saved = SpeechEmotionRecognizer.from_hparams(source=folder, savedir=str(tmp_path / "save"))
    assert saved.classes == CLASSES and os.path.isfile(tmp_path / "save" / "hyperparams.yaml")
