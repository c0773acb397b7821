"""Shared fixtures: the built-in corpora are generated once per test session."""
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root():
    """The repository root, where users type the recipe commands."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def mini_corpora(tmp_path_factory):
    """Generates mini-IEMOCAP and mini-VoxCeleb once; returns their parent folder."""
    from data_prep.mini_corpora import make_mini_corpora

    out_dir = tmp_path_factory.mktemp("mini_corpora")
    make_mini_corpora(str(out_dir), seed=0)
    return str(out_dir)


@pytest.fixture(scope="session")
def iemocap_manifests(mini_corpora, tmp_path_factory):
    """Session manifests of mini-IEMOCAP; returns (data_folder, manifest_folder)."""
    from data_prep.iemocap_prepare import prepare_iemocap

    data_folder = os.path.join(mini_corpora, "IEMOCAP_full_release")
    save_folder = str(tmp_path_factory.mktemp("iemocap_manifests"))
    prepare_iemocap(data_folder, save_folder)
    return data_folder, save_folder


@pytest.fixture(scope="session")
def import_recipe():
    """Imports ``recipes/<name>.py`` as a module (its ``__main__`` block is not run)."""
    return _import_recipe


def _import_recipe(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"recipe_{name}", os.path.join(REPO_ROOT, "recipes", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def run_command():
    """Runs ``python <args>`` from the repository root as a user would type it; fails the
    test with the command's output on a non-zero exit."""
    return _run_command


def _run_command(args, cwd=REPO_ROOT, timeout=1800):
    import subprocess

    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(
            f"command failed ({result.returncode}): {' '.join(args)}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture(scope="session")
def script_error():
    """Runs ``python <script> <args>`` from the repository root as a user would, asserts that
    it exits with status 2 (bad input) and prints one line, ``<script name>: error: ...``, with
    no traceback; returns that line."""
    return _script_error


def _script_error(script, *args, timeout=120):
    import subprocess

    result = subprocess.run([sys.executable, script, *map(str, args)], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=timeout)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"{os.path.basename(script)}: error: "), result.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def wespeaker_resnet():
    """wespeaker's own ``models/resnet.py`` (tests/wespeaker_reference.py); skips when
    wespeaker-unofficial is not installed."""
    from wespeaker_reference import wespeaker_resnet_module

    with wespeaker_resnet_module() as module:
        if module is None:
            pytest.skip("wespeaker-unofficial is not installed (make test installs it with --no-deps)")
        yield module
