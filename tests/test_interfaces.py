"""Inference interfaces: a tiny fold is trained with the real recipes, exported, reloaded in
a fresh process, and must give the recipes' own scores back; plus the handling of bad input
(resampling, downmixing, short and long clips, silence, truncated files, empty and long text,
unreadable files). The exported folders themselves (their files, the model card, loading them
in place, or without the project through ``foreign_class``, the folders of one modality) are
tested in tests/test_export.py.

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
    INPUT_HANDLING,
    InterfaceError,
    MultimodalEmotionRecognizer,
    SpeechEmotionRecognizer,
)
from mmer_lobes.interfaces.examples import label_encoder, text_hparams, text_modules
from mmer_lobes.interfaces.inputs import read_audio_file
from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder
from mmer_lobes.scores import read_scores

CLASSES = ["ang", "hap", "neu", "sad"]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFERENCE_YAML = {kind: os.path.join(REPO_ROOT, "hparams", "inference", f"{kind}.yaml")
                  for kind in ("speech", "text", "multimodal")}
TINY_SPEECH = ["--mode=scratch", "--number_of_epochs=1", "--channels=[4,8,16,32]", "--n_mels=32",
               "--embedding_size=32", "--chunk_frames=[100]", "--augment_copies=1",
               "--num_workers=0",
               # lr 0.1 (the default) diverges in one tiny epoch: probabilities underflow to 0/1
               "--scratch_lr=0.01"]

_FOLD = {}


def build_exported_fold(tmp_path_factory, iemocap_manifests, run_command):
    """Trains speech and text on fold 5 of mini-IEMOCAP (tiny), fuses, exports a speech +
    text folder, a speech-only and a text-only folder. Built once per test session (shared
    with tests/test_export.py, tests/test_bundle.py and tests/test_predict.py); returns a
    dict of paths."""
    if _FOLD:
        return _FOLD
    data_folder, manifest_folder = iemocap_manifests
    root = str(tmp_path_factory.mktemp("export_fold"))
    speech, text = os.path.join(root, "speech"), os.path.join(root, "text")
    fusion, iface = os.path.join(root, "fusion"), os.path.join(root, "iface")
    iface_speech, iface_text = os.path.join(root, "iface_speech"), os.path.join(root, "iface_text")
    common = [f"--data_folder={data_folder}", "--test_fold=5",
              f"--manifest_folder={manifest_folder}", "--skip_prep=True"]
    run_command(["recipes/train.py", "hparams/resnet_ser.yaml", *common, *TINY_SPEECH,
                 f"--output_folder={speech}"])
    run_command(["recipes/train_text.py", "hparams/bert_text.yaml", *common,
                 "--number_of_epochs=1", f"--output_folder={text}"])
    run_command(["recipes/fuse.py", "hparams/fusion.yaml", "--speech_folder", speech,
                 "--text_folder", text, "--output_folder", fusion])
    run_command(["recipes/export.py", "hparams/export.yaml", "--speech_folder", speech, "--text_folder", text,
                 "--fusion_folder", os.path.join(fusion, "weighted"), "--output_folder", iface, "--onnx=True"])
    run_command(["recipes/export.py", "hparams/export.yaml", "--speech_folder", speech,
                 "--output_folder", iface_speech, "--check=False"])
    run_command(["recipes/export.py", "hparams/export.yaml", "--text_folder", text,
                 "--output_folder", iface_text])
    with open(os.path.join(speech, "fold", "test.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    _FOLD.update(root=root, speech=speech, text=text, fusion=fusion, iface=iface,
                 iface_speech=iface_speech, iface_text=iface_text, data_folder=data_folder,
                 test_manifest=manifest)
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
from speechbrain.utils.data_utils import batch_pad_right
from mmer_lobes.audio import load_audio
from mmer_lobes.fusion_rules import LateFusion
from mmer_lobes.interfaces import MultimodalEmotionRecognizer

cfg = json.load(open(sys.argv[1]))
model = MultimodalEmotionRecognizer.from_hparams(source=cfg["folder"])
manifest = cfg["manifest"]
wav = lambda u: manifest[u]["wav"].replace("{data_root}", cfg["data_root"])
ids, size = cfg["order"], cfg["batch_size"]
out = {"speech": {}, "text": {}, "fused": {m: {} for m in cfg["methods"]}, "file": {}, "speechbrain": {}}
learned = model.fusion
for first in range(0, len(ids), size):
    batch = ids[first:first + size]
    wavs, lens = batch_pad_right([load_audio(wav(u)) for u in batch])
    texts = [manifest[u]["transcript"] for u in batch]
    for method, params in cfg["methods"].items():
        model.fusion = LateFusion(params) if params else learned
        result = model.predict_batch(wavs, lens, texts)
        for k, u in enumerate(batch):
            out["fused"][method][u] = result.log_posteriors[k].tolist()
            out["speech"][u] = result.speech_log_posteriors[k].tolist()
            out["text"][u] = result.text_log_posteriors[k].tolist()
    model.fusion = learned
    out_prob, score, index, text_lab = model.classify_batch(wavs, lens, texts)
    for k, u in enumerate(batch):
        out["speechbrain"][u] = {"out_prob": out_prob[k].tolist(), "score": float(score[k]),
                                 "index": int(index[k]), "text_lab": text_lab[k]}
for u in ids:
    out_prob, score, index, text_lab = model.classify_file(wav(u), text=manifest[u]["transcript"])
    out["file"][u] = {"fused": model.predict_file(wav(u), text=manifest[u]["transcript"]).to_dict(),
                      "speech": model.predict_file(wav(u)).to_dict(),
                      "classify_file": [out_prob[0].tolist(), text_lab[0]]}
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
        "folder": exported["iface"], "manifest": exported["test_manifest"],
        "data_root": exported["data_folder"], "order": order, "batch_size": 32,
        "methods": methods, "output": str(work / "out.json"),
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
def test_fresh_process_gives_the_recipe_scores(exported, reloaded):
    """predict_batch on padded batches of 32 (speech, text, learned weighted fusion): the
    recipes' score-file probabilities within 1e-5, since a clip scores the same in any batch."""
    _check_rows(os.path.join(exported["speech"], "scores", "test.csv"), reloaded["speech"], 1e-5)
    _check_rows(os.path.join(exported["text"], "scores", "test.csv"), reloaded["text"], 1e-5)
    _check_rows(os.path.join(exported["fusion"], "weighted", "scores", "test.csv"),
                reloaded["fused"]["weighted"], 1e-5)


