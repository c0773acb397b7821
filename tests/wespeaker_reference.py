"""wespeaker's own code as the reference of the wespeaker tests (not a test module).

wespeaker-unofficial is a test requirement installed with --no-deps (``make test``); importing
the package runs its ``__init__``, which imports its command line and packages that are not
installed, so :func:`wespeaker_resnet_module` loads its ``models/pooling_layers.py`` and
``models/resnet.py`` by file path under bare ``wespeaker`` and ``wespeaker.models`` package
modules. Nothing is downloaded: the models get random weights and batch-norm statistics.
"""
import contextlib
import importlib.util
import os
import sys
import types

import torch
import torch.nn as nn
import torchaudio.compliance.kaldi as kaldi

FEAT_DIM = 80
SAMPLE_RATE = 16000


@contextlib.contextmanager
def wespeaker_resnet_module():
    """wespeaker's ``models/resnet.py`` as a module, or None when wespeaker-unofficial is not
    installed; ``sys.modules`` is restored afterwards."""
    spec = importlib.util.find_spec("wespeaker")  # finds the top-level package without importing it
    if spec is None:
        yield None
        return
    root = list(spec.submodule_search_locations)[0]
    names = ("wespeaker", "wespeaker.models", "wespeaker.models.pooling_layers", "wespeaker.models.resnet")
    saved = {name: sys.modules.get(name) for name in names}
    try:
        package = types.ModuleType("wespeaker")
        package.__path__ = [root]
        models = types.ModuleType("wespeaker.models")
        models.__path__ = [os.path.join(root, "models")]
        package.models = models
        sys.modules.update({"wespeaker": package, "wespeaker.models": models})
        for name in ("pooling_layers", "resnet"):  # resnet.py imports pooling_layers
            file_spec = importlib.util.spec_from_file_location(
                f"wespeaker.models.{name}", os.path.join(root, "models", f"{name}.py"))
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[file_spec.name] = module
            file_spec.loader.exec_module(module)
            setattr(models, name, module)
        yield module
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def randomise(model, seed=0):
    """Random batch-norm statistics and affine parameters (so that batch norm is not the
    identity) on top of PyTorch's random initial weights; eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                module.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(torch.rand(n, generator=gen) - 0.5)
                module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))
    return model.eval()


def wespeaker_pooled(model, feats):
    """wespeaker's pooled statistics: TSTP of its 4-D frame-level features."""
    return model.pool(model._get_frame_level_feat(feats.clone()))  # it unsqueezes in place


def wespeaker_features(pcm):
    """wespeaker/cli/speaker.py ``Speaker.compute_features(pcm, 16000, cmn=True)`` for the
    fbank frontend with the 'hamming' window of the ResNet34 models, copied literally;
    ``pcm`` is ``(1, samples)`` on the 16-bit integer scale (torchaudio.load with
    ``normalize=False``, then ``pcm.to(torch.float)``)."""
    feat = kaldi.fbank(pcm,
                       num_mel_bins=80,
                       frame_length=25,
                       frame_shift=10,
                       sample_frequency=SAMPLE_RATE,
                       window_type="hamming")  # [T, D]
    feat = feat - torch.mean(feat, dim=0)
    return feat
