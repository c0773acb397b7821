"""ONNX export of the speech emotion model: filterbank features -> log-posteriors.

The exported graph is the network part of ``SpeechEmotionRecognizer``: InputNormalization
(per sentence) -> ResNetEncoder -> EmbeddingClassifier -> log-softmax. The filterbank front
end and the input handling (padding of short clips, windows of long ones) stay in Python.

The graph is traced with PyTorch's TorchScript exporter (``torch.onnx.export(...,
dynamo=False)``): the ``torch.export`` exporter stops at ``ResNetTrunk.forward``'s
data-dependent test "is any clip padded?". Tracing keeps the branch the example takes, so the
example is a padded batch: the frame masking is in the graph, and it is a no-op on unpadded
rows, so one graph scores single clips and padded batches exactly as PyTorch does.
``export_speech_onnx`` checks that on a second padded batch with onnxruntime.

Needs ``onnx`` (export) and ``onnxruntime`` (scoring, checks, int8), imported on use.

Authors: the mmer team.
"""
import importlib
import os
import warnings

import numpy as np
import torch

from mmer_lobes.errors import ProjectError

INPUT_NAMES = ("features", "lengths")
OUTPUT_NAME = "log_posteriors"
DEFAULT_OPSET = 17


class OnnxUnavailableError(ProjectError, ImportError):
    """``onnx`` or ``onnxruntime`` is not installed."""


class OnnxScoringError(ProjectError, ValueError):
    """A missing or unreadable ONNX file, an input of the wrong shape, or an export that does
    not reproduce PyTorch."""


def require(package):
    """Imports ``package`` (onnx, onnxruntime, ...), or raises :class:`OnnxUnavailableError`.

    Example
    -------
    >>> require("no_such_onnx_package")
    Traceback (most recent call last):
    mmer_lobes.onnx_speech.OnnxUnavailableError: no_such_onnx_package is not installed (pip install no_such_onnx_package; requirements.txt has the pin)
    """
    try:
        return importlib.import_module(package)
    except ImportError:
        root = package.split(".")[0]
        raise OnnxUnavailableError(f"{package} is not installed (pip install {root}; requirements.txt has the pin)") from None


class SpeechScoringGraph(torch.nn.Module):
    """Features ``(batch, time, n_mels)`` (not normalised) and relative lengths ``(batch,)``
    -> log-posteriors ``(batch, classes)``, as the speech interface computes them.

    Each row of a padded batch gets the scores of its clip alone: the sentence normalisation
    and the pooling skip the padding, and the ResNet trunk zeroes it before each convolution.

    Arguments
    ---------
    mean_var_norm : torch.nn.Module
        SpeechBrain's ``InputNormalization(norm_type="sentence")`` of the encoder definition.
    encoder : torch.nn.Module
        ``mmer_lobes.resnet.ResNetEncoder`` (features, lengths -> pooled statistics).
    classifier : torch.nn.Module
        ``mmer_lobes.resnet.EmbeddingClassifier``.

    Example
    -------
    >>> from speechbrain.processing.features import InputNormalization
    >>> from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder
    >>> encoder = ResNetEncoder(n_mels=16, channels=[2, 4, 4, 8], blocks=[1, 1, 1, 1])
    >>> graph = SpeechScoringGraph(InputNormalization(norm_type="sentence"), encoder,
    ...                            EmbeddingClassifier(encoder.output_size, 3, embedding_size=8)).eval()
    >>> scores = graph(torch.rand(2, 40, 16), torch.tensor([1.0, 0.5]))
    >>> scores.shape, bool(torch.allclose(scores.exp().sum(dim=1), torch.ones(2)))
    (torch.Size([2, 3]), True)
    """

    def __init__(self, mean_var_norm, encoder, classifier):
        super().__init__()
        self.mean_var_norm = mean_var_norm
        self.encoder = encoder
        self.classifier = classifier

    def forward(self, feats, lengths):
        """Log-posteriors of ``feats`` ``(batch, time, n_mels)`` with relative ``lengths``."""
        pooled = self.encoder(self.mean_var_norm(feats, lengths), lengths)
        return torch.log_softmax(self.classifier(pooled), dim=-1)


