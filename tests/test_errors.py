"""mmer_lobes.errors: one helper turns a project error into one line and exit code 2, in
every script. Unit tests of run_script and one_line, the error classes of the project, and
the scripts as a user types them (a missing data folder: one ``<prog>: error:`` line, 2)."""
import os
import subprocess
import sys

import pytest

from data_prep.iemocap_prepare import IemocapPrepError
from data_prep.minicorpus.driver import CorpusFolderTaken
from data_prep.minicorpus.espeak import SynthesiserUnavailable
from data_prep.voxceleb_prepare import VoxcelebPrepError
from mmer_lobes.audio import AudioError
from mmer_lobes.errors import EXIT_BAD_INPUT, ProjectError, one_line, run_script
from mmer_lobes.folds import FoldError
from mmer_lobes.jobs import JobError
from mmer_lobes.labels import LabelOrderError
from mmer_lobes.scores import ScoreFileError
from mmer_lobes.text import TextModelError
from mmer_lobes.transfer import EncoderMismatchError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------ run_script
class _BadCorpus(ProjectError, ValueError):
    pass


def _raise(error):
    def main(argv):
        raise error
    return main


def test_project_error_is_one_line_on_stderr_and_exit_2(capsys):
    code = run_script(_raise(_BadCorpus("no Session1 in\n   /data/IEMOCAP")), "prep.py", [])
    assert code == EXIT_BAD_INPUT == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "prep.py: error: no Session1 in /data/IEMOCAP\n"


def test_empty_message_and_key_error_are_readable(capsys):
    class _Missing(ProjectError, KeyError):
        pass

    assert run_script(_raise(_Missing("'text_model' is not set")), "x.py", []) == 2
    assert run_script(_raise(_BadCorpus()), "x.py", []) == 2
    assert capsys.readouterr().err.splitlines() == [
        "x.py: error: 'text_model' is not set",  # not KeyError's repr with extra quotes
        "x.py: error: _BadCorpus",
    ]
    assert one_line(KeyError("a\nb")) == "a b"


@pytest.mark.parametrize("error", [ValueError("a bug"), KeyError("k"), RuntimeError("r"), JobError("job")])
def test_other_exceptions_propagate_with_their_traceback(error, capsys):
    with pytest.raises(type(error)):
        run_script(_raise(error), "x.py", [])
    assert capsys.readouterr().err == ""


def test_exit_codes_and_argv(monkeypatch):
    seen = []

    def main(argv):
        seen.append(argv)
        return None if argv == ["ok"] else 1

    assert run_script(main, "x.py", ["ok"]) == 0
    assert run_script(main, "x.py", ["job failed"]) == 1  # a script's own code goes through
    monkeypatch.setattr(sys, "argv", ["x.py", "ok"])
    assert run_script(main, "x.py") == 0  # argv defaults to sys.argv[1:]
    assert seen == [["ok"], ["job failed"], ["ok"]]


# --------------------------------------------------------------------------- error classes
def _project_error_classes(import_recipe):
    fuse, loso = import_recipe("fuse"), import_recipe("loso")
    from mmer_lobes.fusion import FusionError

    return [
        (FoldError, ValueError), (AudioError, ValueError), (TextModelError, OSError),
        (ScoreFileError, ValueError), (FusionError, ScoreFileError),
        (EncoderMismatchError, ValueError), (LabelOrderError, ValueError),
        (IemocapPrepError, ValueError), (VoxcelebPrepError, ValueError),
        (SynthesiserUnavailable, RuntimeError), (CorpusFolderTaken, FileExistsError),
        (fuse.UsageError, ValueError), (loso.ExperimentError, ValueError),
    ]


def test_every_project_error_is_a_project_error_and_keeps_its_old_base(import_recipe):
    for error_class, old_base in _project_error_classes(import_recipe):
        assert issubclass(error_class, ProjectError), error_class
        assert issubclass(error_class, old_base), error_class  # `except ValueError` still works
        error = error_class("message")
        assert str(error) == "message" and isinstance(error, old_base)


