"""Text emotion recognition with the BERT model of ``recipes/train_text.py``.

    model = TextEmotionRecognizer.from_hparams(source="models/mmer_text")
    out_prob, score, index, text_lab = model.classify_batch(["I can't believe it!"])
    model.predict_text("I lost my keys again.").label

The computation is the recipe's: tokenisation (``[CLS] ... [SEP]``, at most ``max_length``
tokens, longer transcripts truncated and flagged ``truncated_text``) -> BertEmotionClassifier
(log-posteriors), a batch at a time with attention masks, so padding never reaches a score.
An empty transcript is refused: there is nothing to classify.
"""
import os

import torch

from mmer_lobes.interfaces.inputs import InterfaceError
from mmer_lobes.interfaces.loading import FolderInterface, label_order
from mmer_lobes.interfaces.results import BatchPrediction
from mmer_lobes.text import encode_texts


class TextEmotionRecognizer(FolderInterface):
    """Text emotion recognition (see the module docstring).

    Example
    -------
    >>> from mmer_lobes.interfaces.examples import text_hparams, text_modules
    >>> model = TextEmotionRecognizer(modules=text_modules(), hparams=text_hparams())
    >>> out_prob, score, index, text_lab = model.classify_batch(["Oh no.", "Great news!"])
    >>> out_prob.shape, text_lab[0] in model.classes
    (torch.Size([2, 2]), True)
    >>> result = model.predict_text("I lost my keys again.")
    >>> result.decided_by, round(sum(result.probabilities.values()), 5)
    ('text', 1.0)
    >>> model.predict_text(" ")
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.inputs.InterfaceError: text 0 of 1 is empty: there is nothing to classify
    """

    MODULES_NEEDED = ["text_classifier"]
    HPARAMS_NEEDED = ["label_encoder", "tokenizer", "max_length"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.classes = label_order(self.hparams.label_encoder, getattr(self.hparams, "n_classes", None))
        self.tokenizer = self.hparams.tokenizer
        self.max_length = int(self.hparams.max_length)

    def encode_batch(self, texts):
        """The pooled text embeddings ``(batch, 1, hidden)`` the head classifies."""
        ids, lengths = self._encode(texts)
        with torch.no_grad():
            return self.mods.text_classifier.embed(ids, lengths).unsqueeze(1)

    def classify_batch(self, texts):
        """``(out_prob, score, index, text_lab)`` of a list of transcripts: the
        log-posteriors, the best one, its index and its label."""
        return self.predict_batch(texts).as_speechbrain()

    def classify_file(self, path):
        """``(out_prob, score, index, text_lab)`` of the UTF-8 text held in a file."""
        return self.classify_batch([read_text_file(path)])

    def forward(self, texts):
        """Runs :meth:`classify_batch`."""
        return self.classify_batch(texts)

    def predict_batch(self, texts):
        """A :class:`~mmer_lobes.interfaces.results.BatchPrediction` of a list of transcripts."""
        scores, flags = self.log_posteriors(texts)
        scores = scores.cpu()
        labels = [self.classes[i] for i in scores.argmax(dim=1).tolist()]
        return BatchPrediction(list(self.classes), scores, labels, ["text"] * len(labels), None, scores, flags)

    def predict_text(self, text):
        """An :class:`~mmer_lobes.interfaces.results.EmotionPrediction` of one transcript."""
        return self.predict_batch([text]).predictions()[0]

    def log_posteriors(self, texts):
        """Log-posteriors ``(len(texts), classes)`` and per-item flags (``truncated_text``)."""
        ids, lengths = self._encode(texts)
        flags = [["truncated_text"] if len(self.tokenizer(t)["input_ids"]) > self.max_length else []
                 for t in texts]
        with torch.no_grad():
            scores = self.mods.text_classifier(ids, lengths)
        return scores.float(), flags

    def _encode(self, texts):
        texts = list(texts)
        if not texts:
            raise InterfaceError("no text to classify")
        empty = [i for i, t in enumerate(texts) if t is None or not str(t).strip()]
        if empty:
            raise InterfaceError(f"text {empty[0]} of {len(texts)} is empty: there is nothing to classify")
        ids, lengths = encode_texts(self.tokenizer, [str(t) for t in texts], self.max_length)
        return ids.to(self.device), lengths.to(self.device)


def read_text_file(path):
    """The stripped UTF-8 text of a file; errors name the file.

    Example
    -------
    >>> read_text_file("/no/such.txt")
    Traceback (most recent call last):
    ...
    mmer_lobes.interfaces.inputs.InterfaceError: cannot read text file /no/such.txt: No such file or directory
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as error:
        raise InterfaceError(f"cannot read text file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InterfaceError(f"text file {path} is not UTF-8") from None
