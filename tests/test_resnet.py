"""The paper's ResNet34 lobes (mmer_lobes.resnet): shapes from the conv arithmetic, masked
statistics pooling against independent torch.mean / torch.std, parameter counts from the
architecture arithmetic, argument validation, and the options of wespeaker's variants (ReLU,
bottleneck blocks, unbiased variance, the variance floor, the flattening order)."""
import pytest
import torch
import torch.nn as nn

from mmer_lobes.errors import ProjectError
from mmer_lobes.resnet import (
    BasicBlock,
    Bottleneck,
    EmbeddingClassifier,
    ResNetConfigError,
    ResNetEncoder,
    ResNetTrunk,
    StatisticsPooling,
    count_parameters,
    length_mask,
)

SMALL = [4, 8, 16, 32]
FEW = [1, 1, 1, 1]  # one block per stage: the arithmetic is the same, the tests are faster
N_MELS = 32


def conv_out(length, kernel=3, stride=1, padding=1):
    """Output length of a convolution (PyTorch's documented formula)."""
    return (length + 2 * padding - kernel) // stride + 1


def trunk_frames(time):
    """Frames after the trunk: stem and stage 1 keep the length, stages 2-4 start with a
    3x3 stride-2 padding-1 convolution (the 1x1 stride-2 shortcut gives the same length)."""
    time = conv_out(time)  # stem
    for _ in range(3):
        assert conv_out(time, 3, 2, 1) == conv_out(time, 1, 2, 0)
        time = conv_out(time, 3, 2, 1)
    return time


def randomise_batch_norm(module, generator_seed=0):
    """Gives every batch norm non-trivial running statistics and affine parameters, so that
    eval-mode tests do not pass merely because batch norm is the identity."""
    gen = torch.Generator().manual_seed(generator_seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=gen))
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("in_ch,out_ch", [(4, 4), (4, 8)])
@pytest.mark.parametrize("freq,time", [(16, 20), (9, 13)])
def test_basic_block_shape(stride, in_ch, out_ch, freq, time):
    block = BasicBlock(in_ch, out_ch, stride=stride)
    out = block(torch.randn(2, in_ch, freq, time))
    assert out.shape == (2, out_ch, conv_out(freq, 3, stride), conv_out(time, 3, stride))


def test_basic_block_shortcut_only_when_needed():
    assert len(BasicBlock(4, 4, 1).shortcut) == 0
    assert len(BasicBlock(4, 8, 1).shortcut) == 2
    assert len(BasicBlock(4, 4, 2).shortcut) == 2


