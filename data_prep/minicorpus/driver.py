"""The driver: plan both corpora, synthesise them in fixed batches, write the text files and
swap the finished corpora into place under a completion stamp.
"""

import json
import os
import shutil
import tempfile
import time

import numpy as np

from mmer_lobes.errors import ProjectError
from mmer_lobes.files import atomic_write_json

from .espeak import find_espeak
from .planning import plan_mini_iemocap, plan_mini_voxceleb
from .render import synthesise_in_fresh_processes
from .settings import (
    COMPLETE_STAMP,
    CORPUS_MARKER,
    DEFAULT_NUM_WORKERS,
    EMOTIONS,
    FILTERED_LABEL_SOURCE_CLASSES,
    GENERATOR_VERSION,
    IEMOCAP_DIRNAME,
    VOXCELEB_DIRNAME,
    VOXCELEB_SPEAKERS_PER_BATCH,
    VOXCELEB_TRIAL_LIST,
)
from .writers import _write_text, write_iemocap_text_files, write_voxceleb_trials


class CorpusFolderTaken(ProjectError, FileExistsError):
    """The output folder holds a corpus that this generator did not write (a real one)."""


def summarise(iemocap_plan, voxceleb_plan):
    """Counts of what the plans hold, for the stamp file and the printed summary.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> summary = summarise(plan_mini_iemocap(rng), plan_mini_voxceleb(rng))
    >>> summary["iemocap"]["usable_per_speaker"]["Ses01F"], summary["voxceleb"]["speakers"]
    (48, 48)
    """
    per_session = {}
    usable_per_speaker = {}
    labels = {}
    for turn in iemocap_plan["turns"]:
        labels[turn.label] = labels.get(turn.label, 0) + 1
        if turn.label in FILTERED_LABEL_SOURCE_CLASSES:
            continue
        merged = "hap" if turn.label == "exc" else turn.label
        session = per_session.setdefault(f"Session{turn.session}", dict.fromkeys(EMOTIONS, 0))
        session[merged] += 1
        usable_per_speaker[turn.speaker] = usable_per_speaker.get(turn.speaker, 0) + 1
    trials = voxceleb_plan["trials"]
    return {
        "iemocap": {
            "wavs": len(iemocap_plan["turns"]),
            "dialogs": len(iemocap_plan["dialogs"]),
            "labels": dict(sorted(labels.items())),
            "usable_per_session_class": per_session,
            "usable_per_speaker": usable_per_speaker,
        },
        "voxceleb": {
            "speakers": len(voxceleb_plan["speakers"]),
            "train_speakers": len(voxceleb_plan["train_speakers"]),
            "trial_speakers": len(voxceleb_plan["trial_speakers"]),
            "utterances": len(voxceleb_plan["utterances"]),
            "trials": len(trials),
            "target_trials": sum(label for label, _, _ in trials),
        },
    }


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _stamp_identity(seed):
    return {
        "generator": "mmer data_prep/mini_corpora.py",
        "version": GENERATOR_VERSION,
        "seed": seed,
    }


def _check_replaceable(out_dir):
    """Refuses to overwrite a corpus folder that this script did not write (a real corpus)."""
    for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME):
        target = os.path.join(out_dir, name)
        if os.path.exists(target) and _read_json(os.path.join(target, CORPUS_MARKER)) is None:
            raise CorpusFolderTaken(
                f"{target} exists and was not written by mini_corpora.py (no {CORPUS_MARKER}); "
                "refusing to overwrite it. Choose another --out or move it away."
            )


