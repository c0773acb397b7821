"""Published wespeaker ResNets as this project's :class:`~mmer_lobes.resnet.ResNetEncoder`.

wespeaker (https://github.com/wenet-e2e/wespeaker) publishes VoxCeleb speaker models such as
``voxceleb_resnet34(_LM)``, ``voxceleb_resnet221_LM`` and ``voxceleb_resnet293_LM``: a folder
with ``config.yaml`` (``model: ResNet34`` and ``model_args``) and ``avg_model.pt`` (a state
dict). Their trunk is this project's ResNet with ReLU, BasicBlocks (ResNet18/34) or
Bottlenecks (ResNet50 and deeper), and their TSTP pooling is our statistics pooling with an
unbiased variance and ``sqrt(var + 1e-7)``; both flatten the pooled ``(C, F)`` statistics
channel-major. So a published model becomes our encoder without wespeaker installed::

    config = yaml.safe_load(open("config.yaml"))
    encoder = ResNetEncoder(**encoder_kwargs(config))
    trunk, speaker_head = convert_state_dict(torch.load("avg_model.pt"), encoder)
    encoder.load_state_dict(trunk)

The embedding layers (``seg_1``, ``seg_bn_1``, ``seg_2``) and the training-time speaker
classifier (``projection``) come back separately: the emotion head replaces them. The
features must be wespeaker's too (``feat_dim`` log Mel filterbanks, 80 for the published
models, with the mean over time subtracted).

Authors: the mmer team.
"""
import os
import re

import torch
import yaml

from mmer_lobes.encoder_folders import render_template
from mmer_lobes.errors import ProjectError
from mmer_lobes.resnet import ResNetEncoder

# wespeaker's models/resnet.py: the constructor of each name, as (block type, blocks per stage)
RESNET_BLOCKS = {
    "ResNet18": ("basic", [2, 2, 2, 2]),
    "ResNet34": ("basic", [3, 4, 6, 3]),
    "ResNet50": ("bottleneck", [3, 4, 6, 3]),
    "ResNet101": ("bottleneck", [3, 4, 23, 3]),
    "ResNet152": ("bottleneck", [3, 8, 36, 3]),
    "ResNet221": ("bottleneck", [6, 16, 48, 3]),
    "ResNet293": ("bottleneck", [10, 20, 64, 3]),
}
MODEL_ARGS = ("feat_dim", "embed_dim", "pooling_func", "two_emb_layer", "m_channels")
# wespeaker's TSTP: mean, and sqrt(torch.var(x, dim=-1) + 1e-7) with torch.var unbiased
TSTP_POOLING = {"use_std": True, "variance": "unbiased", "variance_floor": "add", "eps": 1e-7}
# what follows the pooling in a wespeaker checkpoint: not part of the encoder
HEAD_PREFIXES = ("seg_1.", "seg_bn_1.", "seg_2.", "projection.")
_TRUNK_KEY = re.compile(r"(conv1\.|bn1\.|layer\d+\.\d+\.)(.+)")
_SHOWN = 5  # keys named per kind of problem in an error message
# The published folder: config.yaml (model, model_args, dataset_args) and avg_model.pt.
CONFIG_FILE, WEIGHTS_FILE = "config.yaml", "avg_model.pt"


class WespeakerImportError(ProjectError, ValueError):
    """A wespeaker config or checkpoint that does not convert to this project's encoder."""


def encoder_kwargs(model_config):
    """:class:`~mmer_lobes.resnet.ResNetEncoder` keyword arguments of a wespeaker ResNet.

    Arguments
    ---------
    model_config : dict
        wespeaker's ``config.yaml`` (or its part with ``model`` and ``model_args``).

    Example
    -------
    >>> kwargs = encoder_kwargs({"model": "ResNet221", "model_args": {"feat_dim": 80, "embed_dim": 256}})
    >>> kwargs["block"], kwargs["blocks"], kwargs["channels"], kwargs["n_mels"]
    ('bottleneck', [6, 16, 48, 3], [32, 64, 128, 256], 80)
    >>> encoder_kwargs({"model": "ResNet34", "model_args": {"feat_dim": 80, "pooling_func": "ASTP"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    mmer_lobes.wespeaker.WespeakerImportError: pooling_func 'ASTP' is not supported: only TSTP ...
    """
    name, args = model_config.get("model"), dict(model_config.get("model_args") or {})
    if name not in RESNET_BLOCKS:
        raise WespeakerImportError(f"model {name!r} is not a wespeaker ResNet; expected one of "
                                   f"{', '.join(RESNET_BLOCKS)}")
    unknown = sorted(set(args) - set(MODEL_ARGS))
    if unknown:
        raise WespeakerImportError(f"unknown model_args for {name}: {', '.join(unknown)} "
                                   f"(known: {', '.join(MODEL_ARGS)})")
    if "feat_dim" not in args:
        raise WespeakerImportError(f"model_args of {name} lack feat_dim (the number of filterbank channels)")
    pooling = args.get("pooling_func", "TSTP")  # wespeaker's default
    if pooling != "TSTP":
        raise WespeakerImportError(f"pooling_func {pooling!r} is not supported: only TSTP (mean and "
                                   "standard deviation) converts to StatisticsPooling")
    block, blocks = RESNET_BLOCKS[name]
    width = args.get("m_channels", 32)  # wespeaker's default, which its ResNet18-293 use
    return {"n_mels": args["feat_dim"], "channels": [width, 2 * width, 4 * width, 8 * width],
            "blocks": list(blocks), "block": block, "activation": "relu",
            "flatten": "channel_major", **TSTP_POOLING}


