"""Transfer of a pretrained speaker encoder (mmer_lobes.transfer) and the paper's
learning-rate schedule (mmer_lobes.schedules)."""
import copy
import os

import pytest
import torch
import torch.nn as nn

from mmer_lobes.resnet import EmbeddingClassifier, ResNetEncoder
from mmer_lobes.schedules import HoldThenDecay
from mmer_lobes.transfer import (
    ENCODER_FILE,
    EncoderMismatchError,
    check_encoder_checkpoint,
    load_pretrained_encoder,
    state_dict_mismatch,
    transfer_param_groups,
)

N_MELS = 16
CHANNELS = [4, 8, 16, 32]
BLOCKS = [1, 1, 1, 1]


def make_model(seed=0, channels=CHANNELS):
    torch.manual_seed(seed)
    encoder = ResNetEncoder(n_mels=N_MELS, channels=channels, blocks=BLOCKS)
    head = EmbeddingClassifier(encoder.output_size, n_classes=4, embedding_size=8)
    return encoder, head


def batch(seed=1):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(4, 24, N_MELS, generator=gen)
    labels = torch.tensor([0, 1, 2, 3])
    return feats, labels


def loss_of(encoder, head, feats, labels):
    return nn.functional.cross_entropy(head(encoder(feats, torch.ones(feats.shape[0]))), labels)


def snapshot(module):
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def assert_state_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ----------------------------------------------------------------------------- param groups


def test_linear_probe_freezes_encoder_weights_and_statistics():
    encoder, head = make_model()
    groups = transfer_param_groups(encoder, head, "linear_probe", head_lr=0.1)
    assert [g["name"] for g in groups] == ["head"]
    assert groups[0]["lr"] == 0.1
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in head.parameters()}
    assert all(not p.requires_grad for p in encoder.parameters())
    assert all(p.requires_grad for p in head.parameters())

    optimizer = torch.optim.SGD(groups, lr=0.5, momentum=0.9)
    encoder.eval()  # a frozen encoder runs in eval mode: batch-norm statistics stay put
    head.train()
    encoder_before, head_before = snapshot(encoder), snapshot(head)
    feats, labels = batch()
    for _ in range(2):
        optimizer.zero_grad()
        loss_of(encoder, head, feats, labels).backward()
        optimizer.step()

    assert all(p.grad is None for p in encoder.parameters())
    assert_state_equal(snapshot(encoder), encoder_before)  # weights AND running stats
    changed = [key for key, value in snapshot(head).items() if not torch.equal(value, head_before[key])]
    assert "embedding.0.weight" in changed and "output.weight" in changed and "output.bias" in changed


def test_linear_probe_encoder_in_train_mode_would_update_statistics():
    """Control for the test above: the running statistics are buffers, not parameters, so
    only eval mode protects them; a test of freezing must run the encoder in eval mode."""
    encoder, head = make_model()
    transfer_param_groups(encoder, head, "linear_probe", head_lr=0.1)
    before = snapshot(encoder)
    encoder.train()
    with torch.no_grad():
        encoder(batch()[0])
    running = [k for k in before if "running_mean" in k]
    assert any(not torch.equal(snapshot(encoder)[k], before[k]) for k in running)


def test_finetune_groups_apply_their_own_learning_rates():
    encoder, head = make_model()
    encoder_lr, head_lr = 1e-3, 0.25
    groups = transfer_param_groups(encoder, head, "finetune", head_lr=head_lr, encoder_lr=encoder_lr)
    assert [(g["name"], g["lr"]) for g in groups] == [("encoder", encoder_lr), ("head", head_lr)]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in encoder.parameters()]
    assert [id(p) for p in groups[1]["params"]] == [id(p) for p in head.parameters()]
    assert all(p.requires_grad for p in encoder.parameters())

    # gradients computed independently, on a copy, with torch.autograd.grad
    enc_copy, head_copy = copy.deepcopy(encoder), copy.deepcopy(head)
    feats, labels = batch()
    params_copy = list(enc_copy.parameters()) + list(head_copy.parameters())
    grads = torch.autograd.grad(loss_of(enc_copy, head_copy, feats, labels), params_copy)
    lrs = [encoder_lr] * len(list(encoder.parameters())) + [head_lr] * len(list(head.parameters()))
    before = [p.detach().clone() for p in list(encoder.parameters()) + list(head.parameters())]

    optimizer = torch.optim.SGD(groups, lr=123.0)  # the default lr must not be used
    optimizer.zero_grad()
    loss_of(encoder, head, feats, labels).backward()
    optimizer.step()

    after = [p.detach() for p in list(encoder.parameters()) + list(head.parameters())]
    moved = 0
    for p0, p1, grad, lr in zip(before, after, grads, lrs):
        assert torch.allclose(p1, p0 - lr * grad, atol=1e-7, rtol=1e-6)
        moved += int(not torch.equal(p1, p0))
    assert moved > len(after) // 2
    # the two rates really differ in effect: the head step is head_lr / encoder_lr larger
    w0, w1, g = before[-2], after[-2], grads[-2]  # output.weight
    assert torch.allclose(w0 - w1, head_lr * g, atol=1e-7)
    assert not torch.allclose(w0 - w1, encoder_lr * g, atol=1e-7)