@pytest.mark.parametrize(
    "batch,time,n_mels,blocks",
    [(1, 8, 16, FEW), (2, 37, 32, [3, 4, 6, 3]), (3, 64, 40, FEW), (2, 1, 8, FEW), (1, 101, 24, FEW), (4, 15, 32, [2, 1, 1, 2])],
)
def test_output_shapes(batch, time, n_mels, blocks):
    torch.manual_seed(0)
    encoder = ResNetEncoder(n_mels=n_mels, channels=SMALL, blocks=blocks).eval()
    head = EmbeddingClassifier(encoder.output_size, n_classes=5, embedding_size=16).eval()
    feats = torch.randn(batch, time, n_mels)

    frames = encoder.trunk(feats)
    dim = SMALL[-1] * (n_mels // 8)
    assert frames.shape == (batch, trunk_frames(time), dim)
    assert encoder.trunk.output_size == dim

    pooled = encoder(feats, torch.ones(batch))
    assert pooled.shape == (batch, 2 * dim)
    assert encoder.output_size == 2 * dim

    assert head.embed(pooled).shape == (batch, 16)
    assert head(pooled).shape == (batch, 5)


@pytest.mark.parametrize("time", [1, 2, 7, 8, 9, 15, 16, 17, 33, 63, 64, 65, 150, 301])
def test_trunk_downsamples_time_by_eight_with_ceil(time):
    trunk = ResNetTrunk(n_mels=16, channels=SMALL, blocks=FEW)
    expected = trunk_frames(time)
    # three stride-2 halvings with padding 1 round up: ceil(ceil(ceil(T/2)/2)/2) == ceil(T/8)
    assert expected == -(-time // 8)
    assert trunk(torch.randn(1, time, 16)).shape[1] == expected


# ----------------------------------------------------------------------------- masking & pooling


def test_length_mask_rows_and_minimum_one_frame():
    mask = length_mask(torch.tensor([1.0, 0.5, 0.25, 0.01, 0.0]), 8)
    assert mask.dtype == torch.bool
    expected = torch.zeros(5, 8, dtype=torch.bool)
    for row, valid in enumerate([8, 4, 2, 1, 1]):
        expected[row, :valid] = True
    assert torch.equal(mask, expected)


def _padded_batch(valid_lengths, max_len, dim, garbage_scale=1e4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = garbage_scale * torch.randn(len(valid_lengths), max_len, dim, generator=gen)
    valid = [torch.randn(v, dim, generator=gen) * 2 + 1 for v in valid_lengths]
    for row, frames in enumerate(valid):
        x[row, : frames.shape[0]] = frames
    lengths = torch.tensor([v / max_len for v in valid_lengths])
    return x, lengths, valid


def test_statistics_pooling_ignores_padding():
    valid_lengths = [20, 7, 13, 1, 2]
    x, lengths, valid = _padded_batch(valid_lengths, 20, 6)
    pooled = StatisticsPooling()(x, lengths)
    assert pooled.shape == (5, 12)
    for row, frames in enumerate(valid):
        mean = torch.mean(frames, dim=0)
        std = torch.std(frames, dim=0, unbiased=False)
        # the implementation floors the variance at eps=1e-5 (1-frame rows have zero variance)
        std = torch.sqrt(torch.clamp(std**2, min=1e-5))
        assert torch.allclose(pooled[row, :6], mean, atol=1e-5, rtol=0), row
        assert torch.allclose(pooled[row, 6:], std, atol=1e-5, rtol=0), row


def test_statistics_pooling_without_lengths_uses_all_frames():
    x = torch.randn(3, 11, 4)
    expected = torch.cat([x.mean(dim=1), x.std(dim=1, unbiased=False)], dim=1)
    assert torch.allclose(StatisticsPooling()(x), expected, atol=1e-5, rtol=0)


def test_statistics_pooling_of_a_hand_computed_batch():
    # row 0: frames 1, 3 (mean 2, population std 1) then a garbage frame beyond its length;
    # row 1: frames 2, 2, 8 (mean 4, variance (4 + 4 + 16) / 3 = 8); one feature each
    x = torch.tensor([[[1.0], [3.0], [1e6]], [[2.0], [2.0], [8.0]]])
    pooled = StatisticsPooling()(x, torch.tensor([2 / 3, 1.0]))
    expected = torch.tensor([[2.0, 1.0], [4.0, 8.0**0.5]])
    assert torch.allclose(pooled, expected, atol=1e-5, rtol=0)
    # each row pooled alone, without padding, gives its row of the padded batch
    x, lengths, valid = _padded_batch([9, 5], 9, 3)
    batched = StatisticsPooling()(x, lengths)
    for row, frames in enumerate(valid):
        alone = StatisticsPooling()(frames.unsqueeze(0), torch.ones(1))
        assert torch.allclose(batched[row], alone[0], atol=1e-5, rtol=0), row


def test_statistics_pooling_mean_only():
    x, lengths, valid = _padded_batch([10, 4, 6], 10, 5)
    pool = StatisticsPooling(use_std=False)
    pooled = pool(x, lengths)
    assert pooled.shape == (3, 5)
    assert pool.output_size(5) == 5 and StatisticsPooling().output_size(5) == 10
    for row, frames in enumerate(valid):
        assert torch.allclose(pooled[row], frames.mean(dim=0), atol=1e-5, rtol=0)


def test_encoder_use_std_false_is_plain_mean_of_half_size():
    torch.manual_seed(0)
    with_std = ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=FEW).eval()
    mean_only = ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=FEW, use_std=False).eval()
    mean_only.load_state_dict(with_std.state_dict())
    assert mean_only.output_size * 2 == with_std.output_size
    feats = torch.randn(2, 48, N_MELS)
    lengths = torch.tensor([1.0, 0.5])
    out = mean_only(feats, lengths)
    assert out.shape == (2, mean_only.output_size)
    frames = mean_only.trunk(feats, lengths)  # 6 frames; row 1 keeps 3
    assert torch.allclose(out[0], frames[0].mean(dim=0), atol=1e-5)
    assert torch.allclose(out[1], frames[1, :3].mean(dim=0), atol=1e-5)
    assert torch.allclose(out, with_std(feats, lengths)[:, : mean_only.output_size], atol=1e-6)


def test_encoder_pooling_excludes_padded_trunk_frames():
    """Through the full encoder in eval mode: the pooled vector is the statistics of the
    trunk frames inside the relative length, whatever the trunk produced beyond it."""
    torch.manual_seed(0)
    encoder = ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=FEW)
    randomise_batch_norm(encoder)
    encoder.eval()
    feats = torch.randn(2, 64, N_MELS)
    feats[1, 40:] = 100.0  # padding region full of garbage
    lengths = torch.tensor([1.0, 40 / 64])
    out = encoder(feats, lengths)
    frames = encoder.trunk(feats, lengths)  # 8 frames; row 1 keeps round(0.625 * 8) = 5
    valid = frames[1, :5]
    std = torch.sqrt(torch.clamp(valid.var(dim=0, unbiased=False), min=1e-5))  # eps floor
    expected = torch.cat([valid.mean(dim=0), std])
    assert torch.allclose(out[1], expected, atol=1e-4, rtol=1e-5)
    # pooling all 8 frames (the garbage ones included) would give something else
    everything = torch.cat([frames[1].mean(dim=0), frames[1].std(dim=0, unbiased=False)])
    assert not torch.allclose(out[1], everything, atol=1e-2)


