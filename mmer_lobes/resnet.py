"""The paper's ResNet34 speaker encoder with masked statistics pooling, and wespeaker's variants.

Padi et al. (2022) describe a ResNet34 (BasicBlocks 3-4-6-3) with 32-64-128-256 channels,
batch norm in every layer, PReLU everywhere except the output, statistics pooling (mean
and standard deviation over frames) and a 512-dimensional embedding layer, trained on
VoxCeleb speakers. SpeechBrain's ``lobes.models.ResNet`` is a different network
(squeeze-excitation blocks, attentive pooling, 128 channels), so this file writes the
paper's network, compactly, in the style of wespeaker's ``models/resnet.py``.

The defaults are the paper's network; keyword options give wespeaker's published ResNets
(``mmer_lobes.wespeaker``). No option renames a parameter: old checkpoints load as before.

Shapes: features ``(batch, time, n_mels)`` -> trunk ``(batch, time / 8, channels[-1] *
expansion * n_mels / 8)`` (expansion 1 for BasicBlock, 4 for Bottleneck) -> pooling
``(batch, 2 * that)`` -> embedding ``(batch, 512)``.

Authors: the mmer team.
"""
import torch
import torch.nn as nn

from mmer_lobes.errors import ProjectError


class ResNetConfigError(ProjectError, ValueError):
    """An unknown option value or an impossible shape for the ResNet lobes."""


def check_choice(option, value, choices):
    """Returns ``value`` if it is one of ``choices``, else raises :class:`ResNetConfigError`.

    Example
    -------
    >>> check_choice("activation", "gelu", ("prelu", "relu"))
    Traceback (most recent call last):
    mmer_lobes.resnet.ResNetConfigError: activation must be one of 'prelu', 'relu'; got 'gelu'
    """
    if value not in choices:
        raise ResNetConfigError(f"{option} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def make_activation(activation, channels):
    """PReLU with one slope per channel (the paper) or ReLU (wespeaker), by name.

    Example
    -------
    >>> make_activation("prelu", 8), make_activation("relu", 8)
    (PReLU(num_parameters=8), ReLU())
    """
    if check_choice("activation", activation, ("prelu", "relu")) == "prelu":
        return nn.PReLU(channels)
    return nn.ReLU()


def shortcut(in_channels, out_channels, stride):
    """A residual block's shortcut: identity, or a strided 1x1 projection with batch norm
    where the shape changes (parameter names ``shortcut.0`` / ``shortcut.1``, as wespeaker's).

    Example
    -------
    >>> shortcut(8, 8, 1)
    Sequential()
    >>> shortcut(8, 16, 2)(torch.rand(1, 8, 10, 10)).shape
    torch.Size([1, 16, 5, 5])
    """
    if stride == 1 and in_channels == out_channels:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and PReLU (or ReLU), plus a (projected) shortcut.

    Arguments
    ---------
    in_channels : int
    out_channels : int
    stride : int
        Stride of the first convolution (and of the shortcut projection).
    activation : str
        "prelu" or "relu".

    Example
    -------
    >>> block = BasicBlock(8, 16, stride=2)
    >>> block(torch.rand(2, 8, 40, 30)).shape
    torch.Size([2, 16, 20, 15])
    """

    expansion = 1  # output channels per unit of ``out_channels``

    def __init__(self, in_channels, out_channels, stride=1, activation="prelu"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = make_activation(activation, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = make_activation(activation, out_channels)
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.stride = stride

    def forward(self, x, mask=None):
        """Applies the block to ``(batch, channels, freq, time)``; ``mask`` ``(batch, 1, 1, time)``
        marks the valid frames (see :func:`masked`)."""
        x = masked(x, mask)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(masked(out, downsample_mask(mask, self.stride))))
        return self.act2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """wespeaker's bottleneck: 1x1 down to ``channels``, 3x3 (strided), 1x1 up to 4 * ``channels``.

    Batch norm after each convolution; the activation after the first two and after the sum
    with the (projected) shortcut, as in wespeaker's ``Bottleneck``, whose parameter names
    (conv1-3, bn1-3, shortcut.0-1) these are.

    Arguments
    ---------
    in_channels : int
    channels : int
        Width of the 3x3 convolution; the block outputs ``4 * channels``.
    stride : int
        Stride of the 3x3 convolution (and of the shortcut projection).
    activation : str
        "prelu" or "relu".

    Example
    -------
    >>> block = Bottleneck(8, 4, stride=2, activation="relu")
    >>> block(torch.rand(2, 8, 40, 30)).shape
    torch.Size([2, 16, 20, 15])
    """

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, activation="prelu"):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = make_activation(activation, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = make_activation(activation, channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.act3 = make_activation(activation, out_channels)
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.stride = stride

    def forward(self, x, mask=None):
        """Applies the block to ``(batch, channels, freq, time)``; ``mask`` as in
        :meth:`BasicBlock.forward`. Only the 3x3 convolution mixes frames, so only its input
        needs the mask."""
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(masked(out, mask))))
        out = self.bn3(self.conv3(out))
        return self.act3(out + self.shortcut(x))


BLOCK_TYPES = {"basic": BasicBlock, "bottleneck": Bottleneck}


def masked(x, mask):
    """``x`` with the padded frames set to zero (``mask`` None: every frame is valid).

    A 3x3 convolution with zero padding reads one frame on either side; a clip alone reads
    zeros past its last frame, so zeroing the padding of a batch before every such
    convolution gives each clip of the batch the values it has alone.

    Example
    -------
    >>> x = torch.ones(1, 1, 2, 4)
    >>> masked(x, frame_mask(torch.tensor([3]), 4))[0, 0].tolist()
    [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]]
    """
    return x if mask is None else x.masked_fill(~mask, 0.0)


def frame_mask(valid_frames, max_frames):
    """Boolean ``(batch, 1, 1, max_frames)`` mask of the first ``valid_frames`` of each row,
    laid out for ``(batch, channels, freq, time)`` maps.

    Example
    -------
    >>> frame_mask(torch.tensor([2, 3]), 3)[:, 0, 0].int().tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    return (torch.arange(max_frames, device=valid_frames.device)[None, :] < valid_frames[:, None])[:, None, None, :]


