"""The ``custom_interface.py`` bundle of an exported folder (mmer_lobes/exporting/bundle.py):
no project import is left in it, the bundling rules refuse the modules that would break it,
the YAML tags are retargeted only to names it holds, and every tag of an exported folder's
``hyperparams.yaml`` names an object that exists.

All tests but the last (which needs the exported tiny folds of tests/test_interfaces.py)
are fast.
"""
import ast
import builtins
import importlib
import os
import re
import subprocess
import sys
import textwrap

import pytest

from mmer_lobes.exporting.bundle import (
    BUNDLED_MODULES,
    PROJECT_PACKAGES,
    BundleError,
    _is_project_import,
    bundle_source,
    bundled_names,
    retarget_tags,
)
from mmer_lobes.interfaces import RECOGNIZERS
from test_interfaces import build_exported_fold

# A meta-path finder that refuses the project's packages: what a user without mmer has.
BLOCKER = r'''
import sys
ATTEMPTS = []
class _BlockProject:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mmer_lobes", "data_prep"):
            ATTEMPTS.append(name)
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, _BlockProject())
for _name in ("mmer_lobes", "data_prep"):
    try:
        __import__(_name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the blocker let {_name} through")
ATTEMPTS.clear()

def assert_no_project_module():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mmer_lobes", "data_prep"))
    assert not loaded and not ATTEMPTS, (loaded, ATTEMPTS)
'''


@pytest.fixture(scope="module")
def source():
    return bundle_source()


def _project_imports(tree):
    return [node for node in ast.walk(tree) if _is_project_import(node)]


def test_bundle_has_no_project_import(source):
    tree = ast.parse(source)
    assert _project_imports(tree) == []
    for line in source.splitlines():
        words = line.strip().split()
        if words[:1] in (["import"], ["from"]) and len(words) > 1:
            assert words[1].split(".")[0] not in PROJECT_PACKAGES and not words[1].startswith("."), line
    # every bundled module is there, in order, and the recognisers of every modality
    positions = [source.index(f" {name} ") for name in BUNDLED_MODULES]
    assert positions == sorted(positions)
    names = bundled_names(source)
    assert {cls.__name__ for cls in RECOGNIZERS.values()} <= names


def test_bundle_uses_no_undefined_name(source):
    """A project import dropped without its name being bundled leaves a name undefined:
    pyflakes finds it anywhere in the file (not only where it runs at import)."""
    from pyflakes import checker  # a test requirement (setup.py extra "test")
    warnings = checker.Checker(ast.parse(source), filename="custom_interface.py").messages
    undefined = [str(w) for w in warnings if type(w).__name__.startswith("Undefined")]
    assert undefined == []


def test_bundle_imports_without_the_project(source, tmp_path):
    """The bundle alone, the project blocked: it imports, its objects are its own, and no
    project module is imported."""
    (tmp_path / "custom_interface.py").write_text(source, encoding="utf-8")
    script = BLOCKER + textwrap.dedent(f'''
        sys.path.insert(0, {str(tmp_path)!r})
        import custom_interface as ci
        settings = ci.InputHandling(0.5, 30.0, 10.0, 5.0, 1, 1e-4)
        assert settings.window_starts(16000 * 25, 16000)[:3] == [0, 80000, 160000]
        try:
            ci.InputHandling(0.5, 30.0, 40.0, 5.0, 1, 1e-4)
        except ci.InterfaceError as error:
            assert isinstance(error, ci.ProjectError) and isinstance(error, ValueError)
        else:
            raise AssertionError("InputHandling accepted window_duration > max_duration")
        for name in ("SpeechEmotionRecognizer", "TextEmotionRecognizer", "MultimodalEmotionRecognizer"):
            assert getattr(ci, name).__module__ == "custom_interface"
        assert issubclass(ci.MultimodalEmotionRecognizer, ci.FolderInterface)
        assert_no_project_module()
        print("ok")
    ''')
    result = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# -------------------------------------------------------------- the bundling rules ----


