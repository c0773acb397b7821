"""Transfer of a pretrained speaker encoder into another task.

The checkpoint is checked against the architecture before it is loaded, so a model built
with other channels or mel bands fails with the names of the mismatched parameters instead
of a deep PyTorch traceback, then loaded through SpeechBrain's ``Pretrainer``. The recipes
give it the ``encoder.ckpt`` of a local encoder folder (:mod:`mmer_lobes.encoder_folders`).
"""
import os

import torch
from speechbrain.utils.parameter_transfer import Pretrainer

from mmer_lobes.errors import ProjectError

ENCODER_FILE = "encoder.ckpt"


class EncoderMismatchError(ProjectError, ValueError):
    """A pretrained checkpoint does not fit the encoder's architecture."""


def state_dict_mismatch(module, state_dict):
    """Lists missing keys, unexpected keys and shape mismatches between a module and a
    state dict; empty lists mean it fits.

    Example
    -------
    >>> small, big = torch.nn.Linear(2, 3), torch.nn.Linear(2, 4)
    >>> state_dict_mismatch(small, big.state_dict())["shape"]
    ['weight: checkpoint (4, 2) vs model (3, 2)', 'bias: checkpoint (4,) vs model (3,)']
    """
    expected = module.state_dict()
    shapes = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != tuple(value.shape)
    ]
    return {
        "missing": sorted(set(expected) - set(state_dict)),
        "unexpected": sorted(set(state_dict) - set(expected)),
        "shape": shapes,
    }


def describe_mismatch(problems, shown=6):
    """One line naming the problems of :func:`state_dict_mismatch` (empty when it fits).

    Example
    -------
    >>> describe_mismatch({"missing": ["a", "b"], "unexpected": [], "shape": ["c: checkpoint (2,) vs model (3,)"]})
    'missing keys: a, b; shape mismatch: c: checkpoint (2,) vs model (3,)'
    >>> describe_mismatch({"missing": list("abcdefgh"), "unexpected": [], "shape": []}, shown=2)
    'missing keys: a, b (+6 more)'
    """
    parts = []
    for kind, label in (("missing", "missing keys"), ("unexpected", "unexpected keys"), ("shape", "shape mismatch")):
        if problems[kind]:
            more = f" (+{len(problems[kind]) - shown} more)" if len(problems[kind]) > shown else ""
            parts.append(f"{label}: {', '.join(problems[kind][:shown])}{more}")
    return "; ".join(parts)


def check_encoder_checkpoint(module, path):
    """Raises :class:`EncoderMismatchError` naming the mismatched keys if the checkpoint
    at ``path`` does not fit ``module``.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.ckpt")
    >>> torch.save(torch.nn.Linear(2, 4).state_dict(), path)
    >>> check_encoder_checkpoint(torch.nn.Linear(2, 3), path)
    Traceback (most recent call last):
    ...
    mmer_lobes.transfer.EncoderMismatchError: encoder checkpoint .../encoder.ckpt does not fit the architecture: shape mismatch: weight: checkpoint (4, 2) vs model (3, 2), bias: checkpoint (4,) vs model (3,)
    """
    if not os.path.isfile(path):
        raise EncoderMismatchError(f"encoder checkpoint not found: {path}")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    problems = describe_mismatch(state_dict_mismatch(module, state_dict))
    if problems:
        raise EncoderMismatchError(f"encoder checkpoint {path} does not fit the architecture: {problems}")


def load_pretrained_encoder(encoder, source, collect_in):
    """Loads ``<source>/encoder.ckpt`` into ``encoder`` through SpeechBrain's Pretrainer.

    Arguments
    ---------
    encoder : torch.nn.Module
    source : str
        A folder holding ``encoder.ckpt`` (an encoder folder, as the recipes give it), or a
        hub repository id where a hub is reachable (no recipe passes one).
    collect_in : str
        Where the Pretrainer gathers (links) the files.

    Example
    -------
    >>> import tempfile
    >>> src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> torch.save(torch.nn.Linear(2, 3).state_dict(), os.path.join(src, ENCODER_FILE))
    >>> load_pretrained_encoder(torch.nn.Linear(2, 3), src, dst)
    """
    pretrainer = Pretrainer(
        collect_in=collect_in,
        loadables={"encoder": encoder},
        paths={"encoder": os.path.join(source, ENCODER_FILE)},
    )
    if os.path.isdir(source):
        check_encoder_checkpoint(encoder, os.path.join(source, ENCODER_FILE))
    elif source.startswith((".", os.sep, "~")) or source.count("/") != 1:
        # Not a folder, and not shaped like a hub id ("owner/name"): a wrong local path.
        raise EncoderMismatchError(f"pretrained encoder folder not found: {source}")
    pretrainer.collect_files()
    pretrainer.load_collected()


TRANSFER_MODES = ("scratch", "linear_probe", "finetune")


def transfer_param_groups(encoder, head, mode, head_lr, encoder_lr=None, scratch_lr=None):
    """Optimizer parameter groups of a transfer mode, freezing the encoder for linear probing.

    Arguments
    ---------
    encoder : torch.nn.Module
        The transferred part (convolutions + pooling).
    head : torch.nn.Module
        The new, randomly initialised fully connected layers.
    mode : str
        ``scratch`` (everything trains at ``scratch_lr``), ``linear_probe`` (frozen
        encoder, head at ``head_lr``) or ``finetune`` (encoder at ``encoder_lr``, head at
        ``head_lr``).
    head_lr, encoder_lr, scratch_lr : float

    Returns
    -------
    list of dict
        ``[{"params": ..., "lr": ..., "name": ...}, ...]`` for ``torch.optim`` classes.

    Example
    -------
    >>> encoder, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    >>> groups = transfer_param_groups(encoder, head, "finetune", head_lr=0.1, encoder_lr=0.001)
    >>> [(g["name"], g["lr"]) for g in groups]
    [('encoder', 0.001), ('head', 0.1)]
    >>> groups = transfer_param_groups(encoder, head, "linear_probe", head_lr=0.1)
    >>> [g["name"] for g in groups], encoder.weight.requires_grad
    (['head'], False)
    """
    if mode not in TRANSFER_MODES:
        raise ValueError(f"mode must be one of {TRANSFER_MODES}, got {mode!r}")
    frozen = mode == "linear_probe"
    for parameter in encoder.parameters():
        parameter.requires_grad = not frozen
    if mode == "linear_probe":
        return [{"params": list(head.parameters()), "lr": head_lr, "name": "head"}]
    if mode == "finetune":
        return [
            {"params": list(encoder.parameters()), "lr": encoder_lr, "name": "encoder"},
            {"params": list(head.parameters()), "lr": head_lr, "name": "head"},
        ]
    return [
        {"params": list(encoder.parameters()) + list(head.parameters()), "lr": scratch_lr, "name": "all"}
    ]
