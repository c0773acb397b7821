"""SpeechBrain speaker models (ECAPA-TDNN, ResNet, x-vector) as this project's encoder.

A SpeechBrain speaker model in the hub layout (``spkrec-ecapa-voxceleb``...) is a folder with
``hyperparams.yaml`` (``compute_features``, ``mean_var_norm``, ``embedding_model``, and
usually ``mean_var_norm_emb``), ``embedding_model.ckpt`` and ``mean_var_norm_emb.ckpt``.
:func:`import_speechbrain_folder` turns it into an encoder definition and the weights of an
:class:`~mmer_lobes.embedding_encoder.EmbeddingEncoder`, building the network with SpeechBrain's own lobe classes from the
model's own YAML nodes, so nothing of it is re-implemented here.
"""
import os

import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references

from mmer_lobes.embedding_encoder import EmbeddingEncoder
from mmer_lobes.encoder_folders import EncoderFolderError, render_template
from mmer_lobes.errors import one_line
from mmer_lobes.hparams_files import parse_yaml_tree
from mmer_lobes.transfer import describe_mismatch, state_dict_mismatch

HUB_FILES = {"hyperparams": "hyperparams.yaml", "embedding_model": "embedding_model.ckpt",
             "embedding_norm": "mean_var_norm_emb.ckpt"}
NEEDED_NODES = ("compute_features", "mean_var_norm", "embedding_model")


def _hub_file(folder, name, required=True):
    path = os.path.join(folder, HUB_FILES[name])
    if required and not os.path.isfile(path):
        raise EncoderFolderError(f"{folder} holds no {HUB_FILES[name]}: not a SpeechBrain speaker model in the hub layout")
    return path


def _load_weights(path):
    """A checkpoint of plain tensors (``weights_only``); an unreadable one is an error naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unreadable, truncated, or pickled objects
        raise EncoderFolderError(f"cannot read {path}: {one_line(error)[:200]}") from None


def _embedding_norm(folder, hub, output_size):
    """``(mean, std)`` of the model's embedding normalisation; ``(0, 1)`` when it has none."""
    mean, std = torch.zeros(output_size), torch.ones(output_size)
    if "mean_var_norm_emb" not in hub:
        return mean, std
    path = _hub_file(folder, "embedding_norm")
    stats = _load_weights(path)
    norm = hub["mean_var_norm_emb"]
    needed = ["glob_mean", "glob_std"] if getattr(norm, "std_norm", False) else ["glob_mean"]
    if not isinstance(stats, dict) or any(key not in stats for key in needed):
        raise EncoderFolderError(f"{path} holds no {' and '.join(needed)}: not the SpeechBrain InputNormalization "
                                 "checkpoint that mean_var_norm_emb names")
    if getattr(norm, "norm_type", "global") != "global":
        raise EncoderFolderError(f"{HUB_FILES['hyperparams']}: mean_var_norm_emb has norm_type "
                                 f"{norm.norm_type!r}; only a global embedding normalisation converts")
    mean = torch.as_tensor(stats["glob_mean"], dtype=torch.float32).reshape(-1)
    if getattr(norm, "std_norm", False):
        std = torch.as_tensor(stats["glob_std"], dtype=torch.float32).reshape(-1)
    if mean.numel() != output_size or std.numel() != output_size:
        raise EncoderFolderError(f"{path}: glob_mean has {mean.numel()} values for embeddings of {output_size}")
    return mean, std


def import_speechbrain_folder(folder):
    """The encoder definition text and ``encoder.ckpt`` state of a SpeechBrain speaker model.

    Arguments
    ---------
    folder : str
        A speaker-model folder in the hub layout (see the module docstring).

    Returns
    -------
    text : str
        The definition (``hparams/encoders/speechbrain_embedding.yaml`` with the model's nodes).
    state_dict : dict
        The weights of its :class:`~mmer_lobes.embedding_encoder.EmbeddingEncoder`.

    Example
    -------
    >>> import tempfile
    >>> import_speechbrain_folder(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.encoder_folders.EncoderFolderError: ... holds no hyperparams.yaml: not a SpeechBrain speaker model in the hub layout
    """
    path = _hub_file(folder, "hyperparams")
    try:
        with open(path, encoding="utf-8") as handle:
            resolved = resolve_references(handle).getvalue()
        hub = load_hyperpyyaml(resolved)
    except Exception as error:  # a YAML that does not parse or build
        raise EncoderFolderError(f"{path} does not load: {one_line(error)[:300]}") from None
    missing = [key for key in NEEDED_NODES if key not in hub]
    if missing:
        raise EncoderFolderError(f"{path} defines no {', '.join(missing)}: a SpeechBrain speaker model defines "
                                 f"{', '.join(NEEDED_NODES)}")
    # Per-utterance feature normalisation only: a global or batch one keeps statistics that
    # neither encoder.ckpt nor the emotion recipe's checkpoints carry.
    norm_type = getattr(hub["mean_var_norm"], "norm_type", "sentence")
    if norm_type != "sentence":
        raise EncoderFolderError(f"{path}: mean_var_norm has norm_type {norm_type!r}; only a per-utterance "
                                 "('sentence') feature normalisation converts")
    model = hub["embedding_model"]
    weights = _hub_file(folder, "embedding_model")
    state = _load_weights(weights)
    if not isinstance(state, dict):
        raise EncoderFolderError(f"{weights} holds no state dict")
    problems = describe_mismatch(state_dict_mismatch(model, state))
    if problems:
        raise EncoderFolderError(f"{weights} does not fit the embedding_model of {HUB_FILES['hyperparams']}: {problems}")
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        feats = hub["compute_features"](torch.zeros(1, 16000))
        output_size = int(model(feats, torch.ones(1)).reshape(1, -1).shape[1])
    encoder = EmbeddingEncoder(model, output_size)
    encoder.embedding_mean, encoder.embedding_std = _embedding_norm(folder, hub, output_size)
    tree = parse_yaml_tree(resolved)
    # the front end's own rate (SpeechBrain's Fbank keeps it in its STFT), else the YAML's key
    stft = getattr(hub["compute_features"], "compute_STFT", None)
    sample_rate = int(getattr(stft, "sample_rate", hub.get("sample_rate", 16000)))
    text = render_template("speechbrain_embedding", {"sample_rate": sample_rate, "output_size": output_size},
                           nodes={key: tree[key] for key in NEEDED_NODES})
    return text, encoder.state_dict()
