"""Evaluation batches of the speech models: how many clips at a time, and which together.

The ResNet trunk zeroes the padding of a batch before every convolution that mixes frames
(:mod:`mmer_lobes.resnet`), so a clip gets the same score in any batch as alone, and the batch
size is a question of speed only. It is chosen per device type: on the development machine's
CPU one clip at a time is fastest (a padded batch's activations fall out of cache), on a GPU
a batch (``make bench`` measures both; ``results/bench.md``). An encoder that does not declare
``batch_exact`` (SpeechBrain's ECAPA-TDNN, whose convolutions and attentive pooling see the
padding) is always scored one clip at a time, so its scores do not depend on batching either.
Clips are batched in order of duration, so that little is spent on padding.
"""


def eval_batch_size(encoder, device, batch_size, cpu_batch_size):
    """The evaluation batch size for ``encoder`` on ``device``.

    Arguments
    ---------
    encoder : torch.nn.Module
        Batched only if it has ``batch_exact = True``.
    device : str or torch.device
        "cpu", "cuda:0", ...
    batch_size : int
        The size on an accelerator.
    cpu_batch_size : int
        The size on a CPU.

    Example
    -------
    >>> from mmer_lobes.resnet import ResNetEncoder
    >>> encoder = ResNetEncoder(n_mels=32, channels=[4, 8, 16, 32])
    >>> eval_batch_size(encoder, "cuda:0", 32, 1), eval_batch_size(encoder, "cpu", 32, 1)
    (32, 1)
    >>> import torch
    >>> eval_batch_size(torch.nn.Linear(2, 2), "cuda:0", 32, 1)
    1
    """
    if not getattr(encoder, "batch_exact", False):
        return 1
    return int(cpu_batch_size if str(device).startswith("cpu") else batch_size)


def length_sorted_batches(lengths, batch_size):
    """Indices of ``lengths`` in batches of at most ``batch_size``, longest first, so that the
    clips of a batch have similar lengths.

    Example
    -------
    >>> length_sorted_batches([3, 9, 1, 7, 5], 2)
    [[1, 3], [4, 0], [2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def eval_loader_options(hparams, device):
    """A recipe's ``eval_dataloader_opts`` with the batch size of :func:`eval_batch_size` for
    its ``encoder`` on ``device``, from its ``eval_batch_size`` and ``cpu_eval_batch_size``.

    Example
    -------
    >>> from mmer_lobes.resnet import ResNetEncoder
    >>> hparams = {"encoder": ResNetEncoder(n_mels=32, channels=[4, 8, 16, 32]), "eval_batch_size": 32,
    ...            "cpu_eval_batch_size": 1, "eval_dataloader_opts": {"num_workers": 2}}
    >>> eval_loader_options(hparams, "cuda:0")
    {'num_workers': 2, 'batch_size': 32}
    """
    hparams = hparams if isinstance(hparams, dict) else vars(hparams)
    size = eval_batch_size(hparams["encoder"], device, hparams["eval_batch_size"], hparams["cpu_eval_batch_size"])
    return {**hparams["eval_dataloader_opts"], "batch_size": size}
