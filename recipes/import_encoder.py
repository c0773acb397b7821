#!/usr/bin/env python3
"""A published speaker model as an encoder folder for ``--pretrained_encoder``.

    python recipes/import_encoder.py --wespeaker voxceleb_resnet34_LM --output encoders/resnet34_LM
    python recipes/import_encoder.py --speechbrain spkrec-ecapa-voxceleb --output encoders/ecapa

The same command as the console script ``mmer-import-encoder`` (mmer_lobes/cli/import_encoder.py).
Bad input ends the run with one line, ``import_encoder.py: error: <message>``, and exit status 2.
"""
import sys

from mmer_lobes.cli.import_encoder import import_encoder
from mmer_lobes.errors import run_script

if __name__ == "__main__":
    sys.exit(run_script(import_encoder, "import_encoder.py"))