@pytest.mark.slow
def test_classify_batch_is_speechbrains_tuple_of_the_decisions(exported, reloaded):
    """classify_batch returns (out_prob, score, index, text_lab) as EncoderClassifier does:
    out_prob the fused log-posteriors, score their maximum, index and text_lab its class."""
    for utt, got in reloaded["speechbrain"].items():
        fused = reloaded["fused"]["weighted"][utt]
        np.testing.assert_allclose(got["out_prob"], fused, atol=1e-7, rtol=0)
        assert got["index"] == int(np.argmax(fused)) and got["text_lab"] == CLASSES[got["index"]]
        assert got["score"] == pytest.approx(max(got["out_prob"]), abs=1e-7)


@pytest.mark.slow
def test_other_fusions_match_fuse_py(exported, reloaded):
    """znorm and logreg scale the scores (by 1/std, by the regression weights), so the
    6-decimal rounding of the score files that fuse.py reads shows at about 1e-5."""
    for method in ("znorm", "logreg"):
        _check_rows(os.path.join(exported["fusion"], method, "scores", "test.csv"),
                    reloaded["fused"][method], 1e-4)


@pytest.mark.slow
def test_predict_file_matches_the_recipe_on_every_utterance(exported, reloaded):
    """One file at a time gives the score-file rows of the recipe, fused and speech alone;
    classify_file gives the same decision as SpeechBrain's tuple."""
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
        out_prob, text_lab = result["classify_file"]
        np.testing.assert_allclose(probabilities(out_prob), expected_fused, atol=1e-5)
        assert text_lab == got["label"]
        alone = result["speech"]
        assert alone["decided_by"] == "speech" and alone["flags"] == ["speech_only_no_text"]
        assert alone["text"] is None
        np.testing.assert_allclose([alone["probabilities"][c] for c in CLASSES], expected_speech, atol=1e-5)


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
    reference = multimodal.predict_file(path, text=transcript)
    converted = multimodal.predict_file(stereo, text=transcript)
    assert converted.flags == ["resampled", "downmixed"] and reference.flags == []
    assert converted.label == reference.label
    for c in CLASSES:
        assert abs(converted.probabilities[c] - reference.probabilities[c]) < 1e-2
        assert abs(converted.speech.probabilities[c] - reference.speech.probabilities[c]) < 1e-2
    out_prob = multimodal.classify_file(stereo, text=transcript)[0]
    np.testing.assert_allclose(out_prob[0].exp().numpy(), [converted.probabilities[c] for c in CLASSES], atol=1e-6)