@pytest.mark.parametrize("block,blocks", [("basic", [2, 2, 2, 2]), ("bottleneck", [1, 2, 1, 1])])
def test_padded_batch_gives_each_utterance_its_lone_trunk_frames(block, blocks):
    """Utterances of mixed lengths (every residue modulo the total stride 8, and 1 frame)
    zero-padded into one batch get exactly the trunk frames, and the pooled statistics,
    that they get alone: the trunk zeroes the padding before every frame-mixing convolution.
    Batch norm has random running statistics, so a leak would not vanish behind it."""
    torch.manual_seed(0)
    encoder = ResNetEncoder(n_mels=16, channels=SMALL, blocks=blocks, block=block)
    randomise_batch_norm(encoder)
    encoder.eval()
    lengths = [97, 1, 8, 41, 66, 90, 53, 100, 99, 12]
    total = max(lengths)
    clips = [torch.randn(1, n, 16) for n in lengths]
    # garbage, not zeros, in the padding: the padded values must not matter at all
    batch = 100 * torch.randn(len(lengths), total, 16)
    for row, clip in enumerate(clips):
        batch[row, :clip.shape[1]] = clip[0]
    relative = torch.tensor(lengths) / total
    with torch.no_grad():
        frames = encoder.trunk(batch, relative)
        pooled = encoder(batch, relative)
        for row, clip in enumerate(clips):
            alone = encoder.trunk(clip)[0]
            assert alone.shape[0] == trunk_frames(lengths[row])
            assert torch.allclose(frames[row, :alone.shape[0]], alone, atol=1e-5, rtol=0), lengths[row]
            assert torch.allclose(pooled[row], encoder(clip, torch.ones(1))[0], atol=1e-5, rtol=0)


