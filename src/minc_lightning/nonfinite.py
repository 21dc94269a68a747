"""NonFiniteGuard: what MINCModule does about non-finite losses, gradients, weights and Λ."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from minc_lightning.errors import Diverged


def total_norm(tensors: Any) -> Tensor:
    """The 2-norm of all floating-point ``tensors`` together (non-finite when any value is)."""
    tensors = [t.detach() for t in tensors if t.is_floating_point()]
    if not tensors:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(tensors, error_if_nonfinite=False)


class NonFiniteGuard:
    """Skips (or, with ``on_nonfinite="raise"``, stops at) an optimizer step whose loss or
    gradient is not finite, on every process alike: weights, optimizer state, the loss's state
    (Λ) and the target stay as they were. Weights that became non-finite stop the run whatever
    the mode (the step cannot be undone), and so does a fit that ends with non-finite weights or
    Λ, or whose every step was skipped. All of its state is here.
    """

    def __init__(self, on_nonfinite: Literal["skip", "raise"]) -> None:
        self.on_nonfinite = on_nonfinite
        self.finite = torch.tensor(True)  # every loss of the current optimizer step so far
        self.batch_idx = 0
        self.skip = False  # the decision for the current step
        self.skipped = 0  # steps skipped in this fit
        self.first_step = 0  # the global step this fit started (or resumed) at
        self.loss_state: dict[str, Tensor] = {}  # the loss's state after the last good step

    def start(self, loss: nn.Module, step: int) -> None:
        self.loss_state = {k: v.clone() for k, v in loss.state_dict().items()}
        self.skipped = 0
        self.first_step = step

    def observe(self, loss: Tensor, batch_idx: int) -> None:
        """Record one micro-batch's loss (no host synchronisation)."""
        self.finite = self.finite.to(loss.device) & torch.isfinite(loss.detach())
        self.batch_idx = batch_idx

    def before_step(self, module: LightningModule, optimizer: torch.optim.Optimizer) -> None:
        """Decide whether the coming optimizer step is taken; raise when it must not be."""
        step = module.global_step
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        finite = self.finite.to(module.device)
        if grads:
            finite = finite & total_norm(grads).isfinite()
        # weights (the same on every process) and this step's losses and gradients: one sync
        weights_finite, finite = torch.stack(
            [total_norm(module.parameters()).isfinite().to(finite.device), finite]
        ).tolist()
        if not weights_finite:
            raise Diverged(
                f"MINCModule: the weights became non-finite at optimizer step {step - 1} (the "
                "last step taken); the run cannot continue. Lower the learning rate (lr="
                f"{module.hparams.lr}) or enable normalisation (mu)."
            )
        self.finite = torch.tensor(True)
        self.skip = module.trainer.strategy.reduce_boolean_decision(not finite, all=False)
        if not self.skip:
            return
        self.skipped += 1
        where = f"optimizer step {step} (epoch {module.current_epoch}, batch {self.batch_idx})"
        if self.on_nonfinite == "raise":
            raise Diverged(
                f"MINCModule: non-finite loss or gradient at {where}. Lower the learning rate, "
                "enable normalisation (mu), or set on_nonfinite='skip'."
            )
        rank_zero_warn(f"MINCModule: non-finite loss or gradient at {where}; step skipped.")
        optimizer.zero_grad(set_to_none=True)  # optimizers leave parameters without grad alone

    def after_step(self, loss: nn.Module) -> bool:
        """Whether the step was taken; if not, the loss's state goes back to before the batch."""
        if self.skip:
            loss.load_state_dict(self.loss_state)
            return False
        self.loss_state = {k: v.clone() for k, v in loss.state_dict().items()}
        return True

    def end(self, module: LightningModule, loss: nn.Module) -> None:
        """No fit ends as a success with non-finite weights or Λ, or without a step taken."""
        step, taken = module.global_step, module.global_step - self.first_step
        if not bool(total_norm([*module.parameters(), *loss.buffers()]).isfinite()):
            raise Diverged(
                f"MINCModule: the weights or Λ are not finite after optimizer step {step - 1}, "
                "the last one; the checkpoint holds no usable result."
            )
        if taken > 0 and self.skipped >= taken:
            raise Diverged(
                f"MINCModule: all {taken} optimizer steps of this run were skipped (non-finite "
                "loss or gradient): nothing was trained. Lower the learning rate or enable "
                "normalisation (mu)."
            )
