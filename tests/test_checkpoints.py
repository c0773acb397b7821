"""mmer_lobes.checkpoints: a checkpoint whose saving was cut short is never recovered."""
import os

import torch
from speechbrain.utils.checkpoints import Checkpointer

from mmer_lobes.checkpoints import SAVING_MARKER, CompleteCheckpointer


def _cut_short(checkpointer, layer):
    """What a run killed mid-save leaves: the marker, CKPT.yaml and a truncated file."""
    with torch.no_grad():
        layer.weight.fill_(9.0)
    saved = checkpointer.save_checkpoint(meta={"error_rate": 0.1})
    open(saved.path / SAVING_MARKER, "w").close()
    with open(saved.path / "layer.ckpt", "r+b") as handle:
        handle.truncate(10)
    return saved


def test_recovery_skips_a_checkpoint_cut_short(tmp_path):
    layer = torch.nn.Linear(3, 2)
    checkpointer = CompleteCheckpointer(tmp_path, recoverables={"layer": layer})
    checkpointer.save_checkpoint(meta={"error_rate": 0.5})
    whole = layer.weight.detach().clone()
    _cut_short(checkpointer, layer)

    fresh = torch.nn.Linear(3, 2)
    recovered = CompleteCheckpointer(tmp_path, recoverables={"layer": fresh}).recover_if_possible(min_key="error_rate")
    assert recovered.meta["error_rate"] == 0.5
    assert torch.equal(fresh.weight, whole)


def test_speechbrain_alone_would_load_the_truncated_file(tmp_path):
    """Why the marker exists: SpeechBrain's own Checkpointer picks the cut-short checkpoint."""
    layer = torch.nn.Linear(3, 2)
    checkpointer = CompleteCheckpointer(tmp_path, recoverables={"layer": layer})
    checkpointer.save_checkpoint(meta={"error_rate": 0.5})
    cut = _cut_short(checkpointer, layer)
    plain = Checkpointer(tmp_path, recoverables={"layer": torch.nn.Linear(3, 2)})
    assert plain.find_checkpoint(min_key="error_rate").path == cut.path


def test_the_next_save_removes_it_and_old_unmarked_checkpoints_stay(tmp_path):
    layer = torch.nn.Linear(3, 2)
    # A checkpoint written by SpeechBrain's own Checkpointer (an older run): no marker, whole.
    old = Checkpointer(tmp_path, recoverables={"layer": layer}).save_checkpoint(meta={"error_rate": 0.3})
    checkpointer = CompleteCheckpointer(tmp_path, recoverables={"layer": layer})
    cut = _cut_short(checkpointer, layer)
    assert [c.path for c in checkpointer.list_checkpoints()] == [old.path]
    new = checkpointer.save_checkpoint(meta={"error_rate": 0.2})
    assert not cut.path.exists() and old.path.exists()
    assert sorted(c.path for c in checkpointer.list_checkpoints()) == sorted([old.path, new.path])
    assert not os.path.exists(new.path / SAVING_MARKER)