@pytest.mark.slow
def test_short_clip_is_padded_and_flagged(multimodal, clip, tmp_path):
    _, path, _ = clip
    signal = load_audio(path, 16000)[:800]  # 0.05 s
    short = str(tmp_path / "short.wav")
    soundfile.write(short, signal.numpy(), 16000, subtype="FLOAT")
    result = multimodal.predict_file(short, text="Fine.")
    assert result.flags == ["padded_short_clip"] and result.decided_by == "fusion:weighted"
    padded = torch.zeros(8000)
    padded[:800] = signal
    # the same 800 samples given as a padded batch item (relative length 0.1)
    out_prob = multimodal.classify_batch(padded.unsqueeze(0), torch.tensor([0.1]), ["Fine."])[0]
    np.testing.assert_allclose([result.probabilities[c] for c in CLASSES], out_prob[0].exp().numpy(), atol=1e-6)
    assert abs(result.duration - 0.05) < 1e-9


@pytest.mark.slow
def test_empty_text_gives_the_speech_result(multimodal, clip):
    _, path, _ = clip
    speech_only = multimodal.predict_file(path)
    for empty in ("", "   "):
        result = multimodal.predict_file(path, text=empty)
        assert result.flags == ["speech_only_empty_text"]
        assert result.decided_by == "speech" and result.text is None
        assert result.probabilities == speech_only.probabilities
        assert result.speech.probabilities == speech_only.probabilities
        out_prob = multimodal.classify_file(path, text=empty)[0]
        np.testing.assert_allclose(out_prob[0].exp().numpy(), [speech_only.probabilities[c] for c in CLASSES],
                                   atol=1e-6)
    batch = multimodal.predict_batch(load_audio(path).repeat(3, 1), torch.ones(3), ["", "Oh no.", None])
    assert batch.decided_by == ["speech", "fusion:weighted", "speech"]
    assert batch.flags == [["speech_only_empty_text"], [], ["speech_only_no_text"]]
    assert torch.isnan(batch.text_log_posteriors[0]).all() and torch.isnan(batch.text_log_posteriors[2]).all()
    assert torch.equal(batch.log_posteriors[0], batch.speech_log_posteriors[0])
    assert batch.predictions()[0].text is None and batch.predictions()[1].text is not None
    for empty in ("", " "):  # with no audio, an empty text leaves nothing to classify
        with pytest.raises(InterfaceError, match="is empty"):
            multimodal.predict_text(empty)
        with pytest.raises(InterfaceError, match="is empty"):
            multimodal.text.classify_batch(["Fine.", empty])


@pytest.mark.slow
def test_text_alone_gives_the_text_recipe_score(exported, multimodal, clip):
    utt, _, transcript = clip
    text = read_scores(os.path.join(exported["text"], "scores", "test.csv"))
    result = multimodal.predict_text(transcript)
    assert result.decided_by == "text" and result.speech is None and result.flags == []
    np.testing.assert_allclose([result.probabilities[c] for c in CLASSES],
                               probabilities(text.scores[text.ids.index(utt)]), atol=1e-5)


@pytest.mark.slow
def test_long_transcript_is_truncated_and_flagged(multimodal, clip):
    _, path, _ = clip
    result = multimodal.predict_file(path, text="so very angry " * 200)
    assert result.flags == ["truncated_text"] and result.decided_by == "fusion:weighted"
    assert multimodal.predict_text("so very angry " * 200).flags == ["truncated_text"]


@pytest.mark.slow
def test_unreadable_audio_is_a_clear_error(multimodal, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 4)
    empty = str(tmp_path / "empty.wav")
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    missing = str(tmp_path / "missing.wav")
    for path, words in ((str(corrupt), "cannot read"), (empty, "no samples"), (missing, "not found")):
        for call in (multimodal.predict_file, multimodal.classify_file):
            with pytest.raises(AudioError, match=words) as error:
                call(path, text="hello")
            assert path in str(error.value)


# ------------------------------------------------ fast: a random tiny model in-process ----


