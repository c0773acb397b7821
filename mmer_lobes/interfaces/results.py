"""What the interfaces return beyond SpeechBrain's ``(out_prob, score, index, text_lab)``:
per-modality decisions, the source of the decision, and the input-handling flags.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch


@dataclass
class ModalityPrediction:
    """One modality's own decision: ``label`` and ``probabilities`` per class.

    Example
    -------
    >>> ModalityPrediction("sad", {"neu": 0.25, "sad": 0.75}).to_dict()
    {'label': 'sad', 'probabilities': {'neu': 0.25, 'sad': 0.75}}
    """

    label: str
    probabilities: Dict[str, float]

    def to_dict(self):
        """Plain JSON types."""
        return {"label": self.label, "probabilities": dict(self.probabilities)}


@dataclass
class EmotionPrediction:
    """The result for one input.

    Attributes
    ----------
    label : str
        The decision (argmax of ``probabilities``).
    probabilities : dict
        Class name -> posterior probability of the decision's source.
    decided_by : str
        ``"fusion:<method>"``, ``"speech"`` or ``"text"``.
    speech, text : ModalityPrediction or None
        Each modality's own prediction (None when the modality was not used).
    flags : list of str
        How the input was handled (see the module docstring).
    duration : float or None
        Seconds of audio read (before any padding).

    Example
    -------
    >>> text = ModalityPrediction("sad", {"neu": 0.1, "sad": 0.9})
    >>> result = EmotionPrediction("sad", {"neu": 0.2, "sad": 0.8}, "fusion:weighted", text=text)
    >>> result.to_dict()["text"]["label"], result.to_dict()["speech"]
    ('sad', None)
    """

    label: str
    probabilities: Dict[str, float]
    decided_by: str
    speech: Optional[ModalityPrediction] = None
    text: Optional[ModalityPrediction] = None
    flags: List[str] = field(default_factory=list)
    duration: Optional[float] = None

    def to_dict(self):
        """Plain JSON types (``speech`` / ``text`` are None when unused)."""
        return {
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "decided_by": self.decided_by,
            "speech": self.speech.to_dict() if self.speech else None,
            "text": self.text.to_dict() if self.text else None,
            "flags": list(self.flags),
            "duration": self.duration,
        }


@dataclass
class BatchPrediction:
    """The result of ``predict_batch``: the decisions and each modality's scores.

    Attributes
    ----------
    classes : list of str
        The column order of every tensor.
    log_posteriors : torch.Tensor
        ``(batch, classes)`` log-posteriors of the decisions.
    labels : list of str
        The decisions.
    decided_by : list of str
        Per item: ``"fusion:<method>"``, ``"speech"`` or ``"text"``.
    speech_log_posteriors, text_log_posteriors : torch.Tensor or None
        Each modality's own ``(batch, classes)`` log-posteriors; None when the modality was
        not run at all, and rows of NaN for items it did not score (e.g. empty text).
    flags : list of list of str

    Example
    -------
    >>> scores = torch.log(torch.tensor([[0.9, 0.1], [0.3, 0.7]]))
    >>> batch = BatchPrediction(["neu", "sad"], scores, ["neu", "sad"], ["speech", "speech"],
    ...                         scores, None, [[], ["padded_short_clip"]])
    >>> second = batch.predictions()[1]
    >>> second.label, round(second.probabilities["sad"], 6), second.text, second.flags
    ('sad', 0.7, None, ['padded_short_clip'])
    """

    classes: List[str]
    log_posteriors: torch.Tensor
    labels: List[str]
    decided_by: List[str]
    speech_log_posteriors: Optional[torch.Tensor]
    text_log_posteriors: Optional[torch.Tensor]
    flags: List[List[str]]

    def __len__(self):
        return len(self.labels)

    def as_speechbrain(self):
        """SpeechBrain's ``(out_prob, score, index, text_lab)`` of the decisions, as
        ``EncoderClassifier.classify_batch`` returns them: the ``(batch, classes)``
        log-posteriors, the best log-posterior, its index and its label per item.

        Example
        -------
        >>> scores = torch.log(torch.tensor([[0.9, 0.1], [0.3, 0.7]]))
        >>> batch = BatchPrediction(["neu", "sad"], scores, ["neu", "sad"], ["speech"] * 2, scores, None, [[], []])
        >>> out_prob, score, index, text_lab = batch.as_speechbrain()
        >>> index.tolist(), text_lab, torch.equal(score, scores.max(dim=1).values)
        ([0, 1], ['neu', 'sad'], True)
        """
        score, index = torch.max(self.log_posteriors, dim=-1)
        return self.log_posteriors, score, index, list(self.labels)

    def predictions(self):
        """One :class:`EmotionPrediction` per item."""
        results = []
        for i in range(len(self)):
            results.append(EmotionPrediction(
                label=self.labels[i],
                probabilities=_probabilities(self.log_posteriors[i], self.classes),
                decided_by=self.decided_by[i],
                speech=_modality(self.speech_log_posteriors, i, self.classes),
                text=_modality(self.text_log_posteriors, i, self.classes),
                flags=list(self.flags[i]),
            ))
        return results


def _probabilities(row, classes):
    return {name: float(p) for name, p in zip(classes, torch.exp(row.double()).tolist())}


def _modality(scores, index, classes):
    if scores is None or torch.isnan(scores[index]).any():
        return None
    row = scores[index]
    return ModalityPrediction(classes[int(row.argmax())], _probabilities(row, classes))
