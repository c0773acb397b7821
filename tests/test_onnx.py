"""ONNX export of the speech model (mmer_lobes.onnx_speech): onnxruntime against PyTorch on
single clips of several lengths and on a padded batch (each row against its clip alone),
non-trivial batch-norm statistics, the frame masking in the graph, and the errors."""
import os

import onnx
import pytest
import torch
from speechbrain.processing.features import InputNormalization

from mmer_lobes.errors import ProjectError
from mmer_lobes.onnx_speech import (
    OnnxScoringError,
    OnnxSpeechScorer,
    SpeechScoringGraph,
    export_speech_onnx,
    padded_example,
)
from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder
from test_resnet import randomise_batch_norm

N_MELS, ATOL = 32, 1e-4
LENGTHS = (37, 100, 333)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(PyTorch graph, onnxruntime scorer, path) of a small trained-looking model."""
    torch.manual_seed(0)
    encoder = ResNetEncoder(N_MELS, [4, 8, 16, 32], [1, 1, 1, 1])
    classifier = EmbeddingClassifier(encoder.output_size, 4, embedding_size=16)
    randomise_batch_norm(encoder, 0)
    randomise_batch_norm(classifier, 1)
    modules = {"mean_var_norm": InputNormalization(norm_type="sentence", std_norm=True),
               "encoder": encoder, "classifier": classifier}
    path = export_speech_onnx(modules, str(tmp_path_factory.mktemp("onnx") / "speech.onnx"), N_MELS)
    graph = SpeechScoringGraph(**modules).eval()
    return graph, OnnxSpeechScorer(path), path


def clip(frames, seed):
    """Un-normalised filterbank-like features of one clip ``(1, frames, N_MELS)``."""
    return padded_example(N_MELS, frames, [1.0], seed=seed)[0]


def test_graph_interface(exported):
    _, _, path = exported
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ["features", "lengths"]
    assert [o.name for o in model.graph.output] == ["log_posteriors"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time", N_MELS]
    # the trunk's frame masking was traced (masked_fill -> Where), not the unpadded branch
    assert sum(node.op_type == "Where" for node in model.graph.node) >= 4


def test_training_mode_restored(tmp_path):
    encoder = ResNetEncoder(16, [2, 4, 4, 8], [1, 1, 1, 1])
    classifier = EmbeddingClassifier(encoder.output_size, 2, embedding_size=8).eval()
    modules = {"mean_var_norm": InputNormalization(norm_type="sentence"), "encoder": encoder, "classifier": classifier}
    export_speech_onnx(modules, str(tmp_path / "m.onnx"), 16, check_frames=0)
    assert encoder.training and not classifier.training


@pytest.mark.parametrize("frames", LENGTHS)
def test_single_clips_match_pytorch(exported, frames):
    graph, scorer, _ = exported
    feats = clip(frames, seed=frames)
    with torch.no_grad():
        expected = graph(feats, torch.ones(1))
    got = scorer(feats, torch.ones(1))
    assert got.shape == (1, 4)
    assert (got - expected).abs().max().item() <= ATOL
    assert (scorer(feats) - expected).abs().max().item() <= ATOL  # lengths default to unpadded


def test_padded_batch_matches_each_clip_alone(exported):
    graph, scorer, _ = exported
    frames = [100, 37, 333, 64]
    clips = [clip(n, seed=10 + i) for i, n in enumerate(frames)]
    longest = max(frames)
    batch = torch.zeros(len(clips), longest, N_MELS)
    for row, feats in enumerate(clips):
        batch[row, : feats.shape[1]] = feats[0]
    lengths = torch.tensor(frames, dtype=torch.float32) / longest
    got = scorer(batch, lengths)
    with torch.no_grad():
        batched = graph(batch, lengths)
        alone = torch.cat([graph(feats, torch.ones(1)) for feats in clips])
    assert (got - batched).abs().max().item() <= ATOL
    assert (got - alone).abs().max().item() <= ATOL
    assert torch.equal(got.argmax(dim=1), alone.argmax(dim=1))


def test_matches_the_speech_interface(exported):
    """The graph is the network part of SpeechEmotionRecognizer: same log-posteriors from the
    same filterbank features."""
    from speechbrain.dataio.encoder import CategoricalEncoder
    from speechbrain.lobes.features import Fbank

    from mmer_lobes.interfaces import SpeechEmotionRecognizer

    graph, scorer, _ = exported
    labels = CategoricalEncoder()
    labels.update_from_iterable(["ang", "hap", "neu", "sad"])
    hparams = {"label_encoder": labels, "n_classes": 4, "sample_rate": 16000, "min_duration": 0.5,
               "max_duration": 30.0, "window_duration": 10.0, "window_hop": 5.0, "window_batch_size": 1,
               "silence_rms": 1.0e-4, "log_softmax": torch.nn.LogSoftmax(dim=-1)}
    fbank = Fbank(n_mels=N_MELS)
    modules = {"compute_features": fbank, "mean_var_norm": graph.mean_var_norm, "encoder": graph.encoder,
               "classifier": graph.classifier}
    model = SpeechEmotionRecognizer(modules=modules, hparams=hparams, run_opts={"device": "cpu"})
    wav = 0.1 * torch.randn(1, 24000, generator=torch.Generator().manual_seed(3))
    expected, _ = model.log_posteriors(wav)
    assert (scorer(fbank(wav)) - expected).abs().max().item() <= ATOL


def test_missing_or_bad_file(tmp_path, exported):
    with pytest.raises(OnnxScoringError, match="no such ONNX file") as caught:
        OnnxSpeechScorer(str(tmp_path / "absent.onnx"))
    assert isinstance(caught.value, ProjectError)
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(OnnxScoringError, match="cannot load"):
        OnnxSpeechScorer(str(tmp_path / "garbage.onnx"))
    _, scorer, _ = exported
    with pytest.raises(OnnxScoringError, match=r"\(batch, time, 32\)"):
        scorer(torch.zeros(1, 50, 16))
    with pytest.raises(OnnxScoringError, match=r"lengths must be \(2,\), one per clip; got \(3,\)"):
        scorer(torch.zeros(2, 50, 32), torch.ones(3))


def test_missing_onnxruntime(monkeypatch, exported):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ProjectError, match="onnxruntime is not installed"):
        OnnxSpeechScorer(exported[2])
    assert os.path.isfile(exported[2])