def tiny_hparams(**changes):
    """The hparams of a tiny speech interface with short thresholds (windowing is cheap)."""
    from hyperpyyaml import load_hyperpyyaml

    hparams = load_hyperpyyaml("""
        sample_rate: 16000
        min_duration: 0.5
        max_duration: 3.0
        window_duration: 2.0
        window_hop: 1.5
        window_batch_size: 2
        silence_rms: 1.0e-4
        log_softmax: !new:speechbrain.nnet.activations.Softmax
            apply_log: True
    """)
    hparams["label_encoder"] = label_encoder(CLASSES)
    hparams.update(changes)
    return hparams


@pytest.fixture(scope="module")
def tiny():
    """A SpeechEmotionRecognizer on randomly initialised tiny modules (no training)."""
    from speechbrain.lobes.features import Fbank
    from speechbrain.processing.features import InputNormalization

    torch.manual_seed(0)
    encoder = ResNetEncoder(n_mels=16, channels=[2, 4, 4, 8], blocks=[1, 1, 1, 1])
    modules = {"compute_features": Fbank(n_mels=16), "mean_var_norm": InputNormalization(norm_type="sentence"),
               "encoder": encoder, "classifier": EmbeddingClassifier(encoder.output_size, 4, embedding_size=8)}
    return SpeechEmotionRecognizer(modules=modules, hparams=tiny_hparams(), run_opts={"device": "cpu"})


def test_long_clip_is_scored_on_averaged_windows(tiny):
    signal = torch.randn(5 * 16000) * 0.1
    scores, flags = tiny.log_posteriors(signal.unsqueeze(0))
    assert flags == [["windowed_long_clip"]]
    starts = [0, 24000, 48000]  # 2 s windows every 1.5 s; the last one ends at 5 s
    with torch.no_grad():
        windows = torch.stack([signal[s:s + 32000] for s in starts])
        expected = torch.log_softmax(tiny._log_posteriors(windows, torch.ones(3)).mean(0), dim=-1)
    assert torch.allclose(scores[0], expected, atol=1e-6)
    assert torch.allclose(scores.exp().sum(), torch.tensor(1.0))
    # the embedding of a long clip is the mean of its windows' embeddings
    with torch.no_grad():
        expected_embedding = tiny._embed(windows, torch.ones(3)).mean(0)
    torch.testing.assert_close(tiny.encode_batch(signal.unsqueeze(0))[0, 0], expected_embedding, atol=1e-6, rtol=0)


def test_batch_of_short_normal_and_long_clips(tiny):
    short, normal, long = torch.randn(1000), torch.randn(20000), torch.randn(60000)
    batch = torch.zeros(3, 60000)
    batch[0, :1000], batch[1, :20000], batch[2] = short, normal, long
    lens = torch.tensor([1000, 20000, 60000]) / 60000
    result = tiny.predict_batch(batch, lens)
    assert result.flags == [["padded_short_clip"], [], ["windowed_long_clip"]]
    assert result.labels == [CLASSES[int(i)] for i in result.log_posteriors.argmax(1)]
    assert result.speech_log_posteriors is not None and result.text_log_posteriors is None
    # SpeechBrain's tuple, as EncoderClassifier.classify_batch returns it
    out_prob, score, index, text_lab = tiny.classify_batch(batch, lens)
    assert torch.equal(out_prob, result.log_posteriors) and text_lab == result.labels
    assert torch.equal(score, out_prob.max(dim=1).values) and index.tolist() == out_prob.argmax(dim=1).tolist()
    assert tiny.encode_batch(batch, lens).shape == (3, 1, 8)
    # every item scores as in a batch of its own, whatever its neighbours (the padding is masked)
    for index, clip in enumerate((short, normal, long)):
        alone = tiny.classify_batch(clip.unsqueeze(0))[0]
        assert torch.allclose(result.log_posteriors[index], alone[0], atol=1e-6)
    padded = torch.zeros(1, 8000)
    padded[0, :1000] = short
    with torch.no_grad():  # padded for the network, scored on its real 1000 samples
        expected_short = tiny._log_posteriors(padded, torch.tensor([1000 / 8000]))[0]
    assert torch.allclose(result.log_posteriors[0], expected_short, atol=1e-6)
    with torch.no_grad():
        expected_normal = tiny._log_posteriors(normal.unsqueeze(0), torch.ones(1))[0]
    assert torch.allclose(result.log_posteriors[1], expected_normal, atol=1e-6)


