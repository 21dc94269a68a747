"""MINCModule: BYOL-style online/target networks trained with the MINC loss (SPEC section 3)."""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import get_weight_decay_parameters, update_momentum
from lightly.utils.lars import LARS
from lightly.utils.scheduler import cosine_schedule
from lightning.pytorch import LightningModule
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from minc_lightning.backbones import ResNet
from minc_lightning.checkpoints import state_dict_differences
from minc_lightning.checks import (
    check,
    interval,
    non_negative,
    non_negative_int,
    one_of,
    optional,
    positive,
    positive_int,
    probability,
)
from minc_lightning.diagnostics import effective_rank, embedding_std, lambda_diagnostics
from minc_lightning.loss import BYOLLoss, MINCLoss, SpectralContrastiveLoss
from minc_lightning.schedule import WarmupCosine

Objective = Literal["minc", "spectral", "byol"]
RESUME_KEY = "minc_lightning"  # what a checkpoint records of the optimisation it was written by
BATCH_CONTRACT = (
    "a training batch is (views, labels) or (views, labels, *anything), where views is a "
    "list/tuple of two float tensors of shape (B, C, H, W) and labels a (B,) integer tensor "
    "(-1 for unlabelled images), or (views,) with no labels"
)


def describe(x: Any) -> str:
    """A short description of a nested batch, for error messages."""
    if isinstance(x, Tensor):
        return f"Tensor{tuple(x.shape)}"
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__}({', '.join(describe(v) for v in x)})"
    return type(x).__name__


def unpack_views(batch: Any) -> tuple[Tensor, Tensor, Tensor | None]:
    """Split a training batch into its two views and its labels (None when it has none)."""
    views = batch[0] if isinstance(batch, (list, tuple)) and len(batch) > 0 else None
    labels = batch[1] if isinstance(batch, (list, tuple)) and len(batch) > 1 else None
    ok = (
        isinstance(views, (list, tuple))
        and len(views) == 2
        and all(isinstance(v, Tensor) and v.ndim == 4 for v in views)
        and views[0].shape == views[1].shape
        and (labels is None or (isinstance(labels, Tensor) and labels.shape == views[0].shape[:1]))
    )
    if not ok:
        raise ValueError(f"MINCModule: {BATCH_CONTRACT}; received {describe(batch)}")
    if not views[0].is_floating_point():
        raise ValueError(
            f"MINCModule: the views are {views[0].dtype} images; it needs normalised float ones. "
            "MINCDataModule's loader yields uint8 views and normalises them on the device in "
            "on_after_batch_transfer: pass it to the Trainer as datamodule=..., or call "
            "dm.on_after_batch_transfer(batch, 0) yourself."
        )
    return views[0], views[1], labels


def infer_feature_dim(backbone: nn.Module) -> int:
    """The width F of ``backbone``'s (B, F) output: its ``num_features`` attribute, or a probe
    forward pass on a small RGB image."""
    if isinstance(getattr(backbone, "num_features", None), int):
        return backbone.num_features
    was_training = backbone.training
    try:
        with torch.no_grad():
            out = backbone.eval()(torch.zeros(2, 3, 64, 64))
    except Exception as err:  # any failure means we cannot guess: ask the user
        raise ValueError(
            "MINCModule could not infer the backbone's feature width by running it on a "
            f"(2, 3, 64, 64) image ({type(err).__name__}: {err}); pass feature_dim=<F>."
        ) from err
    finally:
        backbone.train(was_training)
    if out.ndim != 2:
        raise ValueError(
            f"MINCModule: the backbone must return (B, F) features, it returned "
            f"{tuple(out.shape)}; flatten its output or pass a backbone ending in pooling."
        )
    return out.shape[1]


def per_device_batch_size(loader: Any) -> int:
    """Images per training batch on this process: the loader's batch size, or (for loaders that
    yield ready-made batches) the size of its first batch."""
    size = getattr(loader, "batch_size", None) or getattr(
        getattr(loader, "batch_sampler", None), "batch_size", None
    )
    return size or len(unpack_views(next(iter(loader)))[0])