@pytest.mark.parametrize("code, project", [
    ("import mmer_lobes", True),
    ("import os, mmer_lobes.audio", True),
    ("from mmer_lobes.interfaces.inputs import InterfaceError", True),
    ("from data_prep.mini_corpora import CORPUS_MARKER", True),
    ("from . import audio", True),
    ("from .inputs import check_batch", True),
    ("import os", False),
    ("from speechbrain.inference.interfaces import Pretrained", False),
    ("import mmer_lobes_extra", False),
    ("from data_prepared import x", False),
])
def test_project_import_rule(code, project):
    node = ast.parse(code).body[0]
    assert _is_project_import(node) is project


@pytest.fixture
def modules_dir(tmp_path, monkeypatch):
    """A folder on sys.path to write throwaway modules in; returns a writer."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(name, code):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(code), encoding="utf-8")
        written.append(name)
        importlib.invalidate_caches()
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_project_import_inside_a_function_is_refused(modules_dir):
    name = modules_dir("bundle_case_in_function", """
        import os


        def where():
            from mmer_lobes.errors import ProjectError
            return ProjectError, os.sep
        """)
    with pytest.raises(BundleError, match=r"bundle_case_in_function, line 6: project code imported inside a block"):
        bundle_source(["mmer_lobes.errors", name])


def test_project_import_inside_a_module_level_block_is_refused(modules_dir):
    name = modules_dir("bundle_case_in_block", """
        try:
            from mmer_lobes.errors import ProjectError
        except ImportError:
            ProjectError = Exception
        """)
    with pytest.raises(BundleError, match="inside a block"):
        bundle_source(["mmer_lobes.errors", name])


def test_imports_must_come_from_earlier_bundled_modules(modules_dir):
    with pytest.raises(BundleError, match="mmer_lobes.audio imports mmer_lobes.errors, which comes later"):
        bundle_source(["mmer_lobes.audio", "mmer_lobes.errors"])
    name = modules_dir("bundle_case_unbundled", """
        from mmer_lobes.labels import *
        """)
    with pytest.raises(BundleError, match="imports mmer_lobes.labels, which comes later or is not bundled"):
        bundle_source(["mmer_lobes.errors", name])
    relative = modules_dir("bundle_case_relative", """
        from . import audio
        """)
    with pytest.raises(BundleError, match="bundle_case_relative, line 2: .*no relative import"):
        bundle_source([relative])


def test_a_name_defined_twice_differently_is_refused(modules_dir):
    first = modules_dir("bundle_case_first", """
        LIMIT = 1


        def helper():
            return LIMIT
        """)
    same = modules_dir("bundle_case_same", """
        LIMIT = 1
        """)
    other = modules_dir("bundle_case_other", """
        def helper():
            return 2
        """)
    assert "LIMIT = 1" in bundle_source([first, same])  # the same definition twice is harmless
    with pytest.raises(BundleError, match="bundle_case_other and bundle_case_first both define helper"):
        bundle_source([first, other])


def test_a_well_formed_module_is_bundled_without_its_project_imports(modules_dir):
    name = modules_dir("bundle_case_good", '''
        """Docstring, dropped."""
        import os

        from mmer_lobes.errors import (
            ProjectError,
            one_line,
        )


        class CaseError(ProjectError, ValueError):
            pass


        def message(error):
            return one_line(error) + os.sep
        ''')
    source = bundle_source(["mmer_lobes.errors", name])
    assert _project_imports(ast.parse(source)) == [] and "Docstring, dropped" not in source
    namespace = {"__name__": "bundle_case_check"}
    exec(compile(source, "custom_interface.py", "exec"), namespace)
    assert issubclass(namespace["CaseError"], namespace["ProjectError"])
    assert namespace["message"](namespace["CaseError"]("a\n b")) == "a b" + os.sep


@pytest.mark.parametrize("code", [
    "from mmer_lobes.errors import ProjectError as BaseError\n\nclass CaseError(BaseError):\n    pass\n",
    "import mmer_lobes.errors\n\nclass CaseError(mmer_lobes.errors.ProjectError):\n    pass\n",
], ids=["alias", "import_module"])
def test_imports_whose_names_the_bundle_lacks_are_refused(modules_dir, code):
    name = modules_dir("bundle_case_names", code)
    with pytest.raises(BundleError):
        bundle_source(["mmer_lobes.errors", name])


# -------------------------------------------------------------------- retargeting ----


def test_retarget_tags():
    text = ("a: !new:mmer_lobes.resnet.ResNetEncoder\n"
            "b: !name:mmer_lobes.interfaces.loading.load_state_dict_strict\n"
            "c: !apply:mmer_lobes.text.load_tokenizer [x]\n"
            "d: !applyref:mmer_lobes.text.resolve_text_model [x]\n"
            "e: !new:speechbrain.lobes.features.Fbank\n"
            "f: !apply:getattr [!ref <a>, output_size]\n")
    names = {"ResNetEncoder", "load_state_dict_strict", "load_tokenizer", "resolve_text_model"}
    assert retarget_tags(text, names).splitlines() == [
        "a: !new:custom_interface.ResNetEncoder",
        "b: !name:custom_interface.load_state_dict_strict",
        "c: !apply:custom_interface.load_tokenizer [x]",
        "d: !applyref:custom_interface.resolve_text_model [x]",
        "e: !new:speechbrain.lobes.features.Fbank",
        "f: !apply:getattr [!ref <a>, output_size]",
    ]


def test_retarget_tags_refuses_a_name_the_bundle_lacks(source):
    names = bundled_names(source)
    assert "ResNetEncoder" in names and "prepare_iemocap" not in names
    with pytest.raises(BundleError, match="mmer_lobes.resnet.Missing, which custom_interface.py does not hold"):
        retarget_tags("a: !new:mmer_lobes.resnet.ResNetEncoder\nb: !new:mmer_lobes.resnet.Missing\n", names)
    with pytest.raises(BundleError, match="data_prep.iemocap_prepare.prepare_iemocap"):
        retarget_tags("p: !name:data_prep.iemocap_prepare.prepare_iemocap", names)


def test_retarget_tags_refuses_a_project_module_tag(source):
    with pytest.raises(BundleError):
        retarget_tags("text: !module:mmer_lobes.text", bundled_names(source))


# ------------------------------------------------- the exported folders (slow) ----

TAG = re.compile(r"!(new|name|apply|applyref|module):([A-Za-z_][\w.]*)")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, iemocap_manifests, run_command):
    return build_exported_fold(tmp_path_factory, iemocap_manifests, run_command)


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["iface", "iface_speech", "iface_text"])
def test_every_tag_of_an_exported_yaml_names_an_object_that_exists(exported, folder):
    path = exported[folder]
    with open(os.path.join(path, "custom_interface.py"), encoding="utf-8") as handle:
        bundle = handle.read()
    assert bundle == bundle_source()  # the folder's bundle is the project's code at export
    defined = set()  # the bundle's top-level names, found here without bundle.py
    for node in ast.parse(bundle).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    with open(os.path.join(path, "hyperparams.yaml"), encoding="utf-8") as handle:
        tags = TAG.findall(handle.read())
    local = [target for _, target in tags if target.startswith("custom_interface.")]
    assert local, "the exported YAML names nothing of custom_interface.py"
    for kind, target in tags:
        assert target.split(".")[0] not in PROJECT_PACKAGES, f"!{kind}:{target}"
        if target.startswith("custom_interface."):
            assert target.split(".", 1)[1] in defined, f"!{kind}:{target}"
        elif kind == "module":
            importlib.import_module(target)
        elif "." in target:
            module, name = target.rsplit(".", 1)
            assert hasattr(importlib.import_module(module), name), f"!{kind}:{target}"
        else:
            assert hasattr(builtins, target), f"!{kind}:{target}"
    kinds = {kind for kind, _ in tags}
    assert {"new", "name", "apply"} <= kinds
