"""``mmer-import-encoder``: a published speaker model as an encoder folder.

    mmer-import-encoder --wespeaker voxceleb_resnet34_LM --output encoders/wespeaker_resnet34_LM
    mmer-import-encoder --speechbrain spkrec-ecapa-voxceleb --output encoders/ecapa

(``python recipes/import_encoder.py`` takes the same arguments.) The folder holds
``encoder.yaml`` and ``encoder.ckpt`` (:mod:`mmer_lobes.encoder_folders`); give it to the
emotion recipe as ``--pretrained_encoder``. The import is all or nothing: a key of the model
that has no place in the encoder, a missing one or one of another shape is an error naming it.
The folder is loaded back and run on one second of noise before it is put in place.
"""
import argparse
import os
import sys

import torch

from mmer_lobes.encoder_folders import load_encoder_definition, write_encoder_folder
from mmer_lobes.errors import ProjectError, one_line, run_script
from mmer_lobes.kaldi_features import features_and_lengths
from mmer_lobes.resnet import count_parameters
from mmer_lobes.speechbrain_speakers import import_speechbrain_folder
from mmer_lobes.transfer import ENCODER_FILE
from mmer_lobes.wespeaker import import_wespeaker_folder

IMPORTERS = {"wespeaker": import_wespeaker_folder, "speechbrain": import_speechbrain_folder}


class ImportEncoderError(ProjectError, ValueError):
    """The imported encoder does not run."""


def parse_args(argv):
    """The command line of ``mmer-import-encoder``.

    Example
    -------
    >>> args = parse_args(["--wespeaker", "voxceleb_resnet34_LM", "--output", "enc"])
    >>> args.wespeaker, args.speechbrain, args.output, args.overwrite
    ('voxceleb_resnet34_LM', None, 'enc', False)
    """
    parser = argparse.ArgumentParser(prog="mmer-import-encoder", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wespeaker", metavar="DIR", help="a wespeaker model folder (config.yaml + avg_model.pt)")
    source.add_argument("--speechbrain", metavar="DIR", help="a SpeechBrain speaker model in the hub layout "
                        "(hyperparams.yaml, embedding_model.ckpt, mean_var_norm_emb.ckpt)")
    parser.add_argument("--output", required=True, metavar="DIR", help="the encoder folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    return parser.parse_args(argv)


def check_folder(folder):
    """Loads an encoder folder as the recipes do and runs it on a second of noise in eval
    mode; returns the definition and the pooled statistics' shape. A failure is an
    :class:`ImportEncoderError` in one line.

    Example
    -------
    >>> import tempfile
    >>> from mmer_lobes.encoder_folders import render_template
    >>> values = {"n_mels": 32, "channels": [4, 8, 16, 32]}
    >>> folder = os.path.join(tempfile.mkdtemp(), "enc")
    >>> encoder = load_encoder_definition(values=values)["encoder"]
    >>> write_encoder_folder(folder, render_template("paper_resnet34", values), encoder.state_dict(), "a doctest")
    >>> check_folder(folder)[1]
    (1, 256)
    """
    definition = load_encoder_definition(folder)
    try:
        encoder = definition["encoder"]
        encoder.load_state_dict(torch.load(os.path.join(folder, ENCODER_FILE), map_location="cpu", weights_only=True))
        for name in ("compute_features", "mean_var_norm", "encoder"):
            definition[name].eval()
        wav = torch.randn(1, int(definition["sample_rate"]), generator=torch.Generator().manual_seed(0)) * 0.05
        with torch.no_grad():
            feats, lens = features_and_lengths(definition["compute_features"], wav, torch.ones(1))
            pooled = encoder(definition["mean_var_norm"](feats, lens), lens)
    except ProjectError:
        raise
    except Exception as error:  # whatever the imported network raises on a clip
        raise ImportEncoderError(f"the imported encoder does not run on a second of noise: {one_line(error)[:300]}") from None
    if not torch.isfinite(pooled).all():
        raise ImportEncoderError("the imported encoder gives non-finite statistics on a second of noise")
    return definition, tuple(pooled.shape)


def import_encoder(argv):
    """Imports the model the command line ``argv`` names (see the module docstring); bad
    input raises a :class:`~mmer_lobes.errors.ProjectError`."""
    args = parse_args(argv)
    kind = "wespeaker" if args.wespeaker else "speechbrain"
    source = args.wespeaker or args.speechbrain
    text, state = IMPORTERS[kind](source)
    # checked in its staging folder: a folder that does not run never replaces anything
    definition, shape = write_encoder_folder(args.output, text, state, origin=f"the {kind} model {os.path.abspath(source)}",
                                             overwrite=args.overwrite, verify=check_folder)
    print(f"{kind} model {source} -> {args.output}: {type(definition['encoder']).__name__} "
          f"({count_parameters(definition['encoder']):,} parameters), {definition['sample_rate']} Hz, "
          f"features {type(definition['compute_features']).__name__}, pooled statistics of size {shape[1]}")
    print(f"use it with: python recipes/train.py hparams/resnet_ser.yaml --pretrained_encoder {args.output} ...")


def main(argv=None):
    """The console script: :func:`import_encoder` of ``argv`` (default ``sys.argv[1:]``); bad
    input ends it with one line, ``mmer-import-encoder: error: <message>``, and exit status 2.

    Example
    -------
    >>> import tempfile
    >>> main(["--wespeaker", tempfile.mkdtemp(), "--output", tempfile.mkdtemp()])
    2
    """
    return run_script(import_encoder, "mmer-import-encoder", argv)


if __name__ == "__main__":
    sys.exit(main())