class MINCModule(LightningModule):
    """Self-supervised pre-training with MINC (or the SCL / BYOL baselines through one code path).

    Online network: backbone → projector → predictor; target network: an EMA copy of backbone →
    projector without gradients, updated once per optimizer step with momentum τ rising from
    ``tau_base`` to 1 by a cosine over ``trainer.estimated_stepping_batches``. A linear probe on
    the detached backbone features tracks top-1/top-5 accuracy on the validation loader.

    Batch contract: a training batch is ``(views, labels)`` or ``(views, labels, *anything)``;
    ``views`` a list/tuple of two (B, C, H, W) tensors (what lightly's ``BYOLTransform`` yields
    through a torchvision dataset), ``labels`` (B,) with -1 for unlabelled images, or left out.
    A validation batch is ``(images, labels, *anything)``.

    Args:
        backbone: images (B, C, H, W) → features (B, F). Default: ResNet-18.
        feature_dim: F; inferred from ``backbone.num_features`` or a probe forward when None.
        projection_hidden_dim, projection_dim: projector MLP widths (BYOL: 4096, 256).
        prediction_hidden_dim: predictor MLP hidden width (BYOL: 4096).
        use_predictor: use the predictor MLP (else identity) for "minc" and "byol".
        objective: "minc", "spectral" (SCL: no target, no predictor) or "byol".
        alpha, triangular, moment_source, mu: the MINC loss (see ``MINCLoss``); ``mu`` also
            normalises the spectral loss. The defaults (0.1, tril, target, 1) held up in our
            ablation (docs/results.md): no alternative beat them beyond seed noise.
        tau_base: target momentum at step 0.
        optimizer: "lars" (lightly's), "sgd" or "adamw".
        lr: base learning rate for a global batch of 256 (scaled linearly with the global batch).
        weight_decay: on weights only; biases and normalisation parameters get none (and no LARS
            adaptation).
        momentum: for LARS and SGD.
        warmup_epochs: linear warm-up length, then cosine decay; both stepped per optimizer step.
        num_classes: classes of the online linear probe; 0 disables it.
        probe_lr: learning rate of the probe (not scaled with the batch).
        on_nonfinite: a non-finite loss or gradient either "skip"s the optimizer step (with a
            warning; weights, optimizer state, Λ and target stay as they were) or "raise"s.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        feature_dim: int | None = None,
        projection_hidden_dim: int = 4096,
        projection_dim: int = 256,
        prediction_hidden_dim: int = 4096,
        use_predictor: bool = True,
        objective: Objective = "minc",
        alpha: float = 0.1,
        triangular: bool = True,
        moment_source: Literal["target", "online"] = "target",
        mu: float | None = 1.0,
        tau_base: float = 0.99,
        optimizer: Literal["lars", "sgd", "adamw"] = "lars",
        lr: float = 0.2,
        weight_decay: float = 1.5e-6,
        momentum: float = 0.9,
        warmup_epochs: float = 10.0,
        num_classes: int = 0,
        probe_lr: float = 0.1,
        on_nonfinite: Literal["skip", "raise"] = "skip",
    ) -> None:
        super().__init__()
        # A backbone given in a config is saved as its config; a Python object is not saved
        # (pass it again to load_from_checkpoint).
        self.save_hyperparameters(ignore=None if _given_hyperparameters.get() else ["backbone"])
        check(
            "MINCModule",
            feature_dim=(feature_dim, optional(positive_int)),
            projection_hidden_dim=(projection_hidden_dim, positive_int),
            projection_dim=(projection_dim, positive_int),
            prediction_hidden_dim=(prediction_hidden_dim, positive_int),
            objective=(objective, one_of(("minc", "spectral", "byol"))),
            alpha=(alpha, interval(0.0, 1.0, open_low=True)),
            moment_source=(moment_source, one_of(("target", "online"))),
            mu=(mu, optional(positive)),
            tau_base=(tau_base, probability),
            optimizer=(optimizer, one_of(("lars", "sgd", "adamw"))),
            lr=(lr, positive),
            weight_decay=(weight_decay, non_negative),
            momentum=(momentum, probability),
            warmup_epochs=(warmup_epochs, non_negative),
            num_classes=(num_classes, non_negative_int),
            probe_lr=(probe_lr, positive),
            on_nonfinite=(on_nonfinite, one_of(("skip", "raise"))),
        )

        self.backbone = ResNet("resnet18") if backbone is None else backbone
        self.feature_dim = feature_dim or infer_feature_dim(self.backbone)
        self.projector = BYOLProjectionHead(self.feature_dim, projection_hidden_dim, projection_dim)
        self.predictor: nn.Module = nn.Identity()
        if objective == "spectral":
            self.criterion: nn.Module = SpectralContrastiveLoss(mu=mu)
        else:
            if use_predictor:
                self.predictor = BYOLPredictionHead(
                    projection_dim, prediction_hidden_dim, projection_dim
                )
            # Frozen copies: no gradient, so DDP needs no find_unused_parameters.
            self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
            self.criterion = (
                MINCLoss(projection_dim, alpha, triangular, moment_source, mu)
                if objective == "minc"
                else BYOLLoss()
            )
        self.probe = nn.Linear(self.feature_dim, num_classes) if num_classes else None
        if num_classes:
            self.val_top1 = MulticlassAccuracy(num_classes, top_k=1)
            self.val_top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes))
        self._finite = torch.tensor(True)  # all losses of this optimizer step finite so far
        self._loss_state: dict[str, Tensor] = {}  # criterion state after the last good step
        self._skipped = 0  # optimizer steps skipped by the non-finite guard in this fit
        self._horizon = (0, 1)  # (warm-up steps, total steps) of the current run
        self._optimisation: dict[str, Any] = {}  # lr and global batch of this run
        self._resumed_from: dict[str, Any] = {}  # the same, read from a resumed checkpoint

    # --- schedules -------------------------------------------------------------------------
    def tau(self, step: int) -> float:
        """Target momentum after ``step`` optimizer steps: tau_base → 1 by a cosine."""
        # lightly's schedule over total + 1 points is exactly SPEC's 1 - (1 - τ₀)(cos(πk/K) + 1)/2
        total = int(self.trainer.estimated_stepping_batches)
        return cosine_schedule(step, total + 1, self.hparams.tau_base, 1.0)

    # --- training --------------------------------------------------------------------------
    def objective_loss(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The self-supervised loss of two views (B, C, H, W), with the online backbone features
        h (2B, F) and projections z (2B, d) it was computed from (SPEC section 3)."""
        h = self.backbone(torch.cat([x1, x2]))  # (2B, F)
        if h.ndim != 2 or h.shape[1] != self.feature_dim:
            raise ValueError(
                f"MINCModule: the backbone returned features of shape {tuple(h.shape)}, but the "
                f"projector expects (2B, {self.feature_dim}); set feature_dim to the backbone's "
                "output width."
            )
        z = self.projector(h)  # (2B, d)
        if self.hparams.objective == "spectral":
            loss = self.criterion(*z.chunk(2))
        else:
            p = self.predictor(z)  # online predictions of v1 then v2
            with torch.no_grad():  # target projections of the *other* view: v2 then v1
                t = self.target_projector(self.target_backbone(torch.cat([x2, x1])))
            loss = self.criterion(p, t)
        return loss, h, z

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x1, x2, y = unpack_views(batch)
        loss, h, z = self.objective_loss(x1, x2)
        self.log("train/loss", loss, prog_bar=True)

        if self.probe is not None:
            labels = torch.cat([y, y]) if y is not None else h.new_full((len(h),), -1).long()
            probe_loss, labelled = self._probe_loss(h.detach(), labels)
            self.log("train/probe_loss", probe_loss, batch_size=max(labelled, 1))
            loss = loss + probe_loss

        self._finite = self._finite.to(loss.device) & torch.isfinite(loss.detach())
        self._batch_idx = batch_idx
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self._log_diagnostics(z.detach())
        return loss

    def _probe_loss(self, feats: Tensor, labels: Tensor) -> tuple[Tensor, int]:
        """Cross-entropy of the probe over labelled rows (label -1: ignored). Always uses the
        probe, so every process touches its parameters (DDP needs that)."""
        logits = self.probe(feats)
        mask = labels >= 0
        total = F.cross_entropy(logits, labels.clamp_min(0), reduction="none")
        return (total * mask).sum() / mask.sum().clamp_min(1), int(mask.sum())

    def _log_diagnostics(self, z: Tensor) -> None:
        stats = {"train/embedding_std": embedding_std(z), "train/effective_rank": effective_rank(z)}
        if isinstance(self.criterion, MINCLoss):
            stats.update(
                {
                    f"lambda/{k}": v
                    for k, v in lambda_diagnostics(self.criterion.second_moment).items()
                }
            )
        if self.hparams.objective != "spectral":
            stats["train/tau"] = self.tau(self.global_step)
        if self.trainer.optimizers:
            stats["train/lr"] = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.log_dict(stats)

    def on_train_start(self) -> None:
        self._loss_state = {k: v.clone() for k, v in self.criterion.state_dict().items()}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip (or stop at) a step whose loss or gradient is not finite, on every process; stop
        whatever ``on_nonfinite`` says once the weights themselves are not finite."""
        if not bool(total_norm(self.parameters()).isfinite()):  # replicated: same on every rank
            raise FloatingPointError(
                f"MINCModule: the weights became non-finite at optimizer step "
                f"{self.global_step - 1} (the last step taken); the run cannot continue. "
                f"Lower the learning rate (lr={self.hparams.lr}) or enable normalisation (mu)."
            )
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        finite = self._finite.to(self.device)
        if grads:
            finite = finite & total_norm(grads).isfinite()
        bad = self.trainer.strategy.reduce_boolean_decision(not bool(finite), all=False)
        self._finite = torch.tensor(True)
        self._skip_step = bad
        if not bad:
            return
        self._skipped += 1
        where = (
            f"optimizer step {self.global_step} (epoch {self.current_epoch}, "
            f"batch {self._batch_idx})"
        )
        if self.hparams.on_nonfinite == "raise":
            raise FloatingPointError(
                f"MINCModule: non-finite loss or gradient at {where}. Lower the learning rate, "
                "enable normalisation (mu), or set on_nonfinite='skip'."
            )
        rank_zero_warn(f"MINCModule: non-finite loss or gradient at {where}; step skipped.")
        optimizer.zero_grad(set_to_none=True)  # optimizers leave parameters without grad alone

    def on_train_end(self) -> None:
        """No run ends as a success with non-finite weights or Λ, or without a step taken."""
        step = self.global_step
        if not bool(total_norm([*self.parameters(), *self.criterion.buffers()]).isfinite()):
            raise FloatingPointError(
                f"MINCModule: the weights or Λ are not finite after optimizer step {step - 1}, "
                "the last one; the checkpoint holds no usable result."
            )
        if step > 0 and self._skipped >= step:
            raise FloatingPointError(
                f"MINCModule: all {step} optimizer steps of this run were skipped (non-finite "
                "loss or gradient): nothing was trained. Lower the learning rate or enable "
                "normalisation (mu)."
            )

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure=None):
        step = self.global_step  # optimizer steps taken before this one
        self._skip_step = False
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self._skip_step:  # Λ goes back to where it was before the batch
            self.criterion.load_state_dict(self._loss_state)
            return
        if hasattr(self, "target_backbone"):  # exactly once per optimizer step
            tau = self.tau(step)
            update_momentum(self.backbone, self.target_backbone, tau)
            update_momentum(self.projector, self.target_projector, tau)
        self._loss_state = {k: v.clone() for k, v in self.criterion.state_dict().items()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RESUME_KEY] = dict(self._optimisation)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, with the differences, a checkpoint written under another configuration."""
        self._resumed_from = dict(checkpoint.get(RESUME_KEY, {}))
        problems = state_dict_differences(self.state_dict(), checkpoint.get("state_dict", {}))
        if problems:
            raise ValueError(
                "MINCModule: the checkpoint was written by an incompatible configuration "
                "(another backbone, head width, objective or number of classes); load it with "
                f"the configuration it was trained with. Differences: {'; '.join(problems[:6])}"
                + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else "")
            )

    # --- validation: online linear probe ----------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self.probe is None:
            return
        x, y = batch[0], batch[1]
        if isinstance(x, (list, tuple)):  # a two-view validation set: probe the first view
            x = x[0]
        mask = y >= 0
        logits = self.probe(self.backbone(x))[mask]
        self.val_top1(logits, y[mask])
        self.val_top5(logits, y[mask])
        self.log("val/top1", self.val_top1, prog_bar=True)
        self.log(f"val/top{self.val_top5.top_k}", self.val_top5)

    # --- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        hp, trainer = self.hparams, self.trainer
        if trainer.estimated_stepping_batches == float("inf"):
            raise ValueError("MINCModule needs a finite run: set trainer.max_epochs or max_steps")
        total_steps = int(trainer.estimated_stepping_batches)
        if trainer.train_dataloader is None:  # not loaded when max_steps alone bounds the run
            trainer.fit_loop.setup_data()
        per_device = per_device_batch_size(trainer.train_dataloader)
        global_batch = per_device * trainer.world_size * trainer.accumulate_grad_batches
        lr = hp.lr * global_batch / 256
        online = [self.backbone, self.projector, self.predictor]
        decay, no_decay = get_weight_decay_parameters(online)
        groups = [
            {"name": "online", "params": decay, "weight_decay": hp.weight_decay},
            {"name": "online_no_decay", "params": no_decay, "weight_decay": 0.0},
        ]
        if self.probe is not None:
            groups.append(
                {
                    "name": "probe",
                    "params": list(self.probe.parameters()),
                    "lr": hp.probe_lr,
                    "weight_decay": 0.0,
                }
            )
        if hp.optimizer == "lars":
            opt = LARS(groups, lr=lr, momentum=hp.momentum)
        elif hp.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=lr, momentum=hp.momentum)
        else:
            opt = torch.optim.AdamW(groups, lr=lr)
        self._horizon = (self.warmup_steps(total_steps), total_steps)
        self._optimisation = {"lr": lr, "global_batch": global_batch}
        self._check_resume(lr, global_batch)
        rank_zero_info(
            f"MINCModule: global batch {global_batch} ({per_device} per device × "
            f"{trainer.world_size} processes × {trainer.accumulate_grad_batches} accumulated), "
            f"lr {lr:.4g} (= {hp.lr} × {global_batch}/256), {self._horizon[0]} warm-up of "
            f"{total_steps} steps"
        )
        scheduler = WarmupCosine(opt, horizon=lambda: self._horizon)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def warmup_steps(self, total_steps: int) -> int:
        """``warmup_epochs`` in optimizer steps: epochs of this run's training batches, also when
        ``max_steps`` ends the run before ``max_epochs`` would."""
        trainer = self.trainer
        batches = trainer.num_training_batches
        per_epoch = (
            math.ceil(batches / trainer.accumulate_grad_batches)
            if math.isfinite(batches)
            else total_steps
        )
        return min(int(self.hparams.warmup_epochs * per_epoch), total_steps)

    def _check_resume(self, lr: float, global_batch: int) -> None:
        """A resumed run applies a changed lr (and says so) and refuses a changed batch size."""
        before = self._resumed_from
        if not before:
            return
        if before.get("global_batch", global_batch) != global_batch:
            raise ValueError(
                f"MINCModule: the checkpoint was trained with a global batch of "
                f"{before['global_batch']}, this run has {global_batch}. A resumed run keeps its "
                "batch size: its step count, the schedules' horizon and its place inside the "
                "epoch are counted in batches. Resume with the original data.batch_size "
                "(and devices, accumulate_grad_batches), or start a new run."
            )
        if not math.isclose(before.get("lr", lr), lr, rel_tol=1e-9):
            rank_zero_info(
                f"MINCModule: resuming with lr {lr:.4g} instead of the checkpoint's "
                f"{before['lr']:.4g}; the schedule continues from the restored step with it."
            )


def total_norm(tensors: Any) -> Tensor:
    """The 2-norm of all floating-point ``tensors`` together (non-finite when any value is)."""
    tensors = [t.detach() for t in tensors if t.is_floating_point()]
    if not tensors:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(tensors, error_if_nonfinite=False)
