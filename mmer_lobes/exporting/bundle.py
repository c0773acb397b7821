"""The ``custom_interface.py`` of an exported folder: the inference code in one file.

SpeechBrain's ``foreign_class(source=folder, pymodule_file="custom_interface.py",
classname=...)`` imports that file and builds the objects that the folder's
``hyperparams.yaml`` names. For the folder to load where only ``speechbrain``, ``torch``,
``torchaudio`` and ``transformers`` are installed, the file carries the modules the
interfaces use (:data:`BUNDLED_MODULES`), one after the other, without their imports of each
other; and the folder's YAML names ``custom_interface.<Name>`` where the project's inference
YAMLs name ``mmer_lobes.<module>.<Name>`` (:func:`retarget_tags`).

The bundled modules keep to two rules, which :func:`bundle_source` checks: they import project
code only at module level (``from mmer_lobes.x import a, b``), from bundled modules; and no two
of them define the same top-level name differently.
"""
import ast
import importlib
import re

from mmer_lobes.errors import ProjectError
from mmer_lobes.interfaces.loading import FOLDER_MODULE

PROJECT_PACKAGES = ("mmer_lobes", "data_prep")
# In dependency order: a module comes after every module it imports from.
BUNDLED_MODULES = (
    "mmer_lobes.errors",
    "mmer_lobes.audio",
    "mmer_lobes.resnet",
    "mmer_lobes.kaldi_features",
    "mmer_lobes.embedding_encoder",
    "mmer_lobes.batching",
    "mmer_lobes.onnx_speech",
    "mmer_lobes.text",
    "mmer_lobes.fusion_rules",
    "mmer_lobes.interfaces.inputs",
    "mmer_lobes.interfaces.results",
    "mmer_lobes.interfaces.loading",
    "mmer_lobes.interfaces.speech_recognizer",
    "mmer_lobes.interfaces.text_recognizer",
    "mmer_lobes.interfaces.multimodal_recognizer",
)
_ANY_PROJECT_TAG = re.compile(r"!\w+:(?:%s)\b[\w.]*" % "|".join(PROJECT_PACKAGES))
_TAG = re.compile(r"!(new|name|apply|applyref):((?:%s)(?:\.\w+)*)\.(\w+)" % "|".join(PROJECT_PACKAGES))


class BundleError(ProjectError, ValueError):
    """A bundled module breaks the bundling rules, or a YAML names what the bundle lacks."""


def _is_project_import(node):
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] in PROJECT_PACKAGES
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] in PROJECT_PACKAGES for alias in node.names)
    return False


def _top_level_names(tree):
    """``{name: source of its definition}`` of a module's top-level definitions."""
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = ast.dump(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    names[target.id] = ast.dump(node.value) if node.value is not None else ""
    return names


def bundle_source(modules=BUNDLED_MODULES):
    """The text of ``custom_interface.py``: ``modules`` (dotted names, in dependency order)
    without their project imports; raises :class:`BundleError` where a rule is broken.

    Example
    -------
    >>> source = bundle_source()
    >>> [line for line in source.splitlines() if line.startswith(("from mmer_lobes", "import mmer_lobes"))]
    []
    >>> "class MultimodalEmotionRecognizer(" in source
    True
    >>> bundle_source(["mmer_lobes.interfaces.inputs"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmer_lobes.exporting.bundle.BundleError: mmer_lobes.interfaces.inputs imports mmer_lobes.audio, which comes later or is not bundled
    """
    defined, seen, parts = {}, set(), []
    for name in modules:
        path = importlib.util.find_spec(name).origin
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        tree = ast.parse(source)
        lines = source.splitlines()
        drop = set()
        if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant):
            drop.update(range(tree.body[0].lineno - 1, tree.body[0].end_lineno))  # the docstring
        for node in ast.walk(tree):
            if not _is_project_import(node):
                continue
            if node not in tree.body:
                raise BundleError(f"{name}, line {node.lineno}: project code imported inside a block; "
                                  "bundled modules import it at module level")
            if isinstance(node, ast.Import) or node.level > 0 or any(alias.asname for alias in node.names):
                raise BundleError(f"{name}, line {node.lineno}: bundled modules import project code as "
                                  "`from mmer_lobes.x import a, b` (no `import mmer_lobes.x`, no `as`, "
                                  "no relative import), since the bundle drops the line")
            source_module = node.module
            if source_module not in seen:
                raise BundleError(f"{name} imports {source_module}, which comes later or is not bundled")
            drop.update(range(node.lineno - 1, node.end_lineno))
        for key, definition in _top_level_names(tree).items():
            if key in defined and defined[key][1] != definition:
                raise BundleError(f"{name} and {defined[key][0]} both define {key}")
            defined.setdefault(key, (name, definition))
        kept = "\n".join(line for i, line in enumerate(lines) if i not in drop).strip("\n")
        parts.append(f"# {'-' * 20} {name} {'-' * max(2, 64 - len(name))}\n{kept}\n")
        seen.add(name)
    header = (
        '"""mmer emotion recognition: the inference code of this folder, for SpeechBrain\'s\n'
        "foreign_class(source=<folder>, pymodule_file=\"custom_interface.py\", classname=...).\n\n"
        "Written by recipes/export.py from the modules named below, as they were at export time;\n"
        "it needs speechbrain, torch, torchaudio and transformers, not the mmer package.\n"
        '"""\n'
    )
    return header + "\n\n".join(parts)


def retarget_tags(yaml_text, bundled_names):
    """Points the HyperPyYAML tags naming project objects (``!new:mmer_lobes.resnet.X``) at
    the folder's module (``!new:custom_interface.X``); every such name must be bundled.

    Example
    -------
    >>> retarget_tags("encoder: !new:mmer_lobes.resnet.ResNetEncoder", {"ResNetEncoder"})
    'encoder: !new:custom_interface.ResNetEncoder'
    >>> retarget_tags("x: !name:data_prep.mini_corpora.main", set())
    Traceback (most recent call last):
    ...
    mmer_lobes.exporting.bundle.BundleError: the YAML names data_prep.mini_corpora.main, which custom_interface.py does not hold
    """
    def replace(match):
        kind, module, name = match.groups()
        if name not in bundled_names:
            raise BundleError(f"the YAML names {module}.{name}, which {FOLDER_MODULE}.py does not hold")
        return f"!{kind}:{FOLDER_MODULE}.{name}"

    retargeted = _TAG.sub(replace, yaml_text)
    left = _ANY_PROJECT_TAG.search(retargeted)
    if left:
        raise BundleError(f"the YAML still names project code after retargeting: {left.group(0)}")
    return retargeted


def bundled_names(source):
    """The top-level names a bundle's source defines.

    Example
    -------
    >>> sorted(bundled_names("import os\\nA = 1\\ndef f():\\n    pass\\n"))
    ['A', 'f']
    """
    return set(_top_level_names(ast.parse(source)))
