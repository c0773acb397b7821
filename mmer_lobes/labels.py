"""The label encoder of a classifying recipe, checked against the YAML's class list.

The score files' columns follow the label encoder's order, so a ``label_encoder.txt`` reused
from an earlier run with another ``emotions:`` order would silently mislabel every column.
Both classifying recipes (speech, text) load their encoder through :func:`load_label_encoder`.
"""
from speechbrain.dataio.encoder import CategoricalEncoder

from mmer_lobes.errors import ProjectError


class LabelOrderError(ProjectError, ValueError):
    """A saved label encoder does not hold the classes in the YAML's order."""


def load_label_encoder(path, classes, encoder=None):
    """Loads ``path`` (or creates it from ``classes``) and checks that its order is ``classes``.

    Arguments
    ---------
    path : str
        The ``label_encoder.txt`` of the run.
    classes : list of str
        The YAML's ``emotions``, in the order of the score columns.
    encoder : CategoricalEncoder, optional
        The encoder to fill (the YAML's); a new one when None.

    Returns
    -------
    CategoricalEncoder

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "label_encoder.txt")
    >>> load_label_encoder(path, ["ang", "sad"]).encode_label("sad")
    1
    >>> load_label_encoder(path, ["sad", "ang"])
    Traceback (most recent call last):
    ...
    mmer_lobes.labels.LabelOrderError: .../label_encoder.txt holds the classes ['ang', 'sad'], but the YAML says emotions: ['sad', 'ang']; remove the file or use another output_folder
    """
    encoder = encoder if encoder is not None else CategoricalEncoder()
    classes = list(classes)
    encoder.load_or_create(path=path, from_iterables=[classes])
    encoded = [encoder.ind2lab[i] for i in range(len(encoder))]
    if encoded != classes:
        raise LabelOrderError(
            f"{path} holds the classes {encoded}, but the YAML says emotions: {classes}; "
            "remove the file or use another output_folder"
        )
    return encoder