def test_texts_must_match_the_batch_and_none_means_no_text(tiny):
    wavs = torch.randn(3, 16000) * 0.1
    fusion = {"method": "weighted", "classes": CLASSES, "weight": 0.5}
    mixed = MultimodalEmotionRecognizer(
        modules={**dict(tiny.mods), **text_modules(n_classes=4)},
        hparams={"speech": tiny_hparams(), "text": text_hparams(CLASSES), "fusion_params": fusion})
    for texts in (["one"], ["one", "two", "three", "four"]):
        with pytest.raises(InterfaceError, match=f"{len(texts)} texts for a batch of 3"):
            mixed.classify_batch(wavs, None, texts)
    result = mixed.predict_batch(wavs, None, ["Hello there.", None, " "])
    assert result.flags == [[], ["speech_only_no_text"], ["speech_only_empty_text"]]
    assert result.decided_by == ["fusion:weighted", "speech", "speech"]
    speech = tiny.predict_batch(wavs)
    torch.testing.assert_close(result.speech_log_posteriors, speech.log_posteriors, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.log_posteriors[1:], speech.log_posteriors[1:], atol=1e-6, rtol=0)
    # the fused row: log_softmax(0.5 speech + 0.5 text)
    text = mixed.text.classify_batch(["Hello there."])[0]
    expected = torch.log_softmax(0.5 * speech.log_posteriors[0].double() + 0.5 * text[0].double(), dim=-1)
    torch.testing.assert_close(result.log_posteriors[0].double(), expected, atol=1e-6, rtol=0)
    none = mixed.predict_batch(wavs)  # texts=None: no text for any clip
    assert none.flags == [["speech_only_no_text"]] * 3 and none.text_log_posteriors is None


def test_input_handling_is_checked_when_loading(tiny):
    for key, value, words in (("window_duration", 40.0, "window_duration <= max_duration"),
                              ("min_duration", 0.0, "0 < min_duration"),
                              ("window_hop", 0.0, "window_hop"),
                              ("window_hop", "soon", "window_hop must be a number"),
                              ("window_batch_size", 0, "window_batch_size"),
                              ("silence_rms", -1e-4, "silence_rms must be >= 0"),
                              ("silence_rms", float("nan"), "silence_rms must be >= 0"),
                              ("silence_rms", "quiet", "silence_rms must be a number")):
        with pytest.raises(InterfaceError, match=words):
            SpeechEmotionRecognizer(modules=dict(tiny.mods), hparams=tiny_hparams(**{key: value}))
    # every setting is required (no defaults: an old folder without one does not load)
    for key in INPUT_HANDLING:
        hparams = tiny_hparams()
        del hparams[key]
        with pytest.raises(ValueError, match=key):
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
    signal, flags = read_audio_file(stereo, 16000)
    assert flags == ["resampled", "downmixed"] and signal.shape == (16000,)
    result = tiny.predict_file(stereo)
    assert result.flags == ["resampled", "downmixed"] and result.duration == 1.0
    np.testing.assert_allclose(tiny.classify_file(stereo)[0][0].exp().numpy(),
                               [result.probabilities[c] for c in CLASSES], atol=1e-6)
    nan_file = str(tmp_path / "nan.wav")
    data = np.zeros(16000, dtype=np.float32)
    data[100] = np.nan
    soundfile.write(nan_file, data, 16000, subtype="FLOAT")
    for call in (tiny.predict_file, tiny.classify_file):
        with pytest.raises(AudioError, match="non-finite") as error:
            call(nan_file)
        assert nan_file in str(error.value)


def test_speech_interface_needs_speech_modules(tiny):
    with pytest.raises(InterfaceError, match=r"needs the module\(s\) compute_features, mean_var_norm, encoder, classifier"):
        SpeechEmotionRecognizer(modules={}, hparams=tiny_hparams())


# ------------------------------------------- short, silent and truncated inputs (fast) ----


