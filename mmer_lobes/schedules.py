"""The paper's learning-rate schedule: constant for some epochs, then halved every epoch.

The factor is a pure function of the epoch, so a resumed run gets the right learning
rate with no scheduler state to checkpoint.
"""


class HoldThenDecay:
    """Sets every parameter group's lr to ``base_lr * factor ** max(0, epoch - hold_epochs)``.

    ``base_lr`` is the lr each group had when the schedule first saw the optimizer, so
    parameter groups with different learning rates (encoder vs. head) keep their ratio.

    Arguments
    ---------
    hold_epochs : int
        Epochs trained at the initial learning rate.
    factor : float
        Multiplier applied once per epoch after that (0.5 halves).

    Example
    -------
    >>> import torch
    >>> opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1},
    ...                        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.001}])
    >>> schedule = HoldThenDecay(hold_epochs=8, factor=0.5)
    >>> schedule(opt, epoch=8)
    [0.1, 0.001]
    >>> schedule(opt, epoch=10)
    [0.025, 0.00025]
    """

    def __init__(self, hold_epochs=8, factor=0.5):
        self.hold_epochs = hold_epochs
        self.factor = factor

    def multiplier(self, epoch):
        """The lr multiplier of (1-based) ``epoch``."""
        return self.factor ** max(0, epoch - self.hold_epochs)

    def __call__(self, optimizer, epoch):
        """Applies the lr of ``epoch`` to ``optimizer``; returns the groups' learning rates."""
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = group["base_lr"] * self.multiplier(epoch)
        return [group["lr"] for group in optimizer.param_groups]
