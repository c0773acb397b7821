"""SpecAugment policies and random chunking of log-mel features.

The paper applies SpecAugment on the fly on log-mel features, with a "conservative" and an
"aggressive" policy, and adds two augmented copies of every original segment; it trains on
random T-frame chunks, T drawn per batch from {150, 200, 250, 300}. The masks are
SpeechBrain's ``SpectrogramDrop`` (time and frequency), chained and replicated by
SpeechBrain's ``Augmenter``; the policy values live in the YAML files.
"""
import random

import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.freq_domain import SpectrogramDrop

POLICY_KEYS = ("time_mask_count", "time_mask_width", "freq_mask_count", "freq_mask_width")


def make_spec_augment(policy, policies, n_copies=2, concat_original=True, replace="zeros"):
    """Builds the SpecAugment of a named policy, or ``None`` for policy ``none``.

    Arguments
    ---------
    policy : str
        ``none`` or a key of ``policies`` (e.g. ``conservative``, ``aggressive``).
    policies : dict
        ``{name: {time_mask_count: [lo, hi], time_mask_width: [lo, hi],
        freq_mask_count: [lo, hi], freq_mask_width: [lo, hi]}}``; counts are numbers of
        masks, widths are in frames (time) or mel channels (frequency), both ends inclusive.
    n_copies : int
        Augmented copies made of every segment in the batch.
    concat_original : bool
        Keep the original segments in the batch beside the copies.
    replace : str
        What masked values become (see ``SpectrogramDrop``); features are mean- and
        variance-normalised first, so ``zeros`` is the mean.

    Returns
    -------
    speechbrain.augment.augmenter.Augmenter or None
        Call it as ``augmented, lengths = aug(feats, lengths)`` and replicate labels with
        ``aug.replicate_labels(labels)``.

    Example
    -------
    >>> policies = {"conservative": {"time_mask_count": [1, 2], "time_mask_width": [0, 10],
    ...                              "freq_mask_count": [1, 2], "freq_mask_width": [0, 8]}}
    >>> aug = make_spec_augment("conservative", policies, n_copies=2)
    >>> feats, lengths = aug(torch.rand(4, 100, 40), torch.ones(4))
    >>> feats.shape, aug.replicate_labels(torch.arange(4)).tolist()
    (torch.Size([12, 100, 40]), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3])
    >>> make_spec_augment("none", policies) is None
    True
    """
    if policy == "none":
        return None
    if policy not in policies:
        raise ValueError(
            f"unknown SpecAugment policy {policy!r}: choose 'none' or one of {sorted(policies)}"
        )
    values = policies[policy]
    missing = [key for key in POLICY_KEYS if key not in values]
    if missing:
        raise ValueError(f"SpecAugment policy {policy!r} lacks {missing}")
    if n_copies < 1:
        raise ValueError(f"n_copies must be at least 1, got {n_copies}")

    def drop(dim, count, width):
        # SpectrogramDrop draws widths in [low, high); +1 makes the YAML range inclusive.
        return SpectrogramDrop(
            drop_length_low=int(width[0]), drop_length_high=int(width[1]) + 1,
            drop_count_low=int(count[0]), drop_count_high=int(count[1]),
            replace=replace, dim=dim,
        )

    return Augmenter(
        parallel_augment=False,
        concat_original=concat_original,
        repeat_augment=n_copies,
        min_augmentations=2,
        max_augmentations=2,
        augmentations=[
            drop(1, values["time_mask_count"], values["time_mask_width"]),
            drop(2, values["freq_mask_count"], values["freq_mask_width"]),
        ],
    )


class TrainingView:
    """What the network sees in training: a random T-frame chunk of every utterance (T drawn
    once per batch), then SpecAugment copies.

    Utterances shorter than T are kept whole and zero-padded; their relative length
    becomes ``frames / T``, so masked pooling ignores the padding. Evaluation bypasses
    this and uses whole segments.

    Arguments
    ---------
    chunk_frames : list of int or None
        The values T is drawn from; ``None`` or empty keeps whole segments.
    spec_augment : speechbrain.augment.augmenter.Augmenter or None
        As built by :func:`make_spec_augment`.

    Example
    -------
    >>> view = TrainingView([150, 200])
    >>> feats, lengths = view(torch.rand(2, 400, 8), torch.tensor([1.0, 0.25]))
    >>> feats.shape[1] in (150, 200), lengths[0].item()
    (True, 1.0)
    >>> round(lengths[1].item() * feats.shape[1])
    100
    >>> view.replicate_labels(torch.tensor([3, 1])).tolist()
    [3, 1]
    """

    def __init__(self, chunk_frames=(150, 200, 250, 300), spec_augment=None):
        if chunk_frames and min(chunk_frames) < 1:
            raise ValueError(f"chunk_frames must be positive frame counts, got {chunk_frames}")
        self.chunk_frames = list(chunk_frames or [])
        self.spec_augment = spec_augment

    def __call__(self, feats, lengths):
        """Returns the training view ``(feats, relative_lengths)`` of ``(batch, time, dim)``."""
        if self.chunk_frames:
            feats, lengths = random_chunks(feats, lengths, random.choice(self.chunk_frames))
        if self.spec_augment is not None:
            feats, lengths = self.spec_augment(feats, lengths)
        return feats, lengths

    def replicate_labels(self, labels):
        """Repeats ``labels`` to match the batch returned by the last call."""
        if self.spec_augment is None:
            return labels
        return self.spec_augment.replicate_labels(labels)


def random_chunks(feats, lengths, chunk_frames):
    """One random ``chunk_frames``-long chunk per utterance, padding the short ones.

    Arguments
    ---------
    feats : torch.Tensor
        ``(batch, time, dim)``.
    lengths : torch.Tensor
        Relative lengths in (0, 1].
    chunk_frames : int

    Example
    -------
    >>> x = torch.arange(10.0).view(1, 10, 1)
    >>> chunk, length = random_chunks(x, torch.tensor([1.0]), 4)
    >>> chunk.shape, chunk[0, 1, 0] - chunk[0, 0, 0]
    (torch.Size([1, 4, 1]), tensor(1.))
    >>> random_chunks(x, torch.tensor([0.2]), 4)[0][0, :, 0].tolist()
    [0.0, 1.0, 0.0, 0.0]
    """
    batch, max_frames, dim = feats.shape
    valid = torch.clamp(torch.round(lengths * max_frames), min=1).long().tolist()
    chunks = feats.new_zeros(batch, chunk_frames, dim)
    new_lengths = torch.ones(batch, device=feats.device)
    for index, frames in enumerate(valid):
        if frames > chunk_frames:
            start = random.randint(0, frames - chunk_frames)
            chunks[index] = feats[index, start : start + chunk_frames]
        else:
            chunks[index, :frames] = feats[index, :frames]
            new_lengths[index] = frames / chunk_frames
    return chunks, new_lengths
