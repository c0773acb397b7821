"""Encoder folders: a speaker encoder that says by itself how to turn a wav into pooled
statistics.

An encoder folder holds

- ``encoder.yaml``: an *encoder definition*, a HyperPyYAML file defining ``sample_rate``,
  ``compute_features``, ``mean_var_norm`` and ``encoder`` (see
  ``hparams/encoders/paper_resnet34.yaml``), every include and value resolved;
- ``encoder.ckpt``: the state dict of its ``encoder``.

``recipes/train_speaker.py`` writes one for the encoder it trains, and ``mmer-import-encoder``
(``recipes/import_encoder.py``) for a published wespeaker or SpeechBrain speaker model. The
emotion recipe builds its front end and encoder from the folder it is given
(``--pretrained_encoder``) with :func:`load_encoder_definition`, or from a template of
``hparams/encoders/`` when it is given none.
"""
import datetime
import io
import os
import shutil
import tempfile

import torch
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml import YAML

from mmer_lobes.errors import ProjectError, one_line
from mmer_lobes.files import swap_in_folder
from mmer_lobes.hparams_files import (HPARAMS_FOLDER, HparamsFileError, compose_yaml, parse_yaml_tree, plain_values,
                                      without_blocks)
from mmer_lobes.transfer import ENCODER_FILE, describe_mismatch, state_dict_mismatch

DEFINITION_FILE = "encoder.yaml"
DEFINED_KEYS = ("sample_rate", "compute_features", "mean_var_norm", "encoder")


class EncoderFolderError(ProjectError, ValueError):
    """An encoder folder or definition that cannot be used, or an override that contradicts it."""


class EncoderDefinition(dict):
    """The objects and values of an encoder definition (a dict, as HyperPyYAML loads it),
    with the YAML text they were built from (``text``) and the folder it came from
    (``folder``, None for a template)."""

    def __init__(self, loaded, text, folder=None):
        super().__init__(loaded)
        self.text = text
        self.folder = folder

    def plain_values(self):
        """The definition's plain values (numbers, strings, lists, mappings of them), by key,
        read from its text.

        Example
        -------
        >>> definition = load_encoder_definition(values={"n_mels": 40, "channels": [4, 8, 16, 32]})
        >>> values = definition.plain_values()
        >>> values["n_mels"], values["channels"], "encoder" in values
        (40, [4, 8, 16, 32], False)
        """
        return plain_values(parse_yaml_tree(self.text))


def template_path(name):
    """The file of an encoder-definition template of ``hparams/encoders/``.

    Example
    -------
    >>> os.path.relpath(template_path("paper_resnet34"), HPARAMS_FOLDER)
    'encoders/paper_resnet34.yaml'
    """
    path = os.path.join(HPARAMS_FOLDER, "encoders", f"{name}.yaml")
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(os.path.dirname(path))) if os.path.isdir(os.path.dirname(path)) else []
        raise EncoderFolderError(f"no encoder template {name!r} in {os.path.dirname(path)} (known: {', '.join(known) or 'none'})")
    return path


def definition_text(resolved):
    """A resolved definition without its included blocks
    (:func:`~mmer_lobes.hparams_files.without_blocks`) and without the template's header.

    Example
    -------
    >>> print(definition_text("# template\\nfeatures: {n_mels: 128}\\nn_mels: 64\\n"), end="")
    n_mels: 64
    """
    tree = parse_yaml_tree(without_blocks(resolved))
    tree.ca.comment = None
    stream = io.StringIO()
    YAML(typ="rt").dump(tree, stream)
    return stream.getvalue()


def render_template(name, values=None, nodes=None):
    """The definition text of template ``name`` with ``values`` (and ``nodes``, see
    :func:`~mmer_lobes.hparams_files.compose_yaml`) filled in.

    Example
    -------
    >>> text = render_template("paper_resnet34", {"n_mels": 40})
    >>> "n_mels: 40" in text, "\\nfeatures:" in text
    (True, False)
    """
    try:
        return definition_text(compose_yaml(template_path(name), values, nodes))
    except HparamsFileError as error:
        raise EncoderFolderError(f"encoder template {name}: {error}") from None


