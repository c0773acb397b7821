"""No YAML key is read by nothing: a setting that no code reads (as `grad_clip` once was)
silently does nothing when a user changes it. Every top-level key of every hparams YAML
must be referenced by another key of its file (``!ref <key>``), read by a recipe or lobe
(``hparams["key"]``, ``self.hparams.key``, ``getattr(args, "key")``...), or be one of
SpeechBrain's Brain run options, which the Brain reads from the hparams by name."""
import glob
import os
import re

import pytest
from speechbrain.utils.run_opts import RunOptions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
YAMLS = sorted(glob.glob(os.path.join(REPO, "hparams", "**", "*.yaml"), recursive=True))
CODE = "\n".join(
    open(path, encoding="utf-8").read()
    for folder in ("recipes", "mmer_lobes")
    for path in glob.glob(os.path.join(REPO, folder, "**", "*.py"), recursive=True)
)
BRAIN_RUN_OPTIONS = set(RunOptions().as_dict())
TOP_LEVEL_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):", re.MULTILINE)
# A shared block (hparams/features/fbank.yaml...) is read by the files that include it:
# `n_mels: !ref <features[n_mels]>`.
INCLUDED_KEY_READS = "\n".join(open(path, encoding="utf-8").read() for path in YAMLS)


def _read_by_code(key):
    """A read of ``key`` from hparams: ``hparams["key"]``, ``hparams.get("key"``,
    ``hparams.key`` (``self.hparams.key``), an argparse-style ``args.key``, or the key in a
    tuple of key names that the code reads in a loop (``INPUT_HANDLING``, ``PATH_KEYS``)."""
    patterns = (
        rf"""hparams\[["']{key}["']\]""", rf"""hparams\.get\(["']{key}["']""",
        rf"hparams\.{key}\b", rf"args\.{key}\b", rf"""settings\[["']{key}["']\]""", rf"""\.pop\(["']{key}["']\)""",
        rf"""^[A-Z_]+ = \((?:[^)]*\s)?["']{key}["'][,)]""",
    )
    return any(re.search(p, CODE, re.MULTILINE) for p in patterns)


def _dead_keys(text):
    keys = TOP_LEVEL_KEY.findall(text)
    dead = []
    for key in keys:
        if key.startswith("__") or key in BRAIN_RUN_OPTIONS:
            continue  # hyperpyyaml runs __keys at load; the Brain reads its run options
        if re.search(rf"<{key}[>\[]", text) or re.search(rf"\*{key}\b", text) or _read_by_code(key):
            continue  # a !ref, a YAML alias of its anchor (<<: *key), or code
        if re.search(rf"<\w+\[{key}\]>", INCLUDED_KEY_READS):
            continue  # a key of a shared block, read where it is included
        dead.append(key)
    return dead


# Blocks included whole and read as one mapping (the report iterates over the paper's systems).
WHOLE_MAPPING_BLOCKS = {os.path.join(REPO, "hparams", "paper_results.yaml")}


@pytest.mark.parametrize("path", sorted(set(YAMLS) - WHOLE_MAPPING_BLOCKS),
                         ids=[os.path.relpath(p, REPO) for p in sorted(set(YAMLS) - WHOLE_MAPPING_BLOCKS)])
def test_every_top_level_key_is_read(path):
    text = open(path, encoding="utf-8").read()
    assert _dead_keys(text) == []


def test_the_check_finds_a_dead_key():
    text = ("lr: 0.1\nopt_class: !name:torch.optim.SGD\n    lr: !ref <lr>\n"
            "grad_clip: 5.0\nmax_grad_norm: 5.0\nbase: &base\n    a: 1\nother:\n    <<: *base\n")
    assert _dead_keys(text) == ["grad_clip", "other"]


def test_grad_clip_is_gone():
    for path in YAMLS:
        assert "grad_clip" not in open(path, encoding="utf-8").read(), path
    assert "grad_clip" not in CODE


def test_whole_mapping_blocks_are_included_by_a_read_key():
    for path in WHOLE_MAPPING_BLOCKS:
        name = os.path.basename(path)
        includers = re.findall(rf"^(\w+): !include:{re.escape(name)}", INCLUDED_KEY_READS, re.MULTILINE)
        assert includers and all(_read_by_code(key) for key in includers), name