def test_short_clip_padding_is_excluded_from_normalisation_and_pooling(tiny):
    """A clip shorter than min_duration is zero-padded for the network, but its relative
    length counts only its real samples: the score is the modules' own computation on the
    padded clip with relative length 3000 / 8000 (as a recipe's padded batch item), not the
    one with relative length 1 that lets the padding into the sentence mean/variance and
    the statistics pooling."""
    clip = torch.randn(3000, generator=torch.Generator().manual_seed(3)) * 0.1
    scores, flags = tiny.log_posteriors(clip.unsqueeze(0))
    assert flags == [["padded_short_clip"]]
    padded = torch.zeros(1, 8000)  # min_duration 0.5 s at 16 kHz
    padded[0, :3000] = clip

    def direct(frames):
        # the clip alone has 1 + 3000 // 160 = 19 frames of the padded clip's 51, hence
        # ceil(19 / 8) = 3 of 7 pooled frames (mmer_lobes.resnet.trunk_lengths)
        lens = torch.tensor([frames / 51])
        with torch.no_grad():
            feats = tiny.mods.compute_features(padded)
            assert feats.shape[1] == 51
            feats = tiny.mods.mean_var_norm(feats, lens)
            pooled = tiny.mods.encoder(feats, lens)
            return tiny.hparams.log_softmax(tiny.mods.classifier(pooled))[0]

    torch.testing.assert_close(scores[0], direct(19), atol=1e-5, rtol=0)
    assert (scores[0] - direct(51)).abs().max() > 1e-4  # 4.2e-4 with this seeded tiny model


def test_silent_input_is_flagged(tiny):
    """RMS below silence_rms (over the real samples) flags silent_input; the clip is scored."""
    noise = torch.randn(3, 16000, generator=torch.Generator().manual_seed(4))
    batch = torch.stack([torch.zeros(16000), 1e-6 * noise[0], 0.1 * noise[1]])
    result = tiny.predict_batch(batch)
    assert result.flags == [["silent_input"], ["silent_input"], []]
    assert torch.isfinite(result.log_posteriors).all()
    # a short silent clip is flagged whatever its padding; a loud one padded in a batch is not
    padded = torch.zeros(2, 16000)
    padded[1, :4000] = 0.1 * noise[2, :4000]
    result = tiny.predict_batch(padded, torch.tensor([0.25, 0.25]))
    assert result.flags == [["padded_short_clip", "silent_input"], ["padded_short_clip"]]
    off = SpeechEmotionRecognizer(modules=dict(tiny.mods), hparams=tiny_hparams(silence_rms=0.0))
    assert off.predict_batch(torch.zeros(1, 16000)).flags == [[]]
    # RMS over the real samples only: 200 samples at RMS 2e-4 (above 1e-4) are not silent,
    # though over the 8000 samples they are padded to their RMS would be 3e-5
    quiet = torch.zeros(1, 16000)
    quiet[0, :200] = 2e-4 * torch.sign(noise[0, :200])
    assert tiny.predict_batch(quiet, torch.tensor([200 / 16000])).flags == [["padded_short_clip"]]
    # RMS about the mean: a DC offset (a cheap input's bias) is not sound
    assert tiny.predict_batch(torch.full((1, 16000), 1e-3)).flags == [["silent_input"]]


def test_checked_in_speech_yaml_holds_the_input_handling():
    """The input-handling settings live in hparams/inference/speech.yaml (read without
    building any object), with the documented silence threshold."""
    from ruamel.yaml import YAML

    with open(INFERENCE_YAML["speech"], encoding="utf-8") as handle:
        values = YAML(typ="rt").load(handle)
    assert set(INPUT_HANDLING) <= set(values) and values["silence_rms"] == 1e-4


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
    result = tiny.predict_file(truncated)
    assert result.flags == ["truncated_file"] and result.duration == 0.75
    assert tiny.predict_file(intact).flags == []
    stereo = str(tmp_path / "stereo8k.wav")
    soundfile.write(stereo, np.stack([signal, signal], axis=1), 8000, subtype="FLOAT")
    cut = _truncated_copy(stereo, str(tmp_path / "stereo8k_cut.wav"), 1001)
    assert tiny.predict_file(cut).flags == ["resampled", "downmixed", "truncated_file"]
    header_only = _truncated_copy(intact, str(tmp_path / "header.wav"), 32000)  # all data
    with pytest.raises(AudioError, match="no samples") as error:
        tiny.predict_file(header_only)
    assert header_only in str(error.value) and "declares 16000 samples" in str(error.value)
    broken = _truncated_copy(intact, str(tmp_path / "broken.wav"), 32044 - 30)
    for call in (tiny.predict_file, tiny.classify_file):
        with pytest.raises(AudioError, match="cannot read audio file") as error:
            call(broken)
        assert broken in str(error.value)