def downsample_mask(mask, stride):
    """The mask after a convolution of ``stride`` with padding 1 (every ``stride``-th frame):
    ``n`` valid frames become ``ceil(n / stride)``, as the convolution maps them.

    Example
    -------
    >>> downsample_mask(frame_mask(torch.tensor([5]), 8), 2)[0, 0, 0].int().tolist()
    [1, 1, 1, 0]
    """
    return mask if mask is None or stride == 1 else mask[..., ::stride]


class ResNetTrunk(nn.Module):
    """The convolutional part of ResNet34 (or of another depth): frame-level features for pooling.

    The 4-D output ``(batch, C, F, time)`` is flattened per frame to ``C * F`` values.
    ``flatten="channel_major"`` (index ``c * F + f``) is the order of wespeaker's TSTP
    pooling too: it flattens the pooled ``(batch, C, F)`` with ``flatten(start_dim=1)``,
    so converted wespeaker models need no other order. ``"frequency_major"`` (index
    ``f * C + c``) is the order of wespeaker's ``get_frame_level_feat`` (``transpose(1, 3)``
    then flatten), for frame features laid out like that.

    Arguments
    ---------
    n_mels : int
        Number of input filterbank channels (must be divisible by 8).
    channels : list of int
        Channels of the four stages (of the 3x3 convolutions, for bottleneck blocks).
    blocks : list of int
        Blocks per stage (3-4-6-3 is ResNet34).
    block : str
        "basic" (ResNet18/34) or "bottleneck" (ResNet50 and deeper; 4x wider output).
    activation : str
        "prelu" (the paper) or "relu" (wespeaker), in the stem and the blocks.
    flatten : str
        "channel_major" or "frequency_major", see above.

    Example
    -------
    >>> trunk = ResNetTrunk(n_mels=32, channels=[4, 8, 16, 32])
    >>> trunk(torch.rand(2, 50, 32)).shape
    torch.Size([2, 7, 128])
    >>> trunk.output_size, ResNetTrunk(32, [4, 8, 16, 32], [1, 1, 1, 1], block="bottleneck").output_size
    (128, 512)
    """

    def __init__(self, n_mels=128, channels=(32, 64, 128, 256), blocks=(3, 4, 6, 3), block="basic",
                 activation="prelu", flatten="channel_major"):
        super().__init__()
        if len(channels) != 4 or len(blocks) != 4:
            raise ResNetConfigError("ResNetTrunk needs four stages: channels and blocks of length 4")
        if n_mels % 8:
            raise ResNetConfigError(f"n_mels must be divisible by 8 (three stride-2 stages), got {n_mels}")
        block_type = BLOCK_TYPES[check_choice("block", block, tuple(BLOCK_TYPES))]
        self.flatten = check_choice("flatten", flatten, ("channel_major", "frequency_major"))
        self.blocks = tuple(blocks)  # mmer_lobes.wespeaker maps wespeaker's layerN.i to stages by it
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels[0]),
            make_activation(activation, channels[0]),
        )
        stages, in_channels = [], channels[0]
        for stage, (width, count) in enumerate(zip(channels, blocks)):
            stride = 1 if stage == 0 else 2
            for index in range(count):
                stages.append(block_type(in_channels, width, stride if index == 0 else 1, activation))
                in_channels = width * block_type.expansion
        self.stages = nn.Sequential(*stages)
        self.output_size = channels[-1] * block_type.expansion * (n_mels // 8)

    def forward(self, feats, lengths=None):
        """Maps ``(batch, time, n_mels)`` to ``(batch, time', output_size)``.

        With relative ``lengths``, the padded frames are zeroed before every convolution
        that mixes frames, so each clip's valid output frames are those it gets alone
        (:func:`masked`); without them (or when no clip is padded), nothing is masked."""
        mask = None
        if lengths is not None:
            valid = valid_frames(lengths.to(feats.device), feats.shape[1])
            # a traced or exported graph keeps the mask: it must hold for padded batches too
            if torch.jit.is_tracing() or torch.compiler.is_exporting() or bool((valid < feats.shape[1]).any()):
                mask = frame_mask(valid, feats.shape[1])
        x = self.stem(masked(feats.transpose(1, 2).unsqueeze(1), mask))
        for block in self.stages:
            x = block(x, mask)
            mask = downsample_mask(mask, block.stride)
        if self.flatten == "frequency_major":
            x = x.transpose(1, 2)  # (batch, F, C, time): the channel index varies fastest
        batch, outer, inner, time = x.shape
        return x.reshape(batch, outer * inner, time).transpose(1, 2)


def length_mask(lengths, max_len):
    """Boolean ``(batch, max_len)`` mask of valid frames from relative lengths in (0, 1].

    Every row keeps at least one frame, so an utterance shorter than the network's
    total stride still pools to a finite vector.

    Example
    -------
    >>> length_mask(torch.tensor([1.0, 0.5]), 4).int().tolist()
    [[1, 1, 1, 1], [1, 1, 0, 0]]
    """
    return torch.arange(max_len, device=lengths.device)[None, :] < valid_frames(lengths, max_len)[:, None]


def valid_frames(lengths, max_len):
    """Number of valid frames of each row from relative lengths: at least one.

    Example
    -------
    >>> valid_frames(torch.tensor([1.0, 0.5, 0.0]), 4).tolist()
    [4, 2, 1]
    """
    return torch.clamp(torch.round(lengths * max_len), min=1).long()


class StatisticsPooling(nn.Module):
    """Mean ++ standard deviation over the valid frames (padding excluded).

    SpeechBrain's ``nnet.pooling.StatisticsPooling`` adds Gaussian noise to the mean on
    every call, also at inference, and loops over the batch; the paper's pooling is
    deterministic, hence this masked, vectorised version. ``use_std=False`` gives the
    plain temporal mean (an ablation switch). The defaults are the paper's (biased
    variance floored by ``clamp(min=1e-5)``); wespeaker's TSTP is ``variance="unbiased",
    variance_floor="add", eps=1e-7``, i.e. ``sqrt(torch.var(x) + 1e-7)``.

    Arguments
    ---------
    use_std : bool
        Append the standard deviation to the mean.
    eps : float
        Floor of the variance, for numerical safety.
    variance : str
        "biased" (divide by the number of valid frames) or "unbiased" (by that number
        minus one; a one-frame utterance gets variance 0 where torch.var gives NaN).
    variance_floor : str
        "clamp": ``sqrt(max(variance, eps))``; "add": ``sqrt(variance + eps)``.

    Example
    -------
    >>> pool = StatisticsPooling()
    >>> x = torch.rand(2, 10, 3)
    >>> pool(x, torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 6])
    >>> x = torch.tensor([[[1.0], [3.0], [99.0]]])  # the third frame is padding
    >>> StatisticsPooling(variance="unbiased", variance_floor="add", eps=0.0)(x, torch.tensor([2 / 3]))
    tensor([[2.0000, 1.4142]])
    """

    def __init__(self, use_std=True, eps=1e-5, variance="biased", variance_floor="clamp"):
        super().__init__()
        self.use_std = use_std
        self.eps = eps
        self.variance = check_choice("variance", variance, ("biased", "unbiased"))
        self.variance_floor = check_choice("variance_floor", variance_floor, ("clamp", "add"))

    def forward(self, x, lengths=None):
        """Pools ``(batch, time, dim)`` over time; ``lengths`` are relative (0, 1]."""
        if lengths is None:
            lengths = torch.ones(x.shape[0], device=x.device)
        mask = length_mask(lengths, x.shape[1]).unsqueeze(2).to(x.dtype)
        count = mask.sum(dim=1)
        mean = (x * mask).sum(dim=1) / count
        if not self.use_std:
            return mean
        divisor = count if self.variance == "biased" else (count - 1).clamp(min=1)
        variance = (((x - mean.unsqueeze(1)) * mask) ** 2).sum(dim=1) / divisor
        floored = variance.clamp(min=self.eps) if self.variance_floor == "clamp" else variance + self.eps
        return torch.cat([mean, torch.sqrt(floored)], dim=1)

    def output_size(self, input_size):
        """Size of the pooled vector for frame features of size ``input_size``."""
        return 2 * input_size if self.use_std else input_size


class ResNetEncoder(nn.Module):
    """ResNet trunk + statistics pooling: the part that transfers from speakers to emotions.

    The defaults are the paper's ResNet34; the keyword-only options (settable from YAML)
    are those of :class:`ResNetTrunk` and :class:`StatisticsPooling`, and
    ``mmer_lobes.wespeaker.encoder_kwargs`` gives them for a published wespeaker ResNet.

    Arguments
    ---------
    n_mels : int
    channels : list of int
    blocks : list of int
    use_std : bool
        Statistics pooling (True) or plain temporal mean (False).
    block, activation, flatten : str
        See :class:`ResNetTrunk`.
    variance, variance_floor : str
    eps : float
        See :class:`StatisticsPooling`.

    Example
    -------
    >>> encoder = ResNetEncoder(n_mels=32, channels=[4, 8, 16, 32])
    >>> encoder(torch.rand(3, 40, 32), torch.tensor([1.0, 0.8, 0.3])).shape
    torch.Size([3, 256])
    >>> ResNetEncoder(n_mels=32, channels=[4, 8, 16, 32], blocks=[1, 1, 1, 1], block="bottleneck").output_size
    1024
    """

    def __init__(self, n_mels=128, channels=(32, 64, 128, 256), blocks=(3, 4, 6, 3), use_std=True, *,
                 block="basic", activation="prelu", flatten="channel_major", variance="biased",
                 variance_floor="clamp", eps=1e-5):
        super().__init__()
        self.trunk = ResNetTrunk(n_mels, channels, blocks, block, activation, flatten)
        self.batch_exact = True  # a padded batch gives each clip its lone output (mmer_lobes.batching)
        self.pooling = StatisticsPooling(use_std, eps, variance, variance_floor)
        self.output_size = self.pooling.output_size(self.trunk.output_size)

    def forward(self, feats, lengths=None):
        """Maps features ``(batch, time, n_mels)`` to pooled statistics ``(batch, output_size)``."""
        frames = self.trunk(feats, lengths)
        if lengths is not None:
            lengths = trunk_lengths(lengths, feats.shape[1], frames.shape[1])
        return self.pooling(frames, lengths)


def trunk_lengths(lengths, input_frames, output_frames):
    """Relative lengths after the trunk's three stride-2 stages.

    A stride-2, padding-1 convolution maps ``n`` valid frames to ``ceil(n / 2)`` (so does the
    1x1 stride-2 shortcut, in either block type), so an utterance keeps ``ceil(valid / 8)``
    frames whether it is alone or padded in a batch.

    Example
    -------
    >>> trunk_lengths(torch.tensor([20 / 64, 1.0]), 64, 8).tolist()
    [0.375, 1.0]
    """
    valid = valid_frames(lengths, input_frames).to(lengths.dtype)
    for _ in range(3):
        valid = torch.ceil(valid / 2)
    return valid / output_frames


class EmbeddingClassifier(nn.Module):
    """The fully connected part: a 512-d embedding layer, then the class scores.

    The embedding is linear + batch norm (no activation: it is the speaker
    representation); before the output layer it goes through a PReLU, and the output
    layer has no activation (the recipe applies log-softmax or an angular margin).

    Arguments
    ---------
    input_size : int
        Size of the pooled statistics.
    n_classes : int
    embedding_size : int
    cosine : bool
        If True, the output layer returns cosine similarities between the normalised
        embedding and normalised class weights, as AAM-softmax expects.

    Example
    -------
    >>> head = EmbeddingClassifier(256, n_classes=4, embedding_size=16)
    >>> head(torch.rand(3, 256)).shape
    torch.Size([3, 4])
    >>> head.embed(torch.rand(3, 256)).shape
    torch.Size([3, 16])
    """

    def __init__(self, input_size, n_classes, embedding_size=512, cosine=False):
        super().__init__()
        self.embedding = nn.Sequential(
            nn.Linear(input_size, embedding_size), nn.BatchNorm1d(embedding_size)
        )
        self.activation = nn.PReLU(embedding_size)
        self.cosine = cosine
        self.output = nn.Linear(embedding_size, n_classes, bias=not cosine)

    def embed(self, pooled):
        """The embedding of pooled statistics ``(batch, input_size)``."""
        return self.embedding(pooled)

    def forward(self, pooled):
        """Class scores (logits, or cosines if ``cosine``) of pooled statistics."""
        if self.cosine:
            embedding = nn.functional.normalize(self.embed(pooled), dim=1)
            return nn.functional.linear(embedding, nn.functional.normalize(self.output.weight, dim=1))
        return self.output(self.activation(self.embed(pooled)))


def count_parameters(module):
    """Number of trainable parameters of ``module``.

    Example
    -------
    >>> count_parameters(nn.Linear(10, 2))
    22
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
