"""Converting wespeaker ResNets (mmer_lobes.wespeaker) against wespeaker's own model code
(tests/wespeaker_reference.py; the ``wespeaker_resnet`` fixture is in conftest.py)."""
import pytest
import torch

from mmer_lobes.errors import ProjectError
from mmer_lobes.resnet import ResNetEncoder, length_mask, trunk_lengths
from mmer_lobes.wespeaker import (
    RESNET_BLOCKS,
    WespeakerImportError,
    convert_state_dict,
    encoder_kwargs,
    trunk_prefixes,
)

from wespeaker_reference import FEAT_DIM, randomise, wespeaker_pooled


# ResNet34 and ResNet50 as published (ResNet101-293 only have more Bottlenecks), and a small
# Bottleneck ResNet with wespeaker's ResNet class (m_channels and two_emb_layer are the options
# it exercises; wespeaker's ResNet18-293 functions fix m_channels at 32).
MODELS = {
    "ResNet34": lambda resnet: resnet.ResNet34(feat_dim=FEAT_DIM, embed_dim=256),
    "ResNet50": lambda resnet: resnet.ResNet50(feat_dim=FEAT_DIM, embed_dim=256),
    "bottleneck": lambda resnet: resnet.ResNet(resnet.Bottleneck, [1, 1, 1, 1], m_channels=8,
                                               feat_dim=FEAT_DIM, embed_dim=64, two_emb_layer=True),
}
CONFIGS = {
    "ResNet34": {"model": "ResNet34", "model_args": {"feat_dim": FEAT_DIM, "embed_dim": 256}},
    "ResNet50": {"model": "ResNet50", "model_args": {"feat_dim": FEAT_DIM, "embed_dim": 256}},
    "bottleneck": {"model": "ResNet50", "model_args": {"feat_dim": FEAT_DIM, "embed_dim": 64,
                                                       "m_channels": 8, "two_emb_layer": True}},
}


def build(wespeaker_resnet, name):
    """A randomised wespeaker model, our encoder converted from it, and the head tensors."""
    torch.manual_seed(0)  # the initial weights
    model = randomise(MODELS[name](wespeaker_resnet))
    kwargs = encoder_kwargs(CONFIGS[name])
    if name == "bottleneck":
        kwargs["blocks"] = [1, 1, 1, 1]  # ResNet50's block type, fewer blocks
    encoder = ResNetEncoder(**kwargs)
    encoder_state, head_state = convert_state_dict(model.state_dict(), encoder)
    encoder.load_state_dict(encoder_state, strict=True)
    return model, encoder.eval(), head_state


