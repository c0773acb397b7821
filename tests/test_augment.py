"""SpecAugment policies (make_spec_augment on SpeechBrain's SpectrogramDrop + Augmenter),
random chunking and the training view (mmer_lobes.augment)."""
import random

import pytest
import torch

from mmer_lobes.augment import POLICY_KEYS, TrainingView, make_spec_augment, random_chunks

POLICIES = {
    "conservative": {"time_mask_count": [1, 2], "time_mask_width": [0, 10],
                     "freq_mask_count": [1, 2], "freq_mask_width": [0, 8]},
    "aggressive": {"time_mask_count": [2, 3], "time_mask_width": [5, 20],
                   "freq_mask_count": [2, 3], "freq_mask_width": [4, 12]},
}


def single_policy(axis, count, width):
    """A policy with masks on one axis only; the other axis gets count [0, 0]
    (SpeechBrain's SpectrogramDrop returns its input unchanged when it draws 0 masks)."""
    other = "freq" if axis == "time" else "time"
    return {"only": {f"{axis}_mask_count": count, f"{axis}_mask_width": width,
                     f"{other}_mask_count": [0, 0], f"{other}_mask_width": [0, 0]}}


def runs(flags):
    """(start, length) of the runs of True in a 1-d boolean sequence."""
    out, start = [], None
    for index, flag in enumerate(flags.tolist() + [False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            out.append((start, index - start))
            start = None
    return out


# ----------------------------------------------------------------------------- policy parsing


def test_none_policy_is_none():
    assert make_spec_augment("none", POLICIES) is None
    assert make_spec_augment("none", {}) is None


def test_unknown_policy_names_the_choices():
    with pytest.raises(ValueError) as info:
        make_spec_augment("wild", POLICIES)
    message = str(info.value)
    assert "wild" in message
    for choice in ("none", "conservative", "aggressive"):
        assert choice in message


@pytest.mark.parametrize("missing", POLICY_KEYS)
def test_missing_key_is_named(missing):
    policy = {key: value for key, value in POLICIES["conservative"].items() if key != missing}
    with pytest.raises(ValueError, match=missing):
        make_spec_augment("p", {"p": policy})


def test_n_copies_below_one():
    with pytest.raises(ValueError, match="n_copies"):
        make_spec_augment("conservative", POLICIES, n_copies=0)


# ----------------------------------------------------------------------------- batch layout


@pytest.mark.parametrize("n_copies", [1, 2, 3])
@pytest.mark.parametrize("policy", ["conservative", "aggressive"])
def test_originals_first_unchanged_and_copies_follow(policy, n_copies):
    torch.manual_seed(0)
    aug = make_spec_augment(policy, POLICIES, n_copies=n_copies)
    feats = torch.randn(4, 60, 24)
    before = feats.clone()
    lengths = torch.tensor([1.0, 0.8, 0.5, 0.3])
    out, out_lengths = aug(feats, lengths)

    assert out.shape == ((1 + n_copies) * 4, 60, 24)
    assert torch.equal(out[:4], before)  # the originals, first and untouched
    assert torch.equal(feats, before)  # the input itself is not masked in place
    assert torch.equal(out_lengths, lengths.repeat(1 + n_copies))
    labels = torch.tensor([3, 0, 2, 1])
    assert torch.equal(aug.replicate_labels(labels), labels.repeat(1 + n_copies))
    for copy in range(1, 1 + n_copies):
        block = out[4 * copy : 4 * (copy + 1)]
        # a copy is its original with some values set to zero, never other values
        changed = block != before
        assert torch.all(block[changed] == 0)
        assert changed.any()  # count >= 1 and a zeroed value of randn is (a.s.) a change


def test_without_original():
    torch.manual_seed(0)
    aug = make_spec_augment("conservative", POLICIES, n_copies=2, concat_original=False)
    feats = torch.randn(3, 50, 16)
    out, lengths = aug(feats, torch.ones(3))
    assert out.shape == (6, 50, 16)
    assert torch.equal(aug.replicate_labels(torch.arange(3)), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert not torch.equal(out[:3], feats)


def test_zero_count_leaves_the_copy_unchanged():
    """What SpectrogramDrop does with count [0, 0]: nothing (the single-axis policies below
    rely on it)."""
    torch.manual_seed(0)
    policy = {"nothing": {"time_mask_count": [0, 0], "time_mask_width": [1, 5],
                          "freq_mask_count": [0, 0], "freq_mask_width": [1, 5]}}
    aug = make_spec_augment("nothing", policy, n_copies=2)
    feats = torch.randn(2, 30, 16)
    out, _ = aug(feats, torch.ones(2))
    assert torch.equal(out, feats.repeat(3, 1, 1))


# ----------------------------------------------------------------------------- mask widths


@pytest.mark.parametrize("low,high", [(1, 6), (3, 4)])
def test_time_masks_single_mask_width_and_full_band(low, high):
    torch.manual_seed(1)
    batch, time, mels, copies = 4, 80, 16, 2
    aug = make_spec_augment("only", single_policy("time", [1, 1], [low, high]), n_copies=copies)
    seen = set()
    for _ in range(12):
        out, _ = aug(torch.ones(batch, time, mels), torch.ones(batch))
        assert torch.all(out[:batch] == 1)
        for row in out[batch:]:
            zero_frames = (row == 0).all(dim=1)
            # a time mask spans every mel channel; no partial frames
            assert torch.equal((row == 0).any(dim=1), zero_frames)
            masks = runs(zero_frames)
            assert len(masks) == 1  # one mask, and a width >= 1 always zeroes something
            start, width = masks[0]
            assert width <= high
            if start + width < time:  # SpeechBrain may clip a mask at the end of the input
                assert width >= low
            seen.add(width)
    assert high in seen  # the configured maximum is inclusive and reachable


@pytest.mark.parametrize("low,high", [(1, 4), (2, 2)])
def test_freq_masks_single_mask_width_and_full_time(low, high):
    torch.manual_seed(2)
    batch, time, mels, copies = 4, 30, 32, 2
    aug = make_spec_augment("only", single_policy("freq", [1, 1], [low, high]), n_copies=copies)
    seen = set()
    for _ in range(12):
        out, _ = aug(torch.ones(batch, time, mels), torch.ones(batch))
        assert torch.all(out[:batch] == 1)
        for row in out[batch:]:
            zero_bins = (row == 0).all(dim=0)
            assert torch.equal((row == 0).any(dim=0), zero_bins)
            masks = runs(zero_bins)
            assert len(masks) == 1
            start, width = masks[0]
            assert width <= high
            if start + width < mels:
                assert width >= low
            seen.add(width)
    assert high in seen


@pytest.mark.parametrize("axis", ["time", "freq"])
def test_several_masks_respect_total_width(axis):
    torch.manual_seed(3)
    count, width = [2, 3], [1, 5]
    aug = make_spec_augment("only", single_policy(axis, count, width), n_copies=2)
    dim = 1 if axis == "time" else 2
    other = 2 if axis == "time" else 1
    totals = []
    for _ in range(20):
        out, _ = aug(torch.ones(3, 60, 40), torch.ones(3))
        for row in out[3:]:
            zeroed = (row.unsqueeze(0) == 0).all(dim=other).squeeze(0)
            assert zeroed.shape[0] == out.shape[dim]
            total = int(zeroed.sum())
            assert 1 <= total <= count[1] * width[1]
            # every run is at most as wide as the masks that may overlap in it
            assert all(w <= count[1] * width[1] for _, w in runs(zeroed))
            # nothing is zeroed off the masked axis
            assert int((row == 0).sum()) == total * out.shape[other]
            totals.append(total)
    assert max(totals) > width[1]  # several masks really are applied


def test_both_axes_masked_in_default_policy():
    torch.manual_seed(4)
    aug = make_spec_augment("aggressive", POLICIES, n_copies=2)
    time_hit = freq_hit = False
    for _ in range(5):
        out, _ = aug(torch.ones(2, 100, 40), torch.ones(2))
        for row in out[2:]:
            time_hit |= bool((row == 0).all(dim=1).any())
            freq_hit |= bool((row == 0).all(dim=0).any())
            # aggressive: at most 3 time masks of <= 20 frames, 3 freq masks of <= 12 bins
            assert int((row == 0).all(dim=1).sum()) <= 60
            assert int((row == 0).all(dim=0).sum()) <= 36
    assert time_hit and freq_hit


# ----------------------------------------------------------------------------- random chunks


def _indexed_batch(valid, max_frames, dim=3):
    """feats[b, t, :] = 1000 b + t inside the valid region, NaN in the padding."""
    feats = torch.full((len(valid), max_frames, dim), float("nan"))
    for row, frames in enumerate(valid):
        feats[row, :frames] = (1000 * row + torch.arange(frames, dtype=torch.float32)).unsqueeze(1)
    lengths = torch.tensor([frames / max_frames for frames in valid])
    return feats, lengths


def test_long_inputs_give_contiguous_chunks_from_the_valid_region():
    random.seed(0)
    valid, max_frames, chunk = [60, 40, 25, 21], 60, 20
    feats, lengths = _indexed_batch(valid, max_frames)
    starts = {row: set() for row in range(len(valid))}
    for _ in range(800):
        chunks, new_lengths = random_chunks(feats, lengths, chunk)
        assert chunks.shape == (len(valid), chunk, 3)
        assert not torch.isnan(chunks).any()
        assert torch.equal(new_lengths, torch.ones(len(valid)))
        for row, frames in enumerate(valid):
            values = chunks[row, :, 0] - 1000 * row
            start = int(values[0])
            assert torch.equal(values, torch.arange(start, start + chunk, dtype=torch.float32))
            assert torch.equal(chunks[row], chunks[row, :, :1].expand(chunk, 3))
            assert 0 <= start and start + chunk <= frames
            starts[row].add(start)
    for row, frames in enumerate(valid):
        # every start position of the valid region is drawn, the last one included
        assert starts[row] == set(range(frames - chunk + 1)), row


def test_short_inputs_are_zero_padded_with_relative_length():
    random.seed(0)
    valid, max_frames, chunk = [30, 12, 1, 50], 50, 30
    feats, lengths = _indexed_batch(valid, max_frames)
    chunks, new_lengths = random_chunks(feats, lengths, chunk)
    assert chunks.shape == (4, chunk, 3)
    assert not torch.isnan(chunks).any()
    expected_lengths = torch.tensor([1.0, 12 / 30, 1 / 30, 1.0])
    assert torch.allclose(new_lengths, expected_lengths)
    for row, frames in ((0, 30), (1, 12), (2, 1)):
        assert torch.equal(chunks[row, :frames], feats[row, :frames])  # whole, from frame 0
        assert torch.all(chunks[row, frames:] == 0)
    # the relative length gives back the frame count, as the pooling mask computes it
    assert torch.round(new_lengths * chunk).long().tolist() == [30, 12, 1, 30]


def test_training_view_draws_chunk_length_from_the_list():
    random.seed(123)
    choices = [6, 9, 13, 17]
    view = TrainingView(choices)
    feats = torch.randn(2, 40, 4)
    lengths = torch.tensor([1.0, 0.25])  # row 1 has 10 frames: padded for T > 10
    seen = []
    for _ in range(200):
        out, out_lengths = view(feats, lengths)
        frames = out.shape[1]
        seen.append(frames)
        assert out_lengths[0] == 1.0
        assert torch.isclose(out_lengths[1], torch.tensor(min(1.0, 10 / frames)))
    assert set(seen) == set(choices)
    counts = [seen.count(c) for c in choices]
    assert min(counts) > 20  # roughly uniform, not stuck on one value
    # the draw is random.choice on the list: reproducible with the same seed
    random.seed(123)
    assert [view(feats, lengths)[0].shape[1] for _ in range(200)] == seen


def test_training_view_without_chunks_keeps_whole_segments():
    for chunk_frames in (None, []):
        view = TrainingView(chunk_frames)
        feats, lengths = torch.randn(2, 40, 4), torch.tensor([1.0, 0.5])
        out, out_lengths = view(feats, lengths)
        assert out is feats and out_lengths is lengths
        labels = torch.tensor([1, 2])
        assert view.replicate_labels(labels) is labels


@pytest.mark.parametrize("chunk_frames", [[0], [150, -5], [-1]])
def test_training_view_rejects_non_positive_chunks(chunk_frames):
    with pytest.raises(ValueError, match="chunk_frames"):
        TrainingView(chunk_frames)


def test_training_view_with_spec_augment():
    random.seed(0)
    torch.manual_seed(0)
    aug = make_spec_augment("conservative", POLICIES, n_copies=2)
    view = TrainingView([20], spec_augment=aug)
    feats = torch.randn(3, 50, 16)
    out, out_lengths = view(feats, torch.tensor([1.0, 1.0, 0.2]))
    assert out.shape == (9, 20, 16)
    assert torch.allclose(out_lengths, torch.tensor([1.0, 1.0, 0.5]).repeat(3))
    # the originals (first block) are chunks of the input
    for row in range(3):
        rows = [feats[row, s : s + 20] for s in range(31)]
        if row == 2:
            assert torch.equal(out[2, :10], feats[2, :10]) and torch.all(out[2, 10:] == 0)
        else:
            assert any(torch.equal(out[row], r) for r in rows)
    assert view.replicate_labels(torch.tensor([0, 1, 2])).tolist() == [0, 1, 2] * 3