def trunk_prefixes(blocks):
    """``{wespeaker prefix: encoder prefix}`` of the stem and of every block.

    Inside a block the names agree (conv1, bn1, ..., shortcut.0), so a key converts by its
    prefix; wespeaker numbers blocks per stage (``layer2.0``), we number them in one run.

    Example
    -------
    >>> prefixes = trunk_prefixes([2, 1, 1, 1])
    >>> prefixes["conv1."], prefixes["bn1."], prefixes["layer1.1."], prefixes["layer2.0."]
    ('trunk.stem.0.', 'trunk.stem.1.', 'trunk.stages.1.', 'trunk.stages.2.')
    """
    prefixes, index = {"conv1.": "trunk.stem.0.", "bn1.": "trunk.stem.1."}, 0
    for stage, count in enumerate(blocks, start=1):
        for block in range(count):
            prefixes[f"layer{stage}.{block}."] = f"trunk.stages.{index}."
            index += 1
    return prefixes


def _named(keys):
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def convert_state_dict(wespeaker_state, encoder):
    """The state dict of ``encoder`` from a wespeaker ResNet checkpoint, and its head apart.

    Every trunk tensor of the checkpoint must have a place of the same shape in ``encoder``,
    and every tensor of ``encoder`` must come from the checkpoint (but batch norm's
    ``num_batches_tracked`` counters, which PyTorch itself fills in when missing), so a load
    is never partial: anything else raises :class:`WespeakerImportError` naming the keys.
    Build ``encoder`` as ``ResNetEncoder(**encoder_kwargs(config))``; a ``module.`` prefix
    (DistributedDataParallel) and a ``{"state_dict": ...}`` wrapper are removed.

    Returns
    -------
    encoder_state : dict
        For ``encoder.load_state_dict(encoder_state)`` (strict).
    head_state : dict
        The embedding-layer and speaker-classifier tensors (:data:`HEAD_PREFIXES`), not loaded.

    Example
    -------
    >>> args = {"feat_dim": 16, "embed_dim": 8, "m_channels": 2}
    >>> encoder = ResNetEncoder(**encoder_kwargs({"model": "ResNet18", "model_args": args}))
    >>> theirs = {ours: wespeaker for wespeaker, ours in trunk_prefixes(encoder.trunk.blocks).items()}
    >>> def wespeaker_name(key):
    ...     prefix = next(p for p in theirs if key.startswith(p))
    ...     return "module." + theirs[prefix] + key[len(prefix):]
    >>> state = {wespeaker_name(key): value for key, value in encoder.state_dict().items()}
    >>> state["module.seg_1.weight"] = torch.zeros(8, 64)
    >>> encoder_state, head_state = convert_state_dict(state, encoder)
    >>> encoder.load_state_dict(encoder_state)
    <All keys matched successfully>
    >>> list(head_state)
    ['seg_1.weight']
    >>> del state["module.layer4.1.bn2.running_var"]
    >>> convert_state_dict(state, encoder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    mmer_lobes.wespeaker.WespeakerImportError: ... missing: layer4.1.bn2.running_var (encoder key trunk.stages.7...)
    """
    if isinstance(wespeaker_state.get("state_dict"), dict):  # wespeaker's load_checkpoint accepts this
        wespeaker_state = wespeaker_state["state_dict"]
    target = encoder.state_dict()
    prefixes = trunk_prefixes(encoder.trunk.blocks)
    converted, head, matched, unknown, misshaped = {}, {}, set(), [], []
    for key, value in wespeaker_state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key.startswith(HEAD_PREFIXES):
            head[key] = value
            continue
        match = _TRUNK_KEY.fullmatch(key)
        ours = prefixes.get(match.group(1), "?") + match.group(2) if match else None
        if ours not in target:
            unknown.append(key)
            continue
        matched.add(ours)
        if isinstance(value, torch.Tensor) and value.shape == target[ours].shape:
            converted[ours] = value
        else:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            misshaped.append(f"{key} {shape} (encoder key {ours} {tuple(target[ours].shape)})")
    theirs = {ours: wespeaker for wespeaker, ours in prefixes.items()}
    missing = [ours for ours in target if ours not in matched]
    for ours in [key for key in missing if key.endswith("num_batches_tracked")]:
        converted[ours] = torch.zeros_like(target[ours])  # a counter only momentum=None batch norm reads
        missing.remove(ours)
    named_missing = []
    for ours in missing:
        prefix = next((p for p in theirs if ours.startswith(p)), None)
        named_missing.append(f"{theirs[prefix] + ours[len(prefix):] if prefix else '?'} (encoder key {ours})")
    problems = [f"{kind}: {_named(keys)}" for kind, keys in
                (("unknown keys", unknown), ("wrong shapes", misshaped), ("missing", named_missing)) if keys]
    if problems:
        prelu = any(".act" in key or key.startswith("trunk.stem.2.") for key in missing)
        hint = " (PReLU slopes: build the encoder as ResNetEncoder(**encoder_kwargs(config)))" if prelu else ""
        raise WespeakerImportError(f"the wespeaker checkpoint does not fit the encoder: {'; '.join(problems)}{hint}")
    return converted, head