def test_a_failed_job_is_not_bad_input(import_recipe):
    """loso.py reports a failed job with its own exit code (1), not as bad input (2)."""
    assert not issubclass(JobError, ProjectError) and issubclass(JobError, RuntimeError)
    assert import_recipe("loso").EXIT_JOB_FAILED == 1


# ------------------------------------------------------------ the scripts, as a user types them
def _run(args, cwd, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _check_one_error_line(result, prog, *parts):
    """Exit 2, exactly one ``<prog>: error:`` line, the last of stderr (a toolkit may warn
    before it), holding ``parts``, and no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith(f"{prog}: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr[-3000:]
    for part in parts:
        assert part in errors[0]
    return errors[0]


def test_train_py_missing_data_folder(tmp_path):
    missing = str(tmp_path / "no_IEMOCAP")
    result = _run(["recipes/train.py", "hparams/resnet_ser.yaml", f"--data_folder={missing}",
                   f"--output_folder={tmp_path / 'out'}"], REPO_ROOT)
    _check_one_error_line(result, "train.py", "IEMOCAP data folder does not exist", missing)


def test_train_py_missing_encoder_folder_fails_before_any_work(tmp_path):
    missing = str(tmp_path / "encoder")
    result = _run(["recipes/train.py", "hparams/resnet_ser.yaml", f"--data_folder={tmp_path / 'no_IEMOCAP'}",
                   f"--output_folder={tmp_path / 'out'}", f"--pretrained_encoder={missing}"], REPO_ROOT)
    _check_one_error_line(result, "train.py", "encoder folder not found", missing)
    assert not os.path.exists(tmp_path / "out")


def test_train_speaker_py_missing_data_folder(tmp_path):
    missing = str(tmp_path / "no_VoxCeleb")
    result = _run(["recipes/train_speaker.py", "hparams/resnet_speaker.yaml", f"--data_folder={missing}",
                   f"--output_folder={tmp_path / 'out'}"], REPO_ROOT)
    _check_one_error_line(result, "train_speaker.py", "VoxCeleb data folder does not exist", missing)


def test_fuse_py_missing_folder_and_missing_arguments(tmp_path):
    missing = str(tmp_path / "no_speech")
    result = _run(["recipes/fuse.py", "hparams/fusion.yaml", "--speech_folder", missing,
                   "--text_folder", str(tmp_path), "--output_folder", str(tmp_path / "out")], REPO_ROOT)
    _check_one_error_line(result, "fuse.py", f"speech_folder {missing} is not a folder")
    _check_one_error_line(_run(["recipes/fuse.py"], REPO_ROOT), "fuse.py", "usage: ")


def test_loso_py_missing_data_folder_is_bad_input_recorded_in_its_log(tmp_path):
    missing, out = str(tmp_path / "no_IEMOCAP"), tmp_path / "loso"
    result = _run(["recipes/loso.py", "hparams/loso.yaml", f"--data_folder={missing}",
                   f"--output_folder={out}", f"--pretrained_encoder={tmp_path / 'encoder'}"], REPO_ROOT)
    line = _check_one_error_line(result, "loso.py", "IEMOCAP data folder does not exist", missing)
    assert line in (out / "log.txt").read_text(encoding="utf-8")
    result = _run(["recipes/loso.py", str(tmp_path / "no.yaml")], REPO_ROOT)
    _check_one_error_line(result, "loso.py", "cannot read", "no.yaml")


@pytest.mark.parametrize("script, prog, message", [
    ("iemocap_prepare.py", "iemocap_prepare.py", "IEMOCAP data folder does not exist"),
    ("voxceleb_prepare.py", "voxceleb_prepare.py", "VoxCeleb data folder does not exist"),
])
def test_preparation_missing_data_folder(script, prog, message, tmp_path):
    """Typed from another folder, as the scripts' usage lines show them."""
    missing = str(tmp_path / "nowhere")
    result = _run([os.path.join(REPO_ROOT, "data_prep", script), "--data_folder", missing,
                   "--save_folder", str(tmp_path / "out")], tmp_path)
    line = _check_one_error_line(result, prog, message, missing)
    assert result.stderr.strip() == line  # nothing else at all
    assert not (tmp_path / "out").exists()
