"""A speaker-embedding network as this project's encoder: features to one vector per clip.

SpeechBrain's speaker models (``ECAPA_TDNN``, ``ResNet``, ``Xvector``) return embeddings of
shape ``(batch, 1, size)`` and keep their embedding normalisation in a separate
``InputNormalization``; :class:`EmbeddingEncoder` gives them the interface of
:class:`~mmer_lobes.resnet.ResNetEncoder` (``(batch, output_size)`` and ``output_size``), so
the emotion recipes and interfaces take either. ``mmer_lobes.speechbrain_speakers`` imports a
published model into it.
"""
import torch


class EmbeddingEncoder(torch.nn.Module):
    """A SpeechBrain speaker-embedding model as an encoder: normalised features
    ``(batch, time, n_mels)`` and relative lengths to embeddings ``(batch, output_size)``.

    The speaker model's global embedding normalisation (``mean_var_norm_emb``) is applied
    from the buffers ``embedding_mean`` and ``embedding_std`` (0 and 1 when it has none).

    Arguments
    ---------
    embedding_model : torch.nn.Module
        Called as ``embedding_model(feats, lengths)``, returning ``(batch, 1, output_size)``
        (SpeechBrain's ``ECAPA_TDNN``, ``ResNet``, ``Xvector``).
    output_size : int
        The embedding's size.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> model = ECAPA_TDNN(input_size=20, channels=[8, 8, 8, 8, 24], lin_neurons=12, attention_channels=4)
    >>> encoder = EmbeddingEncoder(model, output_size=12).eval()
    >>> encoder(torch.rand(2, 50, 20), torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 12])
    """

    def __init__(self, embedding_model, output_size):
        super().__init__()
        self.embedding_model = embedding_model
        self.output_size = output_size
        self.register_buffer("embedding_mean", torch.zeros(output_size))
        self.register_buffer("embedding_std", torch.ones(output_size))

    def forward(self, feats, lengths=None):
        """The normalised embedding of each item."""
        embeddings = self.embedding_model(feats, lengths)
        embeddings = embeddings.reshape(embeddings.shape[0], -1)
        return (embeddings - self.embedding_mean) / self.embedding_std