def test_scratch_has_one_group_and_unfreezes():
    encoder, head = make_model()
    transfer_param_groups(encoder, head, "linear_probe", head_lr=0.1)  # frozen first
    groups = transfer_param_groups(encoder, head, "scratch", head_lr=0.1, scratch_lr=0.05)
    assert len(groups) == 1 and groups[0]["lr"] == 0.05
    expected = list(encoder.parameters()) + list(head.parameters())
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in expected]
    assert all(p.requires_grad for p in expected)


@pytest.mark.parametrize("mode", ["finetuning", "linear", "", "Scratch"])
def test_unknown_mode(mode):
    encoder, head = make_model()
    with pytest.raises(ValueError, match="mode"):
        transfer_param_groups(encoder, head, mode, head_lr=0.1)


# ----------------------------------------------------------------------------- checkpoint checks


def test_state_dict_mismatch_lists():
    encoder, _ = make_model()
    state = encoder.state_dict()
    assert state_dict_mismatch(encoder, state) == {"missing": [], "unexpected": [], "shape": []}
    other, _ = make_model(channels=[4, 8, 16, 16])
    problems = state_dict_mismatch(encoder, other.state_dict())
    assert problems["missing"] == [] and problems["unexpected"] == []
    shape_keys = [entry.split(":")[0] for entry in problems["shape"]]
    expected = [k for k, v in state.items() if tuple(v.shape) != tuple(other.state_dict()[k].shape)]
    assert shape_keys == expected and expected


def test_check_encoder_checkpoint_passes_on_matching(tmp_path):
    encoder, _ = make_model()
    path = str(tmp_path / ENCODER_FILE)
    other = make_model(seed=5)[0].state_dict()  # same architecture, other weights
    torch.save(other, path)
    before = snapshot(encoder)
    assert check_encoder_checkpoint(encoder, path) is None  # no exception, nothing returned
    # a check only: the model keeps its own weights (the checkpoint's differ, so a load shows)
    assert_state_equal(snapshot(encoder), before)
    assert not torch.equal(other["trunk.stem.0.weight"], before["trunk.stem.0.weight"])
    # and the saved file is left as it was
    assert_state_equal(torch.load(path, weights_only=True), other)


def test_check_encoder_checkpoint_names_missing_and_unexpected(tmp_path):
    encoder, _ = make_model()
    state = dict(encoder.state_dict())
    del state["trunk.stem.0.weight"]
    state["trunk.extra.weight"] = torch.zeros(3)
    path = str(tmp_path / ENCODER_FILE)
    torch.save(state, path)
    with pytest.raises(EncoderMismatchError) as info:
        check_encoder_checkpoint(encoder, path)
    message = str(info.value)
    assert "missing keys: trunk.stem.0.weight" in message
    assert "unexpected keys: trunk.extra.weight" in message
    assert "shape mismatch" not in message
    assert path in message
    assert isinstance(info.value, ValueError)


def test_check_encoder_checkpoint_names_shape_mismatch(tmp_path):
    encoder, _ = make_model()
    other, _ = make_model(channels=[8, 8, 16, 32])
    path = str(tmp_path / ENCODER_FILE)
    torch.save(other.state_dict(), path)
    with pytest.raises(EncoderMismatchError) as info:
        check_encoder_checkpoint(encoder, path)
    message = str(info.value)
    assert "shape mismatch" in message
    assert "trunk.stem.0.weight: checkpoint (8, 1, 3, 3) vs model (4, 1, 3, 3)" in message
    assert "missing keys" not in message and "unexpected keys" not in message
    n_shape = len(state_dict_mismatch(encoder, other.state_dict())["shape"])
    assert n_shape > 6 and f"(+{n_shape - 6} more)" in message


def test_check_encoder_checkpoint_missing_file(tmp_path):
    encoder, _ = make_model()
    with pytest.raises(EncoderMismatchError, match="not found"):
        check_encoder_checkpoint(encoder, str(tmp_path / ENCODER_FILE))


# ----------------------------------------------------------------------------- loading


