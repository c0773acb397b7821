"""Checkpoints that a run killed while saving cannot corrupt.

SpeechBrain's :class:`~speechbrain.utils.checkpoints.Checkpointer` writes a checkpoint's
``CKPT.yaml`` first and its parameter files after. A run killed in between leaves a
checkpoint that looks whole, and the resumed run crashes on a truncated file. The
:class:`CompleteCheckpointer` marks a checkpoint complete after its last file is written,
recovers only complete checkpoints, and removes incomplete ones at the next save.
"""
import logging
import os
import shutil

from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import if_main_process

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"


class CompleteCheckpointer(Checkpointer):
    """A SpeechBrain ``Checkpointer`` that lists only checkpoints whose every file was
    written (see the module docstring). Same arguments as ``Checkpointer``.

    Example
    -------
    >>> import tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> layer = torch.nn.Linear(2, 2)
    >>> checkpointer = CompleteCheckpointer(folder, recoverables={"layer": layer})
    >>> saved = checkpointer.save_checkpoint(meta={"error_rate": 0.5})
    >>> os.remove(saved.path / COMPLETE_MARKER)  # as if killed while saving
    >>> checkpointer.list_checkpoints()
    []
    >>> later = checkpointer.save_checkpoint(meta={"error_rate": 0.4})
    >>> [c.meta["error_rate"] for c in checkpointer.list_checkpoints()], saved.path.exists()
    ([0.4], False)
    """

    def save_checkpoint(self, *args, **kwargs):
        """Saves as SpeechBrain does, then marks the checkpoint complete and removes the
        incomplete ones a crash left behind."""
        checkpoint = super().save_checkpoint(*args, **kwargs)
        if checkpoint is not None and if_main_process():
            with open(checkpoint.path / COMPLETE_MARKER, "w", encoding="utf-8") as marker:
                marker.flush()
                os.fsync(marker.fileno())
            for incomplete in self._incomplete_checkpoints():
                logger.warning("Removing the incomplete checkpoint %s (a run stopped while saving it)",
                               incomplete.path)
                shutil.rmtree(incomplete.path, ignore_errors=True)
        return checkpoint

    def list_checkpoints(self):
        """The complete checkpoints in the checkpoints folder."""
        return [c for c in super().list_checkpoints() if (c.path / COMPLETE_MARKER).is_file()]

    def _incomplete_checkpoints(self):
        return [c for c in super().list_checkpoints() if not (c.path / COMPLETE_MARKER).is_file()]