def make_mini_corpora(out_dir, seed=0, num_workers=DEFAULT_NUM_WORKERS, verbose=True):
    """Synthesises mini-IEMOCAP and mini-VoxCeleb under ``out_dir`` (see the module docstring).

    Skips the work when ``out_dir`` already holds a complete pair made with the same seed by
    this version of the generator. Replaces an earlier synthetic corpus, never a real one.

    Arguments
    ---------
    out_dir : str
        Parent folder of ``IEMOCAP_full_release`` and ``VoxCeleb1``.
    seed : int
        Seed of every random choice; the same seed gives byte-identical files.
    num_workers : int
        Processes that synthesise in parallel (does not change the bytes).
    verbose : bool
        Print a summary.

    Returns
    -------
    dict
        The summary (counts, ``elapsed_s`` and ``skipped``).

    Example
    -------
    >>> out_dir = tempfile.mkdtemp()
    >>> # Pretend that a complete corpus pair made with seed 5 is there: nothing is redone.
    >>> stamp = {**_stamp_identity(5), "summary": {}}
    >>> atomic_write_json(os.path.join(out_dir, COMPLETE_STAMP), stamp)
    >>> for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME):
    ...     atomic_write_json(os.path.join(out_dir, name, CORPUS_MARKER), _stamp_identity(5))
    >>> make_mini_corpora(out_dir, seed=5, verbose=False)["skipped"]
    True
    """
    started = time.time()
    out_dir = os.path.abspath(out_dir)
    identity = _stamp_identity(int(seed))
    stamp_path = os.path.join(out_dir, COMPLETE_STAMP)
    stamp = _read_json(stamp_path)
    corpora_present = all(
        _read_json(os.path.join(out_dir, name, CORPUS_MARKER)) == identity
        for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME)
    )
    if stamp is not None and {k: stamp.get(k) for k in identity} == identity and corpora_present:
        summary = dict(
            stamp.get("summary", {}), elapsed_s=round(time.time() - started, 2), skipped=True
        )
        if verbose:
            print(f"mini corpora with seed {seed} already complete in {out_dir}; skipping")
        return summary
    _check_replaceable(out_dir)
    find_espeak()  # fail early, before planning, with an install hint

    iemocap_rng, voxceleb_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2)
    )
    iemocap_plan = plan_mini_iemocap(iemocap_rng)
    voxceleb_plan = plan_mini_voxceleb(voxceleb_rng)
    summary = summarise(iemocap_plan, voxceleb_plan)

    # Fixed batches: one per IEMOCAP session, groups of VoxCeleb speakers.
    batches = {}
    for turn in iemocap_plan["turns"]:
        batches.setdefault(("iemocap", turn.session), []).append(turn.audio)
    vox_order = {spk: i for i, spk in enumerate(voxceleb_plan["speakers"])}
    for speaker_id, audio in voxceleb_plan["utterances"]:
        batches.setdefault(
            ("voxceleb", vox_order[speaker_id] // VOXCELEB_SPEAKERS_PER_BATCH), []
        ).append(audio)

    os.makedirs(out_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(dir=out_dir, prefix=".mini_corpora_tmp.")
    try:
        durations = synthesise_in_fresh_processes(work_dir, list(batches.values()), num_workers)
        write_iemocap_text_files(work_dir, iemocap_plan, durations)
        write_voxceleb_trials(work_dir, voxceleb_plan)
        for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME):
            _write_text(
                os.path.join(work_dir, name, CORPUS_MARKER), json.dumps(identity, indent=2) + "\n"
            )
        # Swap into place: the stamp goes first and comes back last, so an interrupted swap
        # is never mistaken for a complete corpus.
        if os.path.exists(stamp_path):
            os.remove(stamp_path)
        old_dir = os.path.join(work_dir, "replaced")
        os.makedirs(old_dir)
        for name in (IEMOCAP_DIRNAME, VOXCELEB_DIRNAME):
            target = os.path.join(out_dir, name)
            if os.path.exists(target):
                os.replace(target, os.path.join(old_dir, name))
            os.replace(os.path.join(work_dir, name), target)
        atomic_write_json(stamp_path, {**identity, "summary": summary})
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    summary = dict(summary, elapsed_s=round(time.time() - started, 2), skipped=False)
    if verbose:
        print_summary(summary, out_dir)
    return summary


def print_summary(summary, out_dir):
    """Prints the counts of a generated corpus pair."""
    iemocap, voxceleb = summary["iemocap"], summary["voxceleb"]
    print(f"mini-IEMOCAP in {os.path.join(out_dir, IEMOCAP_DIRNAME)}")
    print(
        f"  {iemocap['wavs']} wavs in {iemocap['dialogs']} dialogs; "
        f"header labels {iemocap['labels']}"
    )
    print("  usable (4-class) per session: " + "  ".join(EMOTIONS))
    for session, counts in iemocap["usable_per_session_class"].items():
        print(f"    {session}: " + "  ".join(f"{counts[e]:3d}" for e in EMOTIONS))
    print(
        "  usable per speaker: "
        + ", ".join(f"{k} {v}" for k, v in iemocap["usable_per_speaker"].items())
    )
    print(f"mini-VoxCeleb in {os.path.join(out_dir, VOXCELEB_DIRNAME)}")
    print(
        f"  {voxceleb['speakers']} speakers ({voxceleb['train_speakers']} train, "
        f"{voxceleb['trial_speakers']} trial), {voxceleb['utterances']} utterances, "
        f"{voxceleb['trials']} trials ({voxceleb['target_trials']} target) in {VOXCELEB_TRIAL_LIST}"
    )
    print(f"done in {summary['elapsed_s']:.1f} s")