def padded_example(n_mels, frames, lengths, seed=0, device="cpu"):
    """A padded batch of filterbank-like features (``len(lengths)`` rows of ``frames``; the
    padding is zero) and its relative lengths: the tracing and checking input.

    Example
    -------
    >>> feats, lens = padded_example(8, 10, [1.0, 0.3])
    >>> feats.shape, lens.tolist(), bool((feats[1, 3:] == 0).all())
    (torch.Size([2, 10, 8]), [1.0, 0.30000001192092896], True)
    """
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths, dtype=torch.float32)
    feats = 4.0 * torch.randn(len(lengths), frames, n_mels, generator=gen) - 8.0  # log-mel-like offset and spread
    valid = torch.round(lengths * frames).long()
    feats = feats.masked_fill(torch.arange(frames)[None, :, None] >= valid[:, None, None], 0.0)
    return feats.to(device), lengths.to(device)


def export_speech_onnx(modules, path, n_mels, opset=DEFAULT_OPSET, check_frames=96, atol=1e-4):
    """Writes the speech model as ONNX to ``path`` and checks it; returns ``path``.

    Inputs ``features`` ``(batch, time, n_mels)`` float32 and ``lengths`` ``(batch,)``
    (relative, in (0, 1]); output ``log_posteriors`` ``(batch, classes)``; batch and time are
    dynamic. The file passes ``onnx.checker`` (full check), and onnxruntime must match PyTorch
    within ``atol`` on a padded batch of ``check_frames`` frames other than the traced one
    (``check_frames=0`` skips this check and the need for onnxruntime).

    Arguments
    ---------
    modules : mapping
        ``mean_var_norm``, ``encoder`` and ``classifier`` (an interface's ``mods``, or the
        ``modules`` of ``hparams/inference/speech.yaml``). Their train / eval modes are
        restored after the export.
    path : str
    n_mels : int
    opset : int
    check_frames : int
    atol : float

    Example
    -------
    >>> import tempfile
    >>> from mmer_lobes.interfaces.examples import speech_modules
    >>> modules = speech_modules(n_classes=3)  # a tiny network on 16 mel bands
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     scorer = OnnxSpeechScorer(export_speech_onnx(modules, os.path.join(folder, "speech.onnx"), 16))
    >>> scorer.input_names, scorer(torch.rand(2, 50, 16), torch.tensor([1.0, 0.7])).shape
    (['features', 'lengths'], torch.Size([2, 3]))
    """
    onnx = require("onnx")
    graph = SpeechScoringGraph(modules["mean_var_norm"], modules["encoder"], modules["classifier"])
    modes = {module: module.training for module in graph.modules()}
    device = next(graph.parameters()).device
    try:
        graph.eval()
        # padded second row: the trunk builds its frame mask only when some clip is padded
        example = padded_example(n_mels, 64, [1.0, 0.5], device=device)
        axes = {"features": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
        with warnings.catch_warnings(), torch.no_grad():
            # expected: the exporter's deprecation notice, and the tracer's note on the branch above
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, torch.jit.TracerWarning))
            torch.onnx.export(graph, example, path, dynamo=False, input_names=list(INPUT_NAMES),
                              output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset)
        _check_export(onnx, graph, path, n_mels, device, check_frames, atol)
    finally:
        for module, training in modes.items():
            module.train(training)
    return path


def _check_export(onnx, graph, path, n_mels, device, check_frames, atol):
    """Runs the checks of :func:`export_speech_onnx` on the file it wrote; a file that fails
    them is removed, so that no unchecked model is left at ``path``."""
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        if check_frames:
            feats, lengths = padded_example(n_mels, check_frames, [1.0, 0.61, 0.3], seed=1, device=device)
            with torch.no_grad():
                expected = graph(feats, lengths).cpu()
            diff = (OnnxSpeechScorer(path)(feats.cpu(), lengths.cpu()) - expected).abs().max().item()
            if not diff <= atol:
                raise OnnxScoringError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} (> {atol:g}) "
                                       "on a padded batch: the network does not trace to a faithful graph")
    except BaseException:
        if os.path.exists(path):  # never hide the check's own error behind this one
            os.remove(path)
        raise


