"""MINCModule: BYOL-style online/target networks trained with the MINC loss (docs/method.md §4)."""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import get_weight_decay_parameters, update_momentum
from lightly.utils.lars import LARS
from lightly.utils.scheduler import cosine_schedule
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from minc_lightning.backbones import ResNet, infer_feature_dim
from minc_lightning.checkpoint_files import ResumeRecord, incompatibility
from minc_lightning.cli_context import built_by_cli
from minc_lightning.data.batch import unpack_views
from minc_lightning.diagnostics import effective_rank, embedding_std
from minc_lightning.errors import BadCheckpoint, BadInput
from minc_lightning.nonfinite import NonFiniteGuard
from minc_lightning.objectives import OBJECTIVES, LossSettings
from minc_lightning.plan import RunPlan, announce, plan_run, scaled_lr
from minc_lightning.probe import OnlineProbe
from minc_lightning.schedule import WarmupCosine
from minc_lightning.validation import (
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


class MINCModule(LightningModule):
    """Self-supervised pre-training with MINC (or the SCL / BYOL baselines through one code path).

    Online network: backbone → projector → predictor; target: an EMA copy of backbone → projector
    without gradients, updated once per optimizer step with τ rising from ``tau_base`` to 1 by a
    cosine over the run. A linear probe on detached backbone features reports top-1/top-5.
    Batches: ``minc_lightning.data.batch`` (training ``([view1, view2], labels)``, validation
    ``(images, labels)``, label -1 for unlabelled images).

    Multi-crop (``local_views`` > 0, training ``([global_1, global_2, local_1, ...], labels)``):
    the target network sees the two global views only; each global view predicts the other's
    target, each local view predicts both (docs/method.md §9).

    Args:
        backbone: images (B, C, H, W) → features (B, F). Default: ResNet-18. Saved in checkpoints
            when given as a config (the CLI); a Python object must be passed again on loading.
        batch_size: images per training batch on one process (the CLI links it to
            ``data.batch_size``); the learning rate is scaled by the global batch it makes.
        feature_dim: F; inferred from ``backbone.num_features`` or a probe forward when None.
        projection_hidden_dim: hidden width of the projector MLP (BYOL: 4096).
        projection_dim: output width of the projector, the embedding the loss sees (BYOL: 256).
        prediction_hidden_dim: hidden width of the predictor MLP (BYOL: 4096).
        use_predictor: the predictor MLP on the online branch, where the objective has one.
        objective: a key of ``minc_lightning.objectives.OBJECTIVES``: "minc", "spectral", "byol".
        alpha: EMA rate of Λ, the second moment of the targets; per 256 images with
            ``ema_scaling``; 1 keeps only the current batch's estimate.
        triangular: use tril(Λ), the form that orders the eigenfunctions (see ``MINCLoss``).
        moment_source: what Λ is estimated from: "target" (the slow network, a steadier
            estimate) or "online" (the online predictions, without gradient).
        mu: the squared norm each row is normalised to before the loss (None: not normalised);
            the spectral loss normalises by it too.
        tau_base: target momentum at step 0, for updates of 256 images (with ``ema_scaling``).
        ema_scaling: ``alpha`` and ``tau_base`` are given for a global batch of 256, the
            reference of ``lr``, and scaled by the EMA scaling rule to the images each update
            sees (``plan.RunPlan``); False: they are per-update values, as given.
        optimizer: "lars" (lightly's), "sgd" or "adamw".
        lr: base learning rate for a global batch of 256 (scaled linearly with the global batch).
        weight_decay: on weights only (biases and norm parameters: none, no LARS adaptation).
        momentum: for LARS and SGD.
        warmup_epochs: linear warm-up length, then cosine decay; both stepped per optimizer step.
        num_classes: classes of the online linear probe; 0 disables it.
        probe_lr: learning rate of the probe (not scaled with the batch).
        on_nonfinite: "skip" or "raise" at a non-finite loss or gradient (``nonfinite.py``).
        local_views: local views per image in each training batch after the two global ones
            (multi-crop; the CLI links it to ``data.local_views``). Not for "spectral".
        local_predictor: with local views, "shared": one predictor for every view (the default:
            better at the quickstart's budget, ``benchmarks/multicrop.py``), "separate": the local
            views have their own predictor (MULAN, arXiv 2602.05845).
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        batch_size: int | None = None,
        feature_dim: int | None = None,
        projection_hidden_dim: int = 4096,
        projection_dim: int = 256,
        prediction_hidden_dim: int = 4096,
        use_predictor: bool = True,
        objective: str = "minc",
        alpha: float = 0.1,
        triangular: bool = True,
        moment_source: Literal["target", "online"] = "target",
        mu: float | None = 1.0,
        tau_base: float = 0.99,
        ema_scaling: bool = True,
        optimizer: Literal["lars", "sgd", "adamw"] = "lars",
        lr: float = 0.2,
        weight_decay: float = 1.5e-6,
        momentum: float = 0.9,
        warmup_epochs: float = 10.0,
        num_classes: int = 0,
        probe_lr: float = 0.1,
        on_nonfinite: Literal["skip", "raise"] = "skip",
        local_views: int = 0,
        local_predictor: Literal["separate", "shared"] = "shared",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=None if built_by_cli() else ["backbone"])  # not objects
        check_arguments(self.hparams)
        self.objective = OBJECTIVES[objective]
        self.backbone = ResNet("resnet18") if backbone is None else backbone
        self.feature_dim = feature_dim or infer_feature_dim(self.backbone)
        self.projector = BYOLProjectionHead(self.feature_dim, projection_hidden_dim, projection_dim)
        with_predictor = use_predictor and self.objective.uses_predictor
        self.predictor = predictor(projection_dim, prediction_hidden_dim, with_predictor)
        if local_views and local_predictor == "separate" and with_predictor:
            self.local_predictor = predictor(projection_dim, prediction_hidden_dim, True)
        if self.objective.uses_target:
            self.add_target()
        self.criterion = self.objective.build(LossSettings.of(self.hparams))
        self.probe = OnlineProbe(self.feature_dim, num_classes) if num_classes else None
        self.guard = NonFiniteGuard(on_nonfinite)
        self.resume = ResumeRecord()
        self.plan: RunPlan | None = None  # what the current fit's batches decide (plan.py)

    def add_target(self) -> None:
        """Frozen copies of backbone and projector (without gradients DDP needs no search)."""
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    # --- the method ------------------------------------------------------------------------
    def tau(self, step: int) -> float:
        """Target momentum after ``step`` optimizer steps: from the plan's τ₀ (tau_base scaled
        to the update) to 1 by a cosine over the fit's optimizer steps."""
        plan = self.plan or RunPlan(0, 0.0)  # before a fit: tau_base, over one step
        start = plan.applied("tau_base") or self.hparams.tau_base
        # lightly's schedule over total + 1 points is exactly docs/method.md §4's
        # 1 - (1 - τ₀)(cos(πk/K) + 1)/2
        return float(cosine_schedule(step, plan.horizon[1] + 1, start, 1.0))

    def objective_loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The self-supervised loss of a batch's views (B, C, H, W), the two global views first,
        with the global views' online backbone features h (2B, F) and projections z (2B, d) it
        was computed from (docs/method.md §4; local views §9)."""
        x1, x2, local = views[0], views[1], views[2:]
        h = self.backbone(torch.cat([x1, x2]))  # (2B, F)
        if h.ndim != 2 or h.shape[1] != self.feature_dim:
            raise BadInput(
                f"MINCModule: the backbone returned features of shape {tuple(h.shape)}, but the "
                f"projector expects (2B, {self.feature_dim}); set feature_dim to the backbone's "
                "output width."
            )
        z = self.projector(h)  # (2B, d)
        if not self.objective.uses_target:
            return self.criterion(*z.chunk(2)), h, z
        # Λ's rate for this batch: alpha scaled to the images each update sees (the run plan)
        stateful = self.objective.stateful and self.plan is not None
        state = {"rate": self.plan.applied("alpha")} if stateful else {}
        p = self.predictor(z)  # online predictions of v1 then v2
        with torch.no_grad():  # target projections of the *other* view: v2 then v1
            t = self.target_projector(self.target_backbone(torch.cat([x2, x1])))
        if not local:
            return self.criterion(p, t, **state), h, z
        # multi-crop: every local view predicts both global targets, after the two global
        # pairs; the loss averages over the 2 + 2N pairs (each of B rows), so its scale, and the
        # lr that suits it, does not grow with N. Λ is estimated from the global pairs' rows,
        # where each global target appears once
        p_local = self.local_predictions(torch.cat(local))  # (N·B, d): l_1, ..., l_N
        t2, t1 = t.chunk(2)
        n = len(local)
        p = torch.cat([p, p_local, p_local])
        t = torch.cat([t, t1.repeat(n, 1), t2.repeat(n, 1)])
        extra = {"moment_rows": len(h)} if self.objective.stateful else {}
        return self.criterion(p, t, **extra, **state), h, z

    def local_predictions(self, x: Tensor) -> Tensor:
        """Online predictions of local views: their own predictor (``local_predictor="separate"``)
        or the global views' one."""
        head = getattr(self, "local_predictor", self.predictor)
        return head(self.projector(self.backbone(x)))

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        views, y = unpack_views(batch)
        if self.plan is None or self.global_step == self.plan.first_step:  # the batches the lr
            # was scaled for
            check_batch_size(len(views[0]), self.hparams.batch_size)
            check_local_views(len(views) - 2, self.hparams.local_views)
        loss, h, z = self.objective_loss(views)
        self.log("train/loss", loss, prog_bar=True)
        if self.probe is not None:
            labels = torch.cat([y, y]) if y is not None else h.new_full((len(h),), -1).long()
            features = h.detach()
            if self.hparams.local_views:  # multi-crop: the first global view only
                features, labels = features[: len(views[0])], labels[: len(views[0])]
            probe_loss, labelled = self.probe.loss(features, labels)
            self.log("train/probe_loss", probe_loss, batch_size=max(labelled, 1))
            loss = loss + probe_loss
        self.guard.observe(loss, batch_idx)
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self.log_diagnostics(z.detach())
        return loss

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure=None):
        step = self.global_step  # optimizer steps taken before this one
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self.guard.after_step(self.criterion) and self.objective.uses_target:
            tau = self.tau(step)  # exactly once per optimizer step, after it
            update_momentum(self.backbone, self.target_backbone, tau)
            update_momentum(self.projector, self.target_projector, tau)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.guard.before_step(self, optimizer)

    def log_diagnostics(self, z: Tensor) -> None:
        stats = {"train/embedding_std": embedding_std(z), "train/effective_rank": effective_rank(z)}
        stats |= self.objective.diagnostics(self.criterion)
        if self.objective.uses_target:
            stats["train/tau"] = self.tau(self.global_step)
        if self.trainer.optimizers:
            stats["train/lr"] = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.log_dict(stats)

    # --- validation: online linear probe ----------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self.probe is None:
            return
        x, y = batch[0], batch[1]
        if isinstance(x, (list, tuple)):  # a two-view validation set: probe the first view
            x = x[0]
        self.probe.update(self.backbone(x), y)
        self.log("val/top1", self.probe.top1, prog_bar=True)
        self.log(f"val/top{self.probe.top5.top_k}", self.probe.top5)

    # --- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        online = [self.backbone, self.projector, self.predictor]
        opt = make_optimizer(hp.optimizer, online, self.probe, scaled_lr(hp, self.trainer), hp)
        scheduler = WarmupCosine(opt, horizon=lambda: (self.plan or RunPlan(0, 0.0)).horizon)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_start(self) -> None:
        """The run plan, once the fit's data is loaded (and a resumed state restored)."""
        trainer, hp, objective = self.trainer, self.hparams, self.objective
        self.plan = plan_run(hp, trainer, "alpha" in objective.reads, objective.uses_target)
        if changed := self.resume.check(self.plan, trainer.ckpt_path):
            rank_zero_info(changed)
        self.lr_schedulers().refresh()  # this step's lr under this run's horizon
        self.guard.start(self.criterion, self.global_step)
        check_labels_fit(trainer.datamodule, hp.num_classes)
        if ignored := objective.ignored():
            rank_zero_info(f"MINCModule: objective {hp.objective!r} ignores {', '.join(ignored)}")
        announce(self.plan, hp, trainer)

    def on_train_end(self) -> None:
        self.guard.end(self, self.criterion)

    # --- checkpoints ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        objective = self.objective  # outside a fit (trainer.save_checkpoint): its plan now
        plan = self.plan or plan_run(
            self.hparams, self.trainer, "alpha" in objective.reads, objective.uses_target, False
        )
        self.resume.save(checkpoint, plan)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse, with the differences, a checkpoint written under another configuration."""
        self.resume.load(checkpoint)
        if error := incompatibility(self.state_dict(), checkpoint.get("state_dict", {})):
            raise BadCheckpoint(f"MINCModule: {error}")


def make_optimizer(
    name: str, online: list[nn.Module], probe: nn.Module | None, lr: float, hp: Any
) -> torch.optim.Optimizer:
    """LARS, SGD or AdamW over the online networks (biases, normalisation parameters and what a
    module names in timm's ``no_weight_decay()``, a ViT's position embedding and class token,
    without weight decay and LARS adaptation) and the probe (its own lr, no decay)."""
    decay, no_decay = get_weight_decay_parameters(online)
    named = {id(p) for m in online for p in declared_no_decay(m)}
    no_decay += [p for p in decay if id(p) in named]
    decay = [p for p in decay if id(p) not in named]
    groups = [
        {"name": "online", "params": decay, "weight_decay": hp.weight_decay},
        {"name": "online_no_decay", "params": no_decay, "weight_decay": 0.0},
    ]
    if probe is not None:
        probe_params = list(probe.parameters())
        groups.append(
            {"name": "probe", "params": probe_params, "lr": hp.probe_lr, "weight_decay": 0}
        )
    if name == "lars":
        return LARS(groups, lr=lr, momentum=hp.momentum)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=hp.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def declared_no_decay(module: nn.Module) -> list[nn.Parameter]:
    """The parameters submodules exclude from weight decay by timm's ``no_weight_decay()``."""
    found = []
    for sub in module.modules():
        names = sub.no_weight_decay() if callable(getattr(sub, "no_weight_decay", None)) else ()
        found += [p for n, p in sub.named_parameters() if n in names]
    return found