def build_definition(text, source, folder=None):
    """Builds the objects of a definition text; checks that it defines what the recipes use."""
    try:
        loaded = load_hyperpyyaml(text)
    except Exception as error:  # any failure to build the named objects
        raise EncoderFolderError(f"{source} does not build: {one_line(error)[:300]}") from None
    missing = [key for key in DEFINED_KEYS if key not in loaded]
    if missing:
        raise EncoderFolderError(f"{source} defines no {', '.join(missing)}: an encoder definition defines "
                                 f"{', '.join(DEFINED_KEYS)}")
    if not isinstance(getattr(loaded["encoder"], "output_size", None), int):
        raise EncoderFolderError(f"{source}: its encoder ({type(loaded['encoder']).__name__}) has no integer output_size")
    return EncoderDefinition(loaded, text, folder)


def load_encoder_definition(folder=None, template="paper_resnet34", values=None):
    """The front end and encoder of an encoder folder, or of a template with ``values``.

    Arguments
    ---------
    folder : str, optional
        An encoder folder: its ``encoder.yaml`` is used whole, and ``template`` and
        ``values`` are ignored.
    template : str
        A template of ``hparams/encoders/``, used when ``folder`` is None.
    values : dict, optional
        Overrides of the template's keys.

    Returns
    -------
    EncoderDefinition
        ``definition["encoder"]``, ``definition["compute_features"]``... and its ``text``.

    Example
    -------
    >>> definition = load_encoder_definition(values={"n_mels": 32, "channels": [4, 8, 16, 32]})
    >>> feats = definition["compute_features"](torch.randn(1, 16000))
    >>> feats = definition["mean_var_norm"](feats, torch.ones(1))
    >>> definition["encoder"](feats).shape, definition["encoder"].output_size
    (torch.Size([1, 256]), 256)
    """
    if folder is None:
        return build_definition(render_template(template, values), f"encoder template {template}")
    path = os.path.join(str(folder), DEFINITION_FILE)
    if not os.path.isdir(str(folder)):
        raise EncoderFolderError(f"encoder folder not found: {folder}")
    if not os.path.isfile(path):
        raise EncoderFolderError(
            f"{folder} holds no {DEFINITION_FILE}: an encoder folder is written by recipes/train_speaker.py "
            "or mmer-import-encoder (re-run recipes/train_speaker.py for a folder from before encoder.yaml)")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return build_definition(text, path, folder=os.path.abspath(str(folder)))


def check_encoder_overrides(overrides, definition, keys):
    """Refuses an override of ``keys`` that contradicts the definition of an encoder folder.

    The folder defines the features and the architecture: an override of one of ``keys``
    (the recipe's own values of them, used only without a folder) must equal the folder's
    value, and a key the folder does not define is refused too.

    Arguments
    ---------
    overrides : dict
        The command line's overrides.
    definition : EncoderDefinition
    keys : list of str

    Example
    -------
    >>> definition = EncoderDefinition({"n_mels": 80}, "n_mels: 80\\n", folder="enc")
    >>> check_encoder_overrides({"n_mels": 80, "lr": 0.1}, definition, ["n_mels", "win_length"])
    >>> check_encoder_overrides({"n_mels": 128}, definition, ["n_mels"])
    Traceback (most recent call last):
    ...
    mmer_lobes.encoder_folders.EncoderFolderError: --n_mels 128 contradicts the encoder folder enc (n_mels: 80): the folder defines the features and the architecture; drop the override
    >>> check_encoder_overrides({"win_length": 25}, definition, ["win_length"])
    Traceback (most recent call last):
    ...
    mmer_lobes.encoder_folders.EncoderFolderError: --win_length 25: the encoder folder enc defines the features and the architecture and has no win_length; drop the override
    """
    if definition.folder is None:
        return
    values = definition.plain_values()
    for key in keys:
        if key not in (overrides or {}):
            continue
        given = overrides[key]
        if key not in values:
            raise EncoderFolderError(f"--{key} {given}: the encoder folder {definition.folder} defines the features "
                                     f"and the architecture and has no {key}; drop the override")
        if given != values[key]:
            raise EncoderFolderError(f"--{key} {given} contradicts the encoder folder {definition.folder} "
                                     f"({key}: {values[key]}): the folder defines the features and the "
                                     "architecture; drop the override")