# ----------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("name", ["ResNet34", "ResNet50", "bottleneck"])
def test_pooled_statistics_equal_wespeakers(wespeaker_resnet, name):
    """Measured max abs differences (CPU, float32; statistics up to about 3): ResNet34 4.5e-08,
    ResNet50 1.5e-08, the small Bottleneck ResNet 7.5e-09. (With He-initialised convolutions
    the statistics reach 2000-3600 and the differences 3e-05 (ResNet34) and 9e-05 (ResNet50):
    float32 rounding, about 3e-08 of the values.)"""
    model, encoder, head_state = build(wespeaker_resnet, name)
    feats = torch.randn(2, 120, FEAT_DIM, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = wespeaker_pooled(model, feats)
        ours = encoder(feats, torch.ones(2))
        ours_without_lengths = encoder(feats)
    assert ours.shape == theirs.shape == (2, encoder.output_size) == (2, model.pool_out_dim)
    difference = (ours - theirs).abs().max().item()
    print(f"{name}: max abs difference {difference:.2e}, max abs statistic {theirs.abs().max().item():.1f}")
    assert difference <= 1e-4
    assert torch.equal(ours, ours_without_lengths)
    # the head tensors are returned apart, exactly the checkpoint's
    expected_head = {k: v for k, v in model.state_dict().items() if k.startswith(("seg_1.", "seg_bn_1.", "seg_2."))}
    assert head_state.keys() == expected_head.keys() and len(head_state) >= 2
    assert all(torch.equal(head_state[k], expected_head[k]) for k in head_state)


def test_frame_level_features_equal_wespeakers_in_both_flatten_orders(wespeaker_resnet):
    """Our channel-major frames are the flattening of wespeaker's TSTP input; frequency-major
    ones are wespeaker's ``get_frame_level_feat`` (transpose(1, 3), flatten)."""
    model, encoder, _ = build(wespeaker_resnet, "bottleneck")
    feats = torch.randn(2, 64, FEAT_DIM)
    with torch.no_grad():
        four_d = model._get_frame_level_feat(feats.clone())  # (batch, C, F, T)
        ours = encoder.trunk(feats)
        encoder.trunk.flatten = "frequency_major"
        ours_frequency_major = encoder.trunk(feats)
        theirs_frequency_major = model.get_frame_level_feat(feats.clone())
    batch, chans, freq, time = four_d.shape
    assert torch.allclose(ours, four_d.reshape(batch, chans * freq, time).transpose(1, 2), atol=1e-5, rtol=0)
    assert torch.allclose(ours_frequency_major, theirs_frequency_major, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")  # wespeaker's one-frame torch.var
def test_padded_batch_gives_each_item_wespeakers_lone_statistics(wespeaker_resnet):
    """Each item of a padded batch gets the pooled statistics that wespeaker's own model
    computes for that item alone: the trunk masks the padding before every convolution
    (wespeaker's does not, so its padded batch is not the reference), and the pooling keeps
    ceil(valid / 8) trunk frames."""
    model, encoder, _ = build(wespeaker_resnet, "ResNet34")
    gen = torch.Generator().manual_seed(2)
    valid = [160, 97, 41, 8]  # the last keeps one trunk frame
    feats = torch.zeros(len(valid), valid[0], FEAT_DIM)
    for row, frames in enumerate(valid):
        feats[row, :frames] = torch.randn(frames, FEAT_DIM, generator=gen)
    lengths = torch.tensor(valid) / valid[0]
    with torch.no_grad():
        pooled = encoder(feats, lengths)
        four_d = model._get_frame_level_feat(feats.clone())
        alone = [wespeaker_pooled(model, feats[row:row + 1, :frames]) for row, frames in enumerate(valid[:-1])]
        last = model._get_frame_level_feat(feats[-1:, :valid[-1]].clone())
    kept = length_mask(trunk_lengths(lengths, feats.shape[1], four_d.shape[-1]), four_d.shape[-1]).sum(dim=1)
    assert kept.tolist() == [-(-frames // 8) for frames in valid]  # ceil(valid / 8) trunk frames
    for row, theirs in enumerate(alone):
        assert torch.allclose(pooled[row], theirs[0], atol=1e-5, rtol=1e-6), row
    # one frame: torch.var's unbiased variance is NaN (0 / 0); ours is 0, so std = sqrt(1e-7)
    half = encoder.output_size // 2
    assert torch.allclose(pooled[-1, :half], last[0, ..., 0].flatten(), atol=1e-5, rtol=1e-6)
    assert torch.allclose(pooled[-1, half:], torch.full((half,), 1e-7 ** 0.5), atol=1e-9, rtol=0)


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", sorted(RESNET_BLOCKS))
def test_encoder_kwargs_match_wespeakers_constructors(wespeaker_resnet, name):
    """Block type and counts as wespeaker's ResNet18-293 functions build them, read off the
    model (no forward pass: ResNet293 is large)."""
    model = getattr(wespeaker_resnet, name)(feat_dim=FEAT_DIM, embed_dim=256)
    kwargs = encoder_kwargs({"model": name, "model_args": {"feat_dim": FEAT_DIM, "embed_dim": 256}})
    assert kwargs["blocks"] == [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
    assert kwargs["block"] == ("bottleneck" if isinstance(model.layer1[0], wespeaker_resnet.Bottleneck) else "basic")
    assert kwargs["channels"] == [model.layer1[0].conv1.out_channels * f for f in (1, 2, 4, 8)]
    encoder = ResNetEncoder(**kwargs)
    assert encoder.output_size == model.pool_out_dim
    # the shapes agree key by key, so the conversion succeeds
    encoder_state, head_state = convert_state_dict(model.state_dict(), encoder)
    assert set(encoder_state) == set(encoder.state_dict()) and set(head_state) == {"seg_1.weight", "seg_1.bias"}


def test_encoder_kwargs_pooling_is_tstp():
    kwargs = encoder_kwargs({"model": "ResNet34", "model_args": {"feat_dim": 80, "pooling_func": "TSTP"}})
    assert kwargs == {"n_mels": 80, "channels": [32, 64, 128, 256], "blocks": [3, 4, 6, 3], "block": "basic",
                      "activation": "relu", "flatten": "channel_major", "use_std": True,
                      "variance": "unbiased", "variance_floor": "add", "eps": 1e-7}


@pytest.mark.parametrize(
    "config,message",
    [
        ({"model": "ResNet34", "model_args": {"feat_dim": 80, "pooling_func": "ASTP"}}, "pooling_func 'ASTP'"),
        ({"model": "ResNet34", "model_args": {"feat_dim": 80, "pooling_func": "TAP"}}, "pooling_func 'TAP'"),
        ({"model": "ECAPA_TDNN_GLOB_c512", "model_args": {"feat_dim": 80}}, "model 'ECAPA_TDNN_GLOB_c512'"),
        ({"model": "ResNet34", "model_args": {"embed_dim": 256}}, "lack feat_dim"),
        ({"model": "ResNet34", "model_args": {"feat_dim": 80, "dropout": 0.1}}, "unknown model_args.*dropout"),
    ],
)
def test_encoder_kwargs_refuses(config, message):
    with pytest.raises(WespeakerImportError, match=message):
        encoder_kwargs(config)
    assert issubclass(WespeakerImportError, ProjectError) and issubclass(WespeakerImportError, ValueError)


# ----------------------------------------------------------------------------- state dicts


@pytest.fixture
def small():
    """A small wespeaker-like state dict (built from our own ReLU encoder and renamed) and a
    fresh encoder of the same configuration."""
    config = {"model": "ResNet18", "model_args": {"feat_dim": 16, "embed_dim": 8, "m_channels": 2}}
    source = ResNetEncoder(**encoder_kwargs(config))
    theirs = {ours: wespeaker for wespeaker, ours in trunk_prefixes(source.trunk.blocks).items()}
    state = {}
    for key, value in source.state_dict().items():
        prefix = next(p for p in theirs if key.startswith(p))
        state[theirs[prefix] + key[len(prefix):]] = value
    state.update({"seg_1.weight": torch.zeros(8, 64), "seg_1.bias": torch.zeros(8)})
    return state, ResNetEncoder(**encoder_kwargs(config))


def test_module_prefix_and_state_dict_wrapper_are_removed(small):
    state, encoder = small
    expected, _ = convert_state_dict(state, encoder)
    for variant in ({f"module.{k}": v for k, v in state.items()}, {"state_dict": state}):
        encoder_state, head_state = convert_state_dict(variant, encoder)
        assert encoder_state.keys() == expected.keys() and set(head_state) == {"seg_1.weight", "seg_1.bias"}


def test_missing_key_is_named(small):
    state, encoder = small
    del state["layer3.0.shortcut.1.running_mean"]
    with pytest.raises(WespeakerImportError, match=r"missing: layer3\.0\.shortcut\.1\.running_mean "
                                                   r"\(encoder key trunk\.stages\.4\.shortcut\.1\.running_mean\)"):
        convert_state_dict(state, encoder)


def test_missing_batch_norm_counters_are_filled_like_pytorch_does(small):
    state, encoder = small
    counters = [key for key in state if key.endswith("num_batches_tracked")]
    for key in counters:
        del state[key]
    encoder_state, _ = convert_state_dict(state, encoder)
    encoder.load_state_dict(encoder_state, strict=True)
    assert len(counters) > 10


@pytest.mark.parametrize("extra", ["layer1.0.conv3.weight", "layer1.2.conv1.weight", "layer5.0.conv1.weight",
                                   "frontend.weight", "pool.linear1.weight"])
def test_extra_key_is_named(small, extra):
    state, encoder = small
    state[extra] = torch.zeros(1)
    with pytest.raises(WespeakerImportError, match=rf"unknown keys: {extra.replace('.', '[.]')}$"):
        convert_state_dict(state, encoder)


def test_wrong_shape_is_named(small):
    state, encoder = small
    state["layer2.0.conv1.weight"] = torch.zeros(4, 2, 5, 5)
    with pytest.raises(WespeakerImportError, match=r"wrong shapes: layer2\.0\.conv1\.weight \(4, 2, 5, 5\) "
                                                   r"\(encoder key trunk\.stages\.2\.conv1\.weight \(4, 2, 3, 3\)\)$"):
        convert_state_dict(state, encoder)


def test_many_problems_are_counted_and_a_prelu_encoder_is_refused(small):
    state, _ = small
    prelu = ResNetEncoder(n_mels=16, channels=[2, 4, 8, 16], blocks=[2, 2, 2, 2])  # the paper's defaults
    with pytest.raises(WespeakerImportError, match=r"missing: .* and \d+ more \(PReLU slopes: build the encoder"):
        convert_state_dict(state, prelu)
    state["seg_3.weight"] = torch.zeros(1)
    bottleneck = ResNetEncoder(**encoder_kwargs({"model": "ResNet50", "model_args": {"feat_dim": 16}}))
    with pytest.raises(WespeakerImportError, match="unknown keys: .*; wrong shapes: .*; missing: "):
        convert_state_dict(state, bottleneck)
