"""The sentence pools, loaded from ``sentences.json`` next to this module.

* ``EMOTION_SENTENCES``: class ("ang", "hap", "neu", "sad") to its own pool of sentences;
* ``AMBIGUOUS_SENTENCES``: lexically neutral lines that any emotion could carry;
* ``LATIN1_SENTENCE``: an ambiguous line whose "é" mini-IEMOCAP writes as one latin-1 byte.

The generator draws sentences by index, so the order of the lines is part of the corpus bytes.
"""

import json
from importlib import resources

SENTENCES_FILE = "sentences.json"


def load_sentences():
    """Reads ``sentences.json`` into (emotion pools, ambiguous pool, latin-1 sentence).

    Pools are tuples, in the file's order; the latin-1 sentence is one of the ambiguous lines.

    Example
    -------
    >>> emotion, ambiguous, latin1 = load_sentences()
    >>> sorted(emotion), type(ambiguous).__name__, latin1 in ambiguous
    (['ang', 'hap', 'neu', 'sad'], 'tuple', True)
    """
    text = resources.files(__package__).joinpath(SENTENCES_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    emotion = {label: tuple(pool) for label, pool in data["emotion"].items()}
    ambiguous = tuple(data["ambiguous"])
    latin1 = data["latin1"]
    if latin1 not in ambiguous:
        raise ValueError(f"{SENTENCES_FILE}: the latin-1 sentence {latin1!r} is not ambiguous")
    return emotion, ambiguous, latin1


EMOTION_SENTENCES, AMBIGUOUS_SENTENCES, LATIN1_SENTENCE = load_sentences()