def write_encoder_folder(folder, text, state_dict, origin, overwrite=False, verify=None):
    """Writes an encoder folder (``encoder.yaml`` + ``encoder.ckpt``); all or nothing.

    The definition must build and ``state_dict`` fit its encoder exactly; the folder is
    written beside its place, given to ``verify`` (a callable of the staged folder, whose
    result is returned), and only then put in place. ``overwrite`` replaces an existing
    encoder folder, never a folder holding anything else. ``origin`` (what the encoder comes
    from) heads ``encoder.yaml`` as a comment.

    Example
    -------
    >>> folder = os.path.join(tempfile.mkdtemp(), "enc")
    >>> text = render_template("paper_resnet34", {"n_mels": 32, "channels": [4, 8, 16, 32]})
    >>> encoder = load_encoder_definition(values={"n_mels": 32, "channels": [4, 8, 16, 32]})["encoder"]
    >>> write_encoder_folder(folder, text, encoder.state_dict(), "a doctest")
    >>> sorted(os.listdir(folder))
    ['encoder.ckpt', 'encoder.yaml']
    >>> write_encoder_folder(folder, text, {}, "a doctest")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.encoder_folders.EncoderFolderError: the weights do not fit the encoder of the definition: missing keys: ...
    >>> write_encoder_folder(os.path.dirname(folder), text, encoder.state_dict(), "a doctest", overwrite=True)
    Traceback (most recent call last):
    ...
    mmer_lobes.encoder_folders.EncoderFolderError: ... holds enc, not only an encoder folder's files: refusing to replace it
    """
    definition = build_definition(text, "the encoder definition")
    problems = describe_mismatch(state_dict_mismatch(definition["encoder"], state_dict))
    if problems:
        raise EncoderFolderError(f"the weights do not fit the encoder of the definition: {problems}")
    folder = os.path.abspath(folder)
    if os.path.lexists(folder):
        if os.path.islink(folder) or not os.path.isdir(folder):
            raise EncoderFolderError(f"{folder} exists and is not a folder; choose another output")
        contents = sorted(os.listdir(folder))
        if contents and not overwrite:
            raise EncoderFolderError(f"{folder} exists and is not empty; choose another folder or overwrite it")
        others = [name for name in contents if name not in (DEFINITION_FILE, ENCODER_FILE)]
        if others:
            raise EncoderFolderError(f"{folder} holds {', '.join(others[:3])}, not only an encoder folder's files: "
                                     "refusing to replace it")
    parent = os.path.dirname(folder)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(folder)}.")
    except OSError as error:
        raise EncoderFolderError(f"cannot write in {parent} ({error.strerror})") from None
    try:
        with open(os.path.join(staging, DEFINITION_FILE), "w", encoding="utf-8") as handle:
            handle.write(f"# Encoder definition (mmer_lobes/encoder_folders.py) of {origin},\n"
                         f"# written on {datetime.date.today().isoformat()}. The weights of `encoder` are {ENCODER_FILE}.\n"
                         "# SAFETY: HyperPyYAML builds the objects it names. Only load folders you trust.\n"
                         + text)
        torch.save({key: value.detach().cpu() for key, value in state_dict.items()},
                   os.path.join(staging, ENCODER_FILE))
        checked = verify(staging) if verify else None
        os.chmod(staging, 0o755)
        swap_in_folder(staging, folder)
        return checked
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