def test_unmasked_padding_would_reach_the_valid_frames():
    """Without lengths the trunk cannot tell padding from signal: the last valid frames of a
    padded utterance then differ from its lone frames. This is what the mask prevents."""
    torch.manual_seed(0)
    encoder = ResNetEncoder(n_mels=16, channels=SMALL, blocks=FEW)
    randomise_batch_norm(encoder)
    encoder.eval()
    utterance = torch.randn(1, 60, 16)
    batch = torch.zeros(2, 96, 16)
    batch[0, :60] = utterance[0]
    batch[1] = torch.randn(96, 16)
    with torch.no_grad():
        alone = encoder.trunk(utterance)[0]
        unmasked = encoder.trunk(batch)[0, :alone.shape[0]]
        masked = encoder.trunk(batch, torch.tensor([60 / 96, 1.0]))[0, :alone.shape[0]]
    assert not torch.allclose(alone[-1], unmasked[-1], atol=1e-3)
    assert torch.allclose(alone, masked, atol=1e-5, rtol=0)


def test_training_mode_masks_the_padding_too():
    """Training runs the same masked network: in train mode (batch statistics) the padded
    frames' values, whatever they are, change nothing in the valid rows' pooled output."""
    torch.manual_seed(0)
    encoder = ResNetEncoder(n_mels=16, channels=SMALL, blocks=FEW).train()
    batch = torch.randn(3, 48, 16)
    lengths = torch.tensor([1.0, 30 / 48, 17 / 48])
    noisy = batch.clone()
    noisy[1, 30:] = 50 * torch.randn(18, 16)
    noisy[2, 17:] = 50 * torch.randn(31, 16)
    # batch norm statistics see the trunk's padded positions; with masking these are the
    # same for any padded values (convolutions of zeros), so the outputs agree
    assert torch.allclose(encoder(batch, lengths), encoder(noisy, lengths), atol=1e-5, rtol=0)


def test_one_frame_utterance_is_finite():
    torch.manual_seed(0)
    encoder = ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=FEW).eval()
    head = EmbeddingClassifier(encoder.output_size, 4, embedding_size=16).eval()
    out = head(encoder(torch.randn(1, 1, N_MELS), torch.ones(1)))
    assert out.shape == (1, 4) and torch.isfinite(out).all()
    # a 1-frame utterance padded in a batch (relative length rounds to 0 trunk frames)
    batch = torch.randn(2, 64, N_MELS)
    out = head(encoder(batch, torch.tensor([1 / 64, 1.0])))
    assert torch.isfinite(out).all()
    # in training mode too
    encoder.train(), head.train()
    out = head(encoder(torch.randn(2, 1, N_MELS), torch.ones(2)))
    assert torch.isfinite(out).all()


# ----------------------------------------------------------------------------- heads


def test_embedding_classifier_logits_path():
    torch.manual_seed(0)
    head = EmbeddingClassifier(10, n_classes=3, embedding_size=6).eval()
    pooled = torch.randn(4, 10)
    bn = head.embedding[1]
    emb = (pooled @ head.embedding[0].weight.T + head.embedding[0].bias - bn.running_mean) / torch.sqrt(
        bn.running_var + bn.eps
    ) * bn.weight + bn.bias
    assert torch.allclose(head.embed(pooled), emb, atol=1e-5)
    act = torch.where(emb >= 0, emb, head.activation.weight * emb)
    logits = act @ head.output.weight.T + head.output.bias
    assert torch.allclose(head(pooled), logits, atol=1e-5)


