"""`make real-check` runs the real-data experiments on the real development corpora when they are
there; where they are not (a user's machine), it says so and runs nothing. Only that second
case is tested, on a temporary folder: no test may depend on the real corpora."""
import shutil
import subprocess

import pytest


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_real_check_says_clearly_that_the_corpora_are_missing(repo_root, tmp_path):
    (tmp_path / "ravdess-4class-16k").mkdir()  # one of the two corpora only
    # -o: never rebuild the virtual environment from here
    result = subprocess.run(["make", "-s", "-o", ".venv/.installed", "real-check", f"REAL_DATA={tmp_path}"],
                            cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert (f"real-check: no {tmp_path}/meld-text: the real corpora are not here; nothing was run. "
            "Run make real-check REAL_DATA=<folder holding ravdess-4class-16k and meld-text>.") in result.stderr
    assert "experiment.py" not in result.stdout + result.stderr  # nothing was started