class OnnxSpeechScorer:
    """Scores features with an exported speech model on onnxruntime's CPU provider.

    Arguments
    ---------
    path : str
        A file of :func:`export_speech_onnx` (or :func:`quantize_int8`).
    threads : int, optional
        Intra-op threads; None leaves onnxruntime's default (one per physical core).

    Example
    -------
    >>> OnnxSpeechScorer("/no/such/speech.onnx")
    Traceback (most recent call last):
    mmer_lobes.onnx_speech.OnnxScoringError: /no/such/speech.onnx: no such ONNX file (write one with export_speech_onnx)
    """

    def __init__(self, path, threads=None):
        ort = require("onnxruntime")
        if not os.path.isfile(path):
            raise OnnxScoringError(f"{path}: no such ONNX file (write one with export_speech_onnx)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own classes for a corrupt or foreign file
            raise OnnxScoringError(f"{path}: onnxruntime cannot load it: {error}") from None
        self.input_names = [node.name for node in self.session.get_inputs()]
        if self.input_names != list(INPUT_NAMES):
            raise OnnxScoringError(f"{path}: inputs {self.input_names}, expected {list(INPUT_NAMES)}")
        self.n_mels = self.session.get_inputs()[0].shape[2]

    def __call__(self, feats, lengths=None):
        """Log-posteriors ``(batch, classes)`` (a torch tensor) of ``feats`` ``(batch, time,
        n_mels)`` with relative ``lengths`` (default: no padding)."""
        feats = torch.as_tensor(feats, dtype=torch.float32).cpu()
        if feats.ndim != 3 or feats.shape[2] != self.n_mels:
            raise OnnxScoringError(f"features must be (batch, time, {self.n_mels}); got {tuple(feats.shape)}")
        lengths = torch.ones(feats.shape[0]) if lengths is None else torch.as_tensor(lengths, dtype=torch.float32)
        if lengths.shape != (feats.shape[0],):
            raise OnnxScoringError(f"lengths must be ({feats.shape[0]},), one per clip; got {tuple(lengths.shape)}")
        inputs = {"features": feats.contiguous().numpy(), "lengths": lengths.cpu().contiguous().numpy()}
        return torch.from_numpy(self.session.run([OUTPUT_NAME], inputs)[0])


def quantize_int8(onnx_path, out_path, calibration_features, op_types=("Conv",)):
    """Writes a static int8 version of an exported model (QDQ, per-channel weights), calibrated
    (min / max) on ``calibration_features``; returns ``out_path``.

    Only the ``op_types`` are quantised: the convolutions hold nearly all the compute, while the
    normalisation, masking and statistics pooling need float range.

    Arguments
    ---------
    onnx_path : str
        A file of :func:`export_speech_onnx`.
    out_path : str
    calibration_features : iterable
        Feature batches ``(batch, time, n_mels)``, or ``(features, lengths)`` pairs.
    op_types : tuple of str

    Example
    -------
    >>> import tempfile
    >>> from mmer_lobes.interfaces.examples import speech_modules
    >>> modules = speech_modules(n_classes=3)  # a tiny network on 16 mel bands
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     fp32 = export_speech_onnx(modules, os.path.join(folder, "speech.onnx"), 16)
    ...     int8 = quantize_int8(fp32, os.path.join(folder, "speech_int8.onnx"), [torch.rand(2, 60, 16)])
    ...     scorer = OnnxSpeechScorer(int8)
    >>> scorer(torch.rand(1, 50, 16)).shape
    torch.Size([1, 3])
    """
    require("onnx")
    quantization = require("onnxruntime.quantization")
    batches = [item if isinstance(item, (tuple, list)) else (item, None) for item in calibration_features]
    if not batches:
        raise OnnxScoringError("quantize_int8 needs at least one calibration batch")

    class Reader(quantization.CalibrationDataReader):
        """Feeds the calibration batches to onnxruntime's calibrator, once."""

        def __init__(self):
            self.items = iter(batches)

        def get_next(self):
            feats, lengths = next(self.items, (None, None))
            if feats is None:
                return None
            feats = torch.as_tensor(feats, dtype=torch.float32)
            lengths = torch.ones(feats.shape[0]) if lengths is None else torch.as_tensor(lengths, dtype=torch.float32)
            return {"features": feats.numpy(), "lengths": lengths.numpy().astype(np.float32)}

    import tempfile

    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as folder:
        # onnxruntime's recommended pre-processing: the exporter's folded batch-norm biases become
        # initializers (else they stay float beside int8 convolutions), and shapes are inferred
        prepared = os.path.join(folder, "prepared.onnx")
        quant_pre_process(onnx_path, prepared, skip_symbolic_shape=True)
        quantization.quantize_static(
            prepared, out_path, Reader(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
            op_types_to_quantize=list(op_types), calibrate_method=quantization.CalibrationMethod.MinMax)
    return out_path