def test_embedding_classifier_cosine_outputs_are_cosines():
    torch.manual_seed(0)
    head = EmbeddingClassifier(10, n_classes=5, embedding_size=8, cosine=True)
    assert head.output.bias is None
    with torch.no_grad():
        head.output.weight.mul_(50.0)  # unnormalised weights must not leak into the output
    pooled = 30 * torch.randn(6, 10)
    head.train()
    scores = head(pooled)
    assert scores.shape == (6, 5)
    assert (scores <= 1 + 1e-6).all() and (scores >= -1 - 1e-6).all()
    emb = head.embed(pooled)
    expected = torch.stack(
        [torch.cosine_similarity(emb, w.unsqueeze(0).expand_as(emb), dim=1) for w in head.output.weight], dim=1
    )
    assert torch.allclose(scores, expected, atol=1e-5)


# ----------------------------------------------------------------------------- parameters


def _block_params(cin, cout, stride):
    params = cin * cout * 9 + 2 * cout + cout  # conv1 + bn1 + prelu1
    params += cout * cout * 9 + 2 * cout + cout  # conv2 + bn2 + prelu2
    if stride != 1 or cin != cout:
        params += cin * cout + 2 * cout  # 1x1 projection + bn
    return params


def _encoder_params(n_mels, channels, blocks):
    total = 1 * channels[0] * 9 + 2 * channels[0] + channels[0]  # stem conv + bn + prelu
    cin = channels[0]
    for stage, (cout, count) in enumerate(zip(channels, blocks)):
        for index in range(count):
            total += _block_params(cin, cout, 2 if stage > 0 and index == 0 else 1)
            cin = cout
    return total  # pooling has no parameters


def _classifier_params(pooled, n_classes, embedding=512):
    return pooled * embedding + embedding + 2 * embedding + embedding + embedding * n_classes + n_classes


def test_parameter_count_default_configuration():
    encoder = ResNetEncoder()  # n_mels 128, 32-64-128-256, 3-4-6-3
    head = EmbeddingClassifier(encoder.output_size, n_classes=4)
    assert encoder.output_size == 2 * 256 * 128 // 8 == 8192
    arithmetic_encoder = _encoder_params(128, [32, 64, 128, 256], [3, 4, 6, 3])
    arithmetic_head = _classifier_params(8192, 4)
    assert arithmetic_encoder == 5_327_168
    assert arithmetic_head == 4_198_404
    assert count_parameters(encoder) == 5_327_168
    assert count_parameters(head) == 4_198_404


def test_parameter_count_small_configuration_and_frozen():
    encoder = ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=[2, 1, 3, 1])
    assert count_parameters(encoder) == _encoder_params(N_MELS, SMALL, [2, 1, 3, 1])
    head = EmbeddingClassifier(encoder.output_size, 3, embedding_size=16, cosine=True)
    assert count_parameters(head) == _classifier_params(encoder.output_size, 3, 16) - 3  # no bias
    for p in encoder.parameters():
        p.requires_grad = False
    assert count_parameters(encoder) == 0


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("n_mels", [30, 36, 4, 129])
def test_invalid_n_mels(n_mels):
    with pytest.raises(ValueError, match="n_mels"):
        ResNetTrunk(n_mels=n_mels, channels=SMALL)
    with pytest.raises(ValueError, match="n_mels"):
        ResNetEncoder(n_mels=n_mels, channels=SMALL)


@pytest.mark.parametrize(
    "channels,blocks", [([4, 8, 16], [3, 4, 6, 3]), ([4, 8, 16, 32, 64], [3, 4, 6, 3]), (SMALL, [3, 4, 6]), (SMALL, [1] * 5)]
)
def test_wrong_number_of_stages(channels, blocks):
    with pytest.raises(ValueError, match="four stages"):
        ResNetTrunk(n_mels=N_MELS, channels=channels, blocks=blocks)
    with pytest.raises(ValueError, match="four stages"):
        ResNetEncoder(n_mels=N_MELS, channels=channels, blocks=blocks)


