"""Checkpoints that a run killed while saving cannot corrupt.

SpeechBrain's :class:`~speechbrain.utils.checkpoints.Checkpointer` writes a checkpoint's
``CKPT.yaml`` first and its parameter files after. A run killed in between leaves a
checkpoint that looks whole, and the resumed run crashes on a truncated file. The
:class:`CompleteCheckpointer` puts a ``SAVING`` marker in the checkpoint folder before
SpeechBrain writes anything and removes it after the last file: a checkpoint that still
holds the marker is never recovered, and is removed at the next save. Checkpoints written
without it (by SpeechBrain's own ``Checkpointer``, or before this class existed) count as
whole, as they always did.
"""
import datetime
import logging
import os
import shutil

from speechbrain.utils.checkpoints import CKPT_PREFIX, Checkpointer
from speechbrain.utils.distributed import ddp_barrier, if_main_process

logger = logging.getLogger(__name__)

SAVING_MARKER = "SAVING"


class CompleteCheckpointer(Checkpointer):
    """A SpeechBrain ``Checkpointer`` that never recovers a checkpoint whose saving was cut
    short (see the module docstring). Same arguments as ``Checkpointer``.

    Example
    -------
    >>> import tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> layer = torch.nn.Linear(2, 2)
    >>> checkpointer = CompleteCheckpointer(folder, recoverables={"layer": layer})
    >>> cut_short = checkpointer.save_checkpoint(meta={"error_rate": 0.5})
    >>> open(cut_short.path / SAVING_MARKER, "w").close()  # as if killed while saving
    >>> checkpointer.list_checkpoints()
    []
    >>> later = checkpointer.save_checkpoint(meta={"error_rate": 0.4})
    >>> [c.meta["error_rate"] for c in checkpointer.list_checkpoints()], cut_short.path.exists()
    ([0.4], False)
    """

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """Saves as SpeechBrain does, between the creation and the removal of the marker;
        then removes the checkpoints whose saving an earlier run did not finish."""
        if name is None:  # SpeechBrain's default is a timestamp too; the marker needs it now
            name = datetime.datetime.now().strftime("%Y-%m-%d+%H-%M-%S.%f")
        marker = os.path.join(self.checkpoints_dir, f"{CKPT_PREFIX}+{name}", SAVING_MARKER)
        if if_main_process():
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            open(marker, "w").close()
        checkpoint = super().save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name,
                                             verbosity=verbosity)
        if if_main_process():
            os.remove(marker)
            for unfinished in self.checkpoints_dir.glob(f"{CKPT_PREFIX}+*/{SAVING_MARKER}"):
                logger.warning("Removing the checkpoint %s: a run stopped while saving it", unfinished.parent)
                shutil.rmtree(unfinished.parent, ignore_errors=True)
        # Under DDP the other processes list the checkpoints next (save_and_keep_only): they
        # must see the marker gone, or they would choose other checkpoints to delete.
        ddp_barrier()
        return checkpoint

    def list_checkpoints(self):
        """The checkpoints whose saving finished."""
        return [c for c in super().list_checkpoints() if not (c.path / SAVING_MARKER).exists()]