def check_labels_fit(datamodule: Any, num_classes: int) -> None:
    """The probe has a class for every label the data module's training split holds."""
    classes = getattr(datamodule, "num_classes", None)
    if not isinstance(classes, int) or classes == 0:
        return
    root = getattr(datamodule, "root", None)
    if num_classes and classes > num_classes:
        raise BadInput(
            f"data.root {root} holds {classes} classes (labels 0 to {classes - 1}), but "
            f"model.num_classes is {num_classes}: set model.num_classes={classes}, or leave it "
            "unset so the CLI takes it from the data."
        )


def check_batch_size(size: int, expected: int | None) -> None:
    """The loader's batches are the size the learning rate was scaled for."""
    if size != expected:
        raise BadInput(
            f"MINCModule(batch_size={expected}) scales the learning rate for batches of "
            f"{expected}, but the loader gives {size}; pass the loader's batch size."
        )


def check_local_views(found: int, expected: int) -> None:
    """The batch has the local views the module was built for (a separate local predictor
    exists only then)."""
    if found != expected:
        raise BadInput(
            f"MINCModule(local_views={expected}) expects training batches of 2 global + "
            f"{expected} local views, but the batch has {found + 2} views; set model.local_views "
            f"to data.local_views ({found}) (minc-lightning links them)."
        )