def front_end_values(config):
    """The encoder template's front-end values from a wespeaker ``config.yaml``: the fbank
    and cmvn settings of ``dataset_args`` (wespeaker's defaults where it names none).

    Example
    -------
    >>> front_end_values({"model_args": {"feat_dim": 80}, "dataset_args": {"resample_rate": 16000,
    ...     "fbank_args": {"num_mel_bins": 80, "frame_length": 25, "frame_shift": 10, "dither": 1.0}}})
    {'sample_rate': 16000, 'n_mels': 80, 'frame_length': 25, 'frame_shift': 10, 'window_type': 'hamming', 'std_norm': False}
    >>> front_end_values({"model_args": {"feat_dim": 80}, "dataset_args": {"fbank_args": {"num_mel_bins": 64}}})
    Traceback (most recent call last):
    ...
    mmer_lobes.wespeaker.WespeakerImportError: dataset_args.fbank_args.num_mel_bins is 64 but model_args.feat_dim is 80
    >>> front_end_values({"model_args": {"feat_dim": 80}, "dataset_args": {"frontend": "s3prl"}})
    Traceback (most recent call last):
    ...
    mmer_lobes.wespeaker.WespeakerImportError: dataset_args.frontend is 's3prl': only the fbank front end converts
    """
    dataset = dict(config.get("dataset_args") or {})
    frontend = dataset.get("frontend", "fbank")
    if frontend != "fbank":
        raise WespeakerImportError(f"dataset_args.frontend is {frontend!r}: only the fbank front end converts")
    fbank = dict(dataset.get("fbank_args") or {})
    feat_dim = (config.get("model_args") or {}).get("feat_dim")
    bins = fbank.get("num_mel_bins", feat_dim)
    if bins != feat_dim:
        raise WespeakerImportError(f"dataset_args.fbank_args.num_mel_bins is {bins} but model_args.feat_dim is {feat_dim}")
    cmvn = dict(dataset.get("cmvn_args") or {})
    if dataset.get("cmvn", True) is False or cmvn.get("norm_mean", True) is False:
        raise WespeakerImportError("the model was trained without mean normalisation of its features "
                                   "(dataset_args cmvn or cmvn_args.norm_mean False), which the import does not convert")
    return {"sample_rate": dataset.get("resample_rate", 16000), "n_mels": bins,
            "frame_length": fbank.get("frame_length", 25), "frame_shift": fbank.get("frame_shift", 10),
            "window_type": fbank.get("window_type", "hamming"), "std_norm": bool(cmvn.get("norm_var", False))}


def import_wespeaker_folder(folder):
    """The encoder definition text and ``encoder.ckpt`` state of a published wespeaker ResNet
    folder (``config.yaml`` + ``avg_model.pt``); see :func:`convert_state_dict`.

    Returns
    -------
    text : str
        ``hparams/encoders/wespeaker_resnet.yaml`` with the model's values.
    state_dict : dict
        The weights of its :class:`~mmer_lobes.resnet.ResNetEncoder`.

    Example
    -------
    >>> import tempfile
    >>> import_wespeaker_folder(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.wespeaker.WespeakerImportError: ... holds no config.yaml or avg_model.pt: not a wespeaker model folder (config.yaml + avg_model.pt)
    """
    paths = {name: os.path.join(folder, name) for name in (CONFIG_FILE, WEIGHTS_FILE)}
    absent = [name for name, path in paths.items() if not os.path.isfile(path)]
    if absent:
        raise WespeakerImportError(f"{folder} holds no {' or '.join(absent)}: not a wespeaker model folder "
                                   f"({CONFIG_FILE} + {WEIGHTS_FILE})")
    try:
        with open(paths[CONFIG_FILE], encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        state = torch.load(paths[WEIGHTS_FILE], map_location="cpu", weights_only=True)
    except Exception as error:  # malformed YAML, or a checkpoint that is not a plain state dict
        raise WespeakerImportError(f"cannot read the wespeaker folder {folder}: {' '.join(str(error).split())[:300]}") from None
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise WespeakerImportError(f"{folder}: {CONFIG_FILE} must be a mapping and {WEIGHTS_FILE} a state dict")
    kwargs = encoder_kwargs(config)
    values = {**front_end_values(config), **{key: kwargs[key] for key in (
        "channels", "blocks", "block", "activation", "variance", "variance_floor", "eps", "flatten")}}
    encoder_state, _ = convert_state_dict(state, ResNetEncoder(**kwargs))
    return render_template("wespeaker_resnet", values), encoder_state
