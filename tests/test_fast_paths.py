"""channels_last and torch.compile change the speed, not the numbers (CPU, a few steps)."""

import pytest
import torch
from helpers import loaders, tiny_module, trainer
from lightning.pytorch import Callback

from minc_lightning.callbacks.fast_paths import FastPaths


class Record(Callback):
    """Every step's loss, the gradients of the last step before the optimizer used them, and
    whether the backbone's first layer ran inside a compiled graph."""

    def __init__(self) -> None:
        self.losses = []
        self.grads = None
        self.compiled = False

    def on_fit_start(self, trainer, pl_module):
        def hook(module, args, output):
            self.compiled |= torch.compiler.is_compiling()

        pl_module.backbone.features[0].register_forward_hook(hook)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.grads = [p.grad.clone() for p in pl_module.parameters() if p.grad is not None]


def run(*callbacks) -> tuple:
    model = tiny_module(optimizer="lars", lr=0.5)
    record = Record()
    train, _ = loaders(n=32)
    trainer(max_steps=4, callbacks=[record, *callbacks]).fit(model, train)
    return model, record


@pytest.mark.parametrize(
    "paths",
    [
        FastPaths(channels_last=True),
        FastPaths(channels_last=True, compile=True, compile_backend="aot_eager"),
    ],
    ids=["channels_last", "channels_last+compile"],
)
def test_fast_paths_match_eager_losses_gradients_lambda_and_target(paths):
    eager, eager_record = run()
    fast, fast_record = run(paths)
    # stated tolerance: float32 rounding of reordered sums, over 4 steps of a tiny network
    torch.testing.assert_close(fast_record.losses, eager_record.losses, rtol=1e-4, atol=1e-5)
    for g_fast, g_eager in zip(fast_record.grads, eager_record.grads, strict=True):
        torch.testing.assert_close(g_fast, g_eager, rtol=1e-3, atol=1e-5)
    assert fast.state_dict().keys() == eager.state_dict().keys()  # checkpoints unchanged
    torch.testing.assert_close(
        fast.criterion.second_moment, eager.criterion.second_moment, rtol=1e-4, atol=1e-6
    )
    for name, p in eager.target_backbone.state_dict().items():  # the EMA update as before
        torch.testing.assert_close(fast.target_backbone.state_dict()[name], p, rtol=1e-4, atol=1e-6)
    assert fast.backbone.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert fast_record.compiled == paths.compile and not eager_record.compiled