def test_load_pretrained_encoder_from_folder(tmp_path):
    source, collect = tmp_path / "speaker", tmp_path / "collect"
    source.mkdir()
    pretrained, _ = make_model(seed=7)
    with torch.no_grad():  # make the buffers non-default too
        pretrained(torch.randn(3, 24, N_MELS))  # (train mode: updates running stats)
    saved = snapshot(pretrained)
    torch.save(pretrained.state_dict(), str(source / ENCODER_FILE))

    fresh, _ = make_model(seed=8)
    differs = [k for k in saved if not torch.equal(saved[k], fresh.state_dict()[k])]
    assert "trunk.stem.0.weight" in differs and any("running_mean" in k for k in differs)

    load_pretrained_encoder(fresh, str(source), str(collect))
    assert_state_equal(snapshot(fresh), saved)


@pytest.mark.parametrize("kind", ["absolute", "relative", "deep", "bare"])
def test_load_pretrained_encoder_missing_local_folder(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    source = {
        "absolute": str(tmp_path / "no_such_folder"),
        "relative": "./no_such_folder",
        "deep": "results/speaker/no_such_folder",
        "bare": "no_such_folder",
    }[kind]
    encoder, _ = make_model()
    before = snapshot(encoder)
    with pytest.raises(EncoderMismatchError, match="no_such_folder"):
        load_pretrained_encoder(encoder, source, str(tmp_path / "collect"))
    assert_state_equal(snapshot(encoder), before)


def test_load_pretrained_encoder_rejects_mismatch_before_loading(tmp_path):
    source = tmp_path / "speaker"
    source.mkdir()
    torch.save(make_model(channels=[8, 8, 16, 32])[0].state_dict(), str(source / ENCODER_FILE))
    encoder, _ = make_model()
    before = snapshot(encoder)
    with pytest.raises(EncoderMismatchError, match="shape mismatch"):
        load_pretrained_encoder(encoder, str(source), str(tmp_path / "collect"))
    assert_state_equal(snapshot(encoder), before)


def test_load_pretrained_encoder_folder_without_checkpoint(tmp_path):
    source = tmp_path / "empty"
    source.mkdir()
    encoder, _ = make_model()
    with pytest.raises(EncoderMismatchError, match="not found"):
        load_pretrained_encoder(encoder, str(source), str(tmp_path / "collect"))


# ----------------------------------------------------------------------------- schedule


def _optimizer(lrs):
    return torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs])


def test_hold_then_decay_per_group():
    lrs = [0.1, 1e-3]
    optimizer = _optimizer(lrs)
    schedule = HoldThenDecay(hold_epochs=8, factor=0.5)
    for epoch in range(1, 15):
        got = schedule(optimizer, epoch)
        halvings = max(0, epoch - 8)
        expected = [lr / 2**halvings for lr in lrs]
        assert got == pytest.approx(expected, rel=1e-12), epoch
        assert [g["lr"] for g in optimizer.param_groups] == got
    # constant for the 8 held epochs, then halved at each later epoch
    assert schedule(optimizer, 8) == pytest.approx(lrs)
    assert schedule(optimizer, 9) == pytest.approx([0.05, 5e-4])
    assert schedule(optimizer, 10) == pytest.approx([0.025, 2.5e-4])


def test_hold_then_decay_is_idempotent_and_pure_in_epoch():
    optimizer = _optimizer([0.2, 0.02])
    schedule = HoldThenDecay(hold_epochs=2, factor=0.5)
    expected = [0.2 * 0.5**3, 0.02 * 0.5**3]  # epoch 5: 3 halvings after 2 held epochs
    assert schedule(optimizer, 5) == pytest.approx(expected, rel=1e-12)
    for _ in range(2):  # no compounding on a repeated call: the known values, not the last ones
        assert schedule(optimizer, 5) == pytest.approx(expected, rel=1e-12)
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(expected, rel=1e-12)
    assert schedule(optimizer, 1) == pytest.approx([0.2, 0.02])  # a resumed run goes back
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.2, 0.02])
    # a fresh schedule on a fresh optimizer agrees (no hidden state in the schedule)
    assert HoldThenDecay(hold_epochs=2, factor=0.5)(_optimizer([0.2, 0.02]), 5) == pytest.approx(
        expected, rel=1e-12
    )


def test_hold_then_decay_other_factor():
    schedule = HoldThenDecay(hold_epochs=0, factor=0.1)
    assert schedule.multiplier(0) == 1 and schedule.multiplier(3) == pytest.approx(1e-3)
    assert schedule(_optimizer([1.0]), 2) == pytest.approx([0.01])
