"""HyperPyYAML files composed without building them: the project's ``hparams/`` folder, a
file with some of its top-level nodes replaced, resolved into one self-contained text.

HyperPyYAML's overrides update a mapping key by key, so they cannot put one object in the
place of another (an ``!include`` or a ``!new:`` node by a ``!new:`` node of another class):
:func:`compose_yaml` swaps such nodes in the round-trip tree first, then resolves the file
(every ``!include`` inlined, every ``!ref`` to a value replaced) with the value overrides.
"""
import io
import os

from hyperpyyaml import resolve_references
from ruamel.yaml import YAML

from mmer_lobes.errors import ProjectError

HPARAMS_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hparams")


class HparamsFileError(ProjectError, ValueError):
    """A YAML file that cannot be read or composed."""


def parse_yaml_tree(text):
    """The round-trip tree of a YAML text: tags kept, no object built.

    Example
    -------
    >>> tree = parse_yaml_tree("encoder: !new:torch.nn.Linear [2, 3]")
    >>> tree["encoder"].tag.value, list(tree["encoder"])
    ('!new:torch.nn.Linear', [2, 3])
    """
    return YAML(typ="rt").load(text)


def read_yaml_file(path):
    """The round-trip tree of a YAML file (:func:`parse_yaml_tree`).

    Example
    -------
    >>> read_yaml_file("no/such.yaml")
    Traceback (most recent call last):
    ...
    mmer_lobes.hparams_files.HparamsFileError: cannot read no/such.yaml (No such file or directory)
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_yaml_tree(handle)
    except OSError as error:
        raise HparamsFileError(f"cannot read {path} ({error.strerror})") from None


def compose_yaml(path, values=None, nodes=None):
    """The text of the HyperPyYAML file ``path`` with its top-level ``nodes`` replaced and
    ``values`` applied as overrides, every include and reference resolved.

    Arguments
    ---------
    path : str
        The file; its includes are found relative to it.
    values : dict, optional
        Overrides of keys that the file has (a key it lacks is an error).
    nodes : dict, optional
        ``{key: node}``: round-trip nodes (from :func:`parse_yaml_tree`) put in place of the
        file's top-level ``key``, whole.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.yaml")
    >>> with open(path, "w") as handle:
    ...     _ = handle.write("size: 2\\nmodel: !new:torch.nn.Linear [!ref <size>, 3]\\n")
    >>> print(compose_yaml(path, values={"size": 4}), end="")
    size: 4
    model: !new:torch.nn.Linear [4, 3]
    >>> swapped = parse_yaml_tree("model: !new:torch.nn.Identity")["model"]
    >>> print(compose_yaml(path, nodes={"model": swapped}), end="")
    size: 2
    model: !new:torch.nn.Identity
    """
    tree = read_yaml_file(path)
    for key, node in (nodes or {}).items():
        if key not in tree:
            raise HparamsFileError(f"{path} has no key {key} to replace")
        tree[key] = node
    stream = io.StringIO()
    YAML(typ="rt").dump(tree, stream)
    stream.seek(0)
    stream.name = path  # resolve_references finds the includes beside the stream's name
    try:
        return resolve_references(stream, values or None, overrides_must_match=True).getvalue()
    except KeyError as error:
        raise HparamsFileError(f"{path}: {error.args[0]}") from None


def plain(value, key="value", path="the YAML"):
    """A round-trip node as plain Python types (dicts, lists, scalars); a tagged node (an
    object, not a value) anywhere inside it is an error naming ``key`` and ``path``.

    Example
    -------
    >>> tree = parse_yaml_tree("a: {n: 1, m: [2, 3]}\\nb: {x: !new:torch.nn.Identity }")
    >>> plain(tree["a"])
    {'n': 1, 'm': [2, 3]}
    >>> plain(tree["b"], "b", "h.yaml")
    Traceback (most recent call last):
    ...
    mmer_lobes.hparams_files.HparamsFileError: h.yaml: b.x is !new:torch.nn.Identity ..., not a plain value
    """
    tag = getattr(getattr(value, "tag", None), "value", None)
    if tag:
        raise HparamsFileError(f"{path}: {key} is {tag} ..., not a plain value")
    if isinstance(value, dict):
        return {str(k): plain(v, f"{key}.{k}", path) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, key, path) for v in value]
    return value


def plain_values(mapping):
    """The keys of a round-trip mapping that hold plain values (not objects), as plain types.

    Example
    -------
    >>> plain_values(parse_yaml_tree("n: 1\\nmodel: !new:torch.nn.Identity\\nblock: {a: [1, 2]}"))
    {'n': 1, 'block': {'a': [1, 2]}}
    """
    values = {}
    for key, value in mapping.items():
        try:
            values[key] = plain(value, key)
        except HparamsFileError:  # an object, or a mapping holding one
            continue
    return values


def is_value_block(node):
    """Whether a round-trip node is a mapping of plain values only (no object, no reference).

    Example
    -------
    >>> tree = parse_yaml_tree("a: {n: 1, m: [2, 3]}\\nb: {x: !new:torch.nn.Identity }\\nc: 4")
    >>> [is_value_block(tree[key]) for key in "abc"]
    [True, False, False]
    """
    if not isinstance(node, dict):
        return False
    try:
        plain(node)
    except HparamsFileError:
        return False
    return True


def without_blocks(resolved):
    """A resolved HyperPyYAML text without its top-level mappings of plain values: the
    included blocks (``features: {n_mels: 128, ...}``), whose values the file's own keys
    already hold after resolution, and which would only show the block's defaults.

    Example
    -------
    >>> text = "features: {n_mels: 128}\\nn_mels: 64\\nencoder: !new:torch.nn.Identity\\n"
    >>> print(without_blocks(text), end="")
    n_mels: 64
    encoder: !new:torch.nn.Identity
    """
    tree = parse_yaml_tree(resolved)
    for key in [key for key, value in tree.items() if is_value_block(value)]:
        del tree[key]
    stream = io.StringIO()
    YAML(typ="rt").dump(tree, stream)
    return stream.getvalue()