# ----------------------------------------------------------------------------- options (wespeaker's variants)


@pytest.mark.parametrize("in_ch,width,stride", [(4, 1, 1), (4, 2, 1), (8, 2, 1), (4, 2, 2)])
def test_bottleneck_block_shape_and_shortcut(in_ch, width, stride):
    block = Bottleneck(in_ch, width, stride=stride, activation="relu")
    assert block(torch.randn(2, in_ch, 9, 13)).shape == (2, 4 * width, conv_out(9, 3, stride), conv_out(13, 3, stride))
    assert len(block.shortcut) == (0 if stride == 1 and in_ch == 4 * width else 2)


@pytest.mark.parametrize("block,expansion,per_block", [("basic", 1, 2), ("bottleneck", 4, 3)])
@pytest.mark.parametrize("activation", ["prelu", "relu"])
def test_block_and_activation_options(block, expansion, per_block, activation):
    encoder = ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=[1, 2, 1, 1], block=block, activation=activation)
    dim = SMALL[-1] * expansion * N_MELS // 8
    assert encoder.trunk.output_size == dim and encoder.output_size == 2 * dim
    assert encoder.eval()(torch.randn(2, 37, N_MELS), torch.tensor([1.0, 0.4])).shape == (2, 2 * dim)
    kinds = [type(m) for m in encoder.modules() if isinstance(m, (nn.PReLU, nn.ReLU))]
    assert kinds == [nn.PReLU if activation == "prelu" else nn.ReLU] * (1 + 5 * per_block)  # stem + 5 blocks
    # ReLU only drops the slopes (stem.2, act*): every other parameter keeps its name and shape
    paper = ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=[1, 2, 1, 1], block=block).state_dict()
    slopes = [k for k in paper if k.startswith("trunk.stem.2.") or ".act" in k] if activation == "relu" else []
    expected = {k: v.shape for k, v in paper.items() if k not in slopes}
    assert {k: v.shape for k, v in encoder.state_dict().items()} == expected


def test_unbiased_variance_and_the_two_floors():
    x, lengths, valid = _padded_batch([12, 5, 2, 1], 12, 4)
    for floor, eps in [("add", 1e-7), ("clamp", 1e-5), ("add", 0.5)]:
        pooled = StatisticsPooling(variance="unbiased", variance_floor=floor, eps=eps)(x, lengths)
        for row, frames in enumerate(valid):
            variance = torch.var(frames, dim=0) if len(frames) > 1 else torch.zeros(4)  # 1 frame: 0, not NaN
            std = torch.sqrt(variance + eps if floor == "add" else variance.clamp(min=eps))
            assert torch.allclose(pooled[row], torch.cat([frames.mean(dim=0), std]), atol=1e-5, rtol=0), (floor, row)


def test_flatten_orders():
    encoder = ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=FEW).eval()
    feats = torch.randn(2, 40, N_MELS)
    four_d = encoder.trunk.stages(encoder.trunk.stem(feats.transpose(1, 2).unsqueeze(1)))  # (2, C, F, 5)
    assert torch.equal(encoder.trunk(feats)[1, 3], four_d[1, :, :, 3].flatten())  # index c * F + f
    encoder.trunk.flatten = "frequency_major"
    assert torch.equal(encoder.trunk(feats)[1, 3], four_d[1, :, :, 3].T.flatten())  # index f * C + c


@pytest.mark.parametrize("option,value", [("block", "wide"), ("activation", "gelu"), ("flatten", "time_major"),
                                          ("variance", "sample"), ("variance_floor", "max")])
def test_invalid_option_values_are_named(option, value):
    with pytest.raises(ResNetConfigError, match=f"{option} must be one of .*; got '{value}'") as error:
        ResNetEncoder(n_mels=N_MELS, channels=SMALL, blocks=FEW, **{option: value})
    assert isinstance(error.value, ProjectError) and isinstance(error.value, ValueError)
