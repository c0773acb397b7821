"""Tiny untrained modules and hparams for the interfaces' examples and tests (two classes,
16 mel bands, the default text model): not part of an exported folder."""
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.features import Fbank
from speechbrain.processing.features import InputNormalization

from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder
from mmer_lobes.text import BertEmotionClassifier, default_text_model_path, load_tokenizer


def speech_hparams(classes=("neu", "sad")):
    """The hparams of a tiny untrained speech interface, for the examples.

    Example
    -------
    >>> speech_hparams()["min_duration"]
    0.5
    """
    return {
        "label_encoder": label_encoder(classes), "n_classes": len(classes), "sample_rate": 16000,
        "min_duration": 0.5, "max_duration": 30.0, "window_duration": 10.0, "window_hop": 5.0,
        "window_batch_size": 1, "silence_rms": 1.0e-4, "log_softmax": torch.nn.LogSoftmax(dim=-1),
    }


def speech_modules(n_classes=2):
    """Tiny untrained speech modules (16 mel bands), for the examples.

    Example
    -------
    >>> sorted(speech_modules())
    ['classifier', 'compute_features', 'encoder', 'mean_var_norm']
    """
    encoder = ResNetEncoder(n_mels=16, channels=[2, 4, 4, 8], blocks=[1, 1, 1, 1])
    return {
        "compute_features": Fbank(n_mels=16),
        "mean_var_norm": InputNormalization(norm_type="sentence"),
        "encoder": encoder,
        "classifier": EmbeddingClassifier(encoder.output_size, n_classes, embedding_size=8),
    }


def label_encoder(classes=("neu", "sad")):
    """A label encoder holding ``classes`` in this order.

    Example
    -------
    >>> label_encoder().ind2lab
    {0: 'neu', 1: 'sad'}
    """
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(list(classes))
    return encoder


def text_hparams(classes=("neu", "sad")):
    """The hparams of a text interface on the default text model, for the examples.

    Example
    -------
    >>> text_hparams()["max_length"]
    32
    """
    return {"label_encoder": label_encoder(classes), "n_classes": len(classes),
            "tokenizer": load_tokenizer(default_text_model_path()), "max_length": 32}


def text_modules(n_classes=2):
    """An untrained text classifier head on the default text model, for the examples.

    Example
    -------
    >>> sorted(text_modules())
    ['text_classifier']
    """
    return {"text_classifier": BertEmotionClassifier(default_text_model_path(), n_classes=n_classes)}
