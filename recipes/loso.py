#!/usr/bin/env python3
"""The old name of ``recipes/experiment.py``, from when the experiment ran IEMOCAP's
leave-one-session-out folds only; the commands written for it keep working:

    python recipes/loso.py hparams/loso.yaml --data_folder <IEMOCAP_full_release> \\
        --pretrained_encoder results/speaker/encoder --test_sessions "[5]"

(``--test_sessions`` is the old name of ``--test_folds``.) Errors name this script.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from experiment import *  # noqa: E402,F401,F403 (the same module, under its old name)
from experiment import main  # noqa: E402
from mmer_lobes.errors import run_script  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_script(lambda argv=None: main(argv, script="loso.py"), "loso.py"))
