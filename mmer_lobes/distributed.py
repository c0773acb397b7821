"""DistributedDataParallel on CPUs for the ResNet recipes (``torchrun ... --distributed_backend gloo``).

SpeechBrain's ``Brain`` converts every batch norm to ``SyncBatchNorm`` before wrapping the
modules in DDP, and torch trains ``SyncBatchNorm`` on accelerators only ("expected input tensor
to be on GPU"). :class:`CpuDistributedBrain` keeps SpeechBrain's wrapping on a GPU and, on a
CPU, wraps the trained modules in plain DDP: each process then normalises its batches with their
own statistics, as a single process does.
"""
import speechbrain as sb
from torch.nn.parallel import DistributedDataParallel


class CpuDistributedBrain(sb.Brain):
    """A ``Brain`` whose DDP wrapping also trains on CPUs (see the module docstring).

    Example
    -------
    >>> import torch
    >>> brain = CpuDistributedBrain(modules={"layer": torch.nn.BatchNorm1d(2)}, run_opts={"device": "cpu"})
    >>> type(brain.modules.layer).__name__  # not launched by torchrun: nothing is wrapped
    'BatchNorm1d'
    """

    def _wrap_distributed(self):
        """SpeechBrain's wrapping on accelerators; plain DDP of the trained modules on a CPU."""
        if not self.distributed_launch or not str(self.device).startswith("cpu"):
            return super()._wrap_distributed()
        for name, module in self.modules.items():
            if any(parameter.requires_grad for parameter in module.parameters()):
                self.modules[name] = DistributedDataParallel(
                    module, device_ids=None, find_unused_parameters=self.find_unused_parameters
                )


def unwrap(module):
    """The module inside a ``DistributedDataParallel`` wrapper (or ``module`` itself), to call
    its own methods (``classifier.embed``).

    Example
    -------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 2)
    >>> unwrap(layer) is layer
    True
    """
    return module.module if isinstance(module, DistributedDataParallel) else module