def predictor(dim: int, hidden_dim: int, used: bool) -> nn.Module:
    """BYOL's predictor MLP, or the identity for objectives (or settings) without one."""
    return BYOLPredictionHead(dim, hidden_dim, dim) if used else nn.Identity()


def check_arguments(args: dict[str, Any]) -> None:
    """Every argument of MINCModule that a user sets (its hyper-parameters), checked."""
    check(
        "MINCModule",
        batch_size=(args["batch_size"], optional(positive_int)),
        feature_dim=(args["feature_dim"], optional(positive_int)),
        projection_hidden_dim=(args["projection_hidden_dim"], positive_int),
        projection_dim=(args["projection_dim"], positive_int),
        prediction_hidden_dim=(args["prediction_hidden_dim"], positive_int),
        objective=(args["objective"], one_of(OBJECTIVES)),
        alpha=(args["alpha"], interval(0.0, 1.0, open_low=True)),
        moment_source=(args["moment_source"], one_of(("target", "online"))),
        mu=(args["mu"], optional(positive)),
        tau_base=(args["tau_base"], probability),
        optimizer=(args["optimizer"], one_of(("lars", "sgd", "adamw"))),
        lr=(args["lr"], positive),
        weight_decay=(args["weight_decay"], non_negative),
        momentum=(args["momentum"], probability),
        warmup_epochs=(args["warmup_epochs"], non_negative),
        num_classes=(args["num_classes"], non_negative_int),
        probe_lr=(args["probe_lr"], positive),
        on_nonfinite=(args["on_nonfinite"], one_of(("skip", "raise"))),
        local_views=(args["local_views"], non_negative_int),
        local_predictor=(args["local_predictor"], one_of(("separate", "shared"))),
    )
    if args["local_views"] and not OBJECTIVES[args["objective"]].uses_target:
        raise BadInput(
            f"MINCModule: local_views={args['local_views']} with objective "
            f"{args['objective']!r}: multi-crop needs global targets for local views to "
            "predict, and the spectral loss has none (its negatives would mix views of "
            "different sizes); set local_views=0 (and data.local_views=0)."
        )
