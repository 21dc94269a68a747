"""Every GPU figure the project states, in one run: throughput, data path, mixed precision and
the cost of Λ. Writes ``results.json`` (raw) and ``summary.md`` (``docs/gpu.md``'s tables) to
``--out``. Run it through ``ops/gpu_check.sh``, which installs the carried wheels.

    bash ops/gpu_check.sh OUT            # on one GPU, about 6 minutes on an H200
    bash ops/gpu_check.sh OUT --dry-run  # the same code paths on the CPU, tiny sizes

Parts (each with its sizes in ``SIZES``):

1. throughput: ResNet-50 at 224 px, ``bf16-mixed``, batch 256, through MINCModule: MINC, BYOL and
   the backbone-only bound (the same forward and backward and LARS step; no heads, no target,
   no loss), then each again with ``channels_last`` and with ``compile`` (``FastPaths``);
2. data path: the device side of ``augment_on="device"`` per batch, and a short real
   ``minc-lightning fit`` on JPEG files written here, in both ``augment_on`` modes, with GPU
   utilisation sampled by nvidia-smi;
3. mixed precision: N steps each of ``bf16-mixed`` and ``16-mixed``, every loss and Λ finite, Λ
   float32, and the steps the fp16 grad scaler skipped;
4. the cost of Λ: MINCLoss forward and backward at d = 256, 1024, 4096 with N = 4096, against the
   spectral contrastive loss at the same N and d.

Verdicts are computed from the numbers by the rules in ``TARGETS``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

import minc_lightning
from benchmarks.common import quiet_trainer
from benchmarks.data_throughput import device_cost, write_jpegs
from benchmarks.loss_cost import measure
from benchmarks.step_time import FixedBatches, StepTimer
from minc_lightning.backbones import ConvNet, ResNet
from minc_lightning.baselines import SpectralContrastiveLoss
from minc_lightning.callbacks.fast_paths import FastPaths
from minc_lightning.loss import MINCLoss
from minc_lightning.module import MINCModule, make_optimizer

SIZES = {
    "gpu": dict(
        device="cuda",
        backbone="resnet50",
        image_size=224,
        batch=256,
        steps=15,
        warmup=5,
        compile_backend="inductor",
        heads=dict(projection_hidden_dim=4096, projection_dim=256, prediction_hidden_dim=4096),
        fit_images=2048,
        fit_batch=256,
        fit_steps=16,
        workers=14,
        mp_backbone="resnet18",
        mp_image_size=112,
        mp_steps=200,
        loss_n=4096,
        loss_dims=[256, 1024, 4096],
        device_repeats=10,
    ),
    "dry-run": dict(
        device="cpu",
        backbone="convnet",
        image_size=28,
        batch=4,
        steps=2,
        warmup=1,
        compile_backend="aot_eager",
        heads=dict(projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=32),
        fit_images=16,
        fit_batch=4,
        fit_steps=2,
        workers=2,
        mp_backbone="convnet",
        mp_image_size=28,
        mp_steps=4,
        loss_n=64,
        loss_dims=[16, 32],
        device_repeats=1,
    ),
}
TARGETS = {
    "minc / byol": ("<=", 1.03),  # MINC's loss costs at most 3% over BYOL's
    "minc / allowed bound": (">=", 0.90),  # at least 0.9 of the bound its target forward allows
}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_reset(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def backbone(name: str, image_size: int) -> torch.nn.Module:
    if name == "convnet":
        return ConvNet(width=4)
    return ResNet(name, cifar_stem=image_size <= 64)


def backbone_args(name: str, image_size: int) -> list[str]:
    """``backbone(name, image_size)`` as ``minc-lightning fit`` arguments."""
    if name == "convnet":
        return [
            "--model.backbone=minc_lightning.backbones.ConvNet",
            "--model.backbone.init_args.width=4",
        ]
    return [
        "--model.backbone=minc_lightning.backbones.ResNet",
        f"--model.backbone.init_args.name={name}",
        f"--model.backbone.init_args.cifar_stem={str(image_size <= 64).lower()}",
    ]


# --- 1. throughput ---------------------------------------------------------------------------
def module_rate(objective: str, fast: dict, s: dict) -> dict:
    """Images/s (2 views counted once: images of the batch) of MINCModule's training steps."""
    torch.manual_seed(0)
    model = MINCModule(
        backbone(s["backbone"], s["image_size"]),
        batch_size=s["batch"],
        objective=objective,
        num_classes=0,
        **s["heads"],
    )
    data = DataLoader(
        FixedBatches(s["batch"], s["image_size"], s["warmup"] + s["steps"]), batch_size=None
    )
    timer = StepTimer()
    callbacks = [timer] + (
        [FastPaths(**fast, compile_backend=s["compile_backend"])] if fast else []
    )
    peak_reset(s["device"])
    trainer = quiet_trainer(
        s["device"], "bf16-mixed", max_epochs=1, callbacks=callbacks, log_every_n_steps=10**6
    )
    trainer.fit(model, data)
    step = statistics.median(timer.times[s["warmup"] :])
    return {"step_s": step, "images_per_s": s["batch"] / step, "peak_gib": peak_gib(s["device"])}


def bound_rate(fast: dict, s: dict) -> dict:
    """The backbone alone: forward and backward of both views and the LARS step (the bound),
    and its forward alone without gradients (what MINC's target network adds)."""
    torch.manual_seed(0)
    device = s["device"]
    net = backbone(s["backbone"], s["image_size"]).to(device)
    images = torch.randn(2 * s["batch"], 3, s["image_size"], s["image_size"], device=device)
    if fast.get("channels_last"):
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if fast.get("compile"):
        net.compile(backend=s["compile_backend"])
    hp = argparse.Namespace(weight_decay=1.5e-6, momentum=0.9, probe_lr=0.1)
    optimizer = make_optimizer("lars", [net], None, 0.1, hp)
    autocast = torch.autocast(device, dtype=torch.bfloat16)
    peak_reset(device)

    def train_step() -> None:
        with autocast:
            loss = net(images).float().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def target_forward() -> None:
        with torch.no_grad(), autocast:
            net(images)

    result = {}
    for name, fn in (("step_s", train_step), ("forward_s", target_forward)):
        times = []
        for _ in range(s["warmup"] + s["steps"]):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times[s["warmup"] :])
    result["images_per_s"] = s["batch"] / result["step_s"]
    result["allowed_images_per_s"] = s["batch"] / (result["step_s"] + result["forward_s"])
    result["peak_gib"] = peak_gib(device)
    return result


def throughput(s: dict) -> dict:
    variants = {
        "eager": {},
        "channels_last": {"channels_last": True},
        "compile": {"channels_last": False, "compile": True},
    }
    out = {}
    for name, fast in variants.items():
        row = {o: module_rate(o, fast, s) for o in ("minc", "byol")}
        row["bound"] = bound_rate(fast, s)
        row["minc / byol"] = row["minc"]["step_s"] / row["byol"]["step_s"]
        row["minc / bound"] = row["minc"]["images_per_s"] / row["bound"]["images_per_s"]
        row["minc / allowed bound"] = (
            row["minc"]["images_per_s"] / row["bound"]["allowed_images_per_s"]
        )
        out[name] = row
        print(f"throughput {name}: {json.dumps(row)}", flush=True)
    return out


# --- 2. data path ----------------------------------------------------------------------------
class Utilisation:
    """GPU utilisation (%) sampled by nvidia-smi every 200 ms while the block runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Utilisation:
        try:
            self.process = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "200",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
        except FileNotFoundError:  # no GPU driver (the dry run)
            return self
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.strip().isdigit():
                self.samples.append(float(line))

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()


def real_fit(root: Path, mode: str, s: dict, tmp: Path) -> dict:
    """A short ``minc-lightning fit`` on the JPEG folder: wall time and GPU utilisation."""
    run = tmp / f"run-{mode}"
    command = [
        sys.executable,
        "-m",
        "minc_lightning.commands.fit",
        "fit",
        "--data.dataset=folder",
        f"--data.root={root}",
        f"--data.batch_size={s['fit_batch']}",
        f"--data.num_workers={s['workers']}",
        f"--data.augment_on={mode}",
        f"--data.image_size={s['image_size']}",
        *backbone_args(s["backbone"], s["image_size"]),
        *(f"--model.{k}={v}" for k, v in s["heads"].items()),
        "--trainer.max_epochs=1",
        f"--trainer.limit_train_batches={s['fit_steps']}",
        f"--trainer.accelerator={'gpu' if s['device'] == 'cuda' else 'cpu'}",
        "--trainer.devices=1",
        "--trainer.precision=bf16-mixed",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={run}",
    ]
    with Utilisation() as gpu:
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"minc-lightning fit ({mode}) failed:\n{done.stderr[-3000:]}")
    samples = gpu.samples
    return {
        "wall_s": wall,
        "images": s["fit_steps"] * s["fit_batch"],
        "gpu_util_mean": statistics.mean(samples) if samples else None,
        "gpu_util_median": statistics.median(samples) if samples else None,
        "samples": len(samples),
    }


def data_path(s: dict) -> dict:
    out = {"device_side": device_cost(s["device"], s["device_repeats"])}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "jpegs"
        write_jpegs(root / "train", s["fit_images"])
        for mode in ("device", "loader"):
            out[f"fit_{mode}"] = real_fit(root, mode, s, Path(tmp))
            print(f"fit augment_on={mode}: {json.dumps(out[f'fit_{mode}'])}", flush=True)
    return out


# --- 3. mixed precision ----------------------------------------------------------------------
class PrecisionWatch(L.Callback):
    """Every loss and Λ finite, Λ's dtype, and the optimizer steps the fp16 scaler skipped
    (its scale falls exactly when it skips a step)."""

    def __init__(self) -> None:
        self.losses, self.lambda_finite, self.lambda_dtypes, self.skipped = [], [], set(), 0
        self.scale: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.scale = scaler.get_scale() if scaler is not None else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        lam = pl_module.criterion.second_moment
        self.lambda_finite.append(bool(torch.isfinite(lam).all()))
        self.lambda_dtypes.add(str(lam.dtype))
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and self.scale is not None and scaler.get_scale() < self.scale:
            self.skipped += 1


class RandomViews(torch.utils.data.Dataset):
    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        return [torch.randn(3, self.size, self.size, generator=g) for _ in range(2)], 0


def mixed_precision(s: dict) -> dict:
    out = {}
    for precision in ("bf16-mixed", "16-mixed"):
        if precision == "16-mixed" and s["device"] != "cuda":
            out[precision] = {"skipped_because": "16-mixed runs on CUDA only"}
            continue
        torch.manual_seed(0)
        batch = s["batch"]
        model = MINCModule(
            backbone(s["mp_backbone"], s["mp_image_size"]),
            batch_size=batch,
            num_classes=0,
            lr=0.2,
            warmup_epochs=0,
            **s["heads"],
        )
        data = DataLoader(
            RandomViews(batch * s["mp_steps"], s["mp_image_size"]),
            batch_size=batch,
            num_workers=s["workers"],
            drop_last=True,
        )
        watch = PrecisionWatch()
        trainer = quiet_trainer(
            s["device"], precision, max_epochs=1, callbacks=[watch], log_every_n_steps=10**6
        )
        trainer.fit(model, data)
        out[precision] = {
            "steps": len(watch.losses),
            "all_losses_finite": all(
                map(lambda x: x == x and abs(x) != float("inf"), watch.losses)
            ),
            "lambda_always_finite": all(watch.lambda_finite),
            "lambda_dtypes": sorted(watch.lambda_dtypes),
            "scaler_skipped_steps": watch.skipped,
            "first_loss": watch.losses[0],
            "last_loss": watch.losses[-1],
        }
        print(f"{precision}: {json.dumps(out[precision])}", flush=True)
    return out


# --- 4. the cost of Λ ------------------------------------------------------------------------
def lambda_scale(s: dict) -> dict:
    out = {}
    n, device = s["loss_n"], s["device"]
    for dim in s["loss_dims"]:
        minc = MINCLoss(dim, alpha=0.1).to(device)
        minc(torch.randn(n, dim, device=device), torch.randn(n, dim, device=device))
        m = measure(minc, n, dim, device, repeats=10)
        c = measure(SpectralContrastiveLoss(), n, dim, device, repeats=10)
        out[str(dim)] = {
            "n": n,
            "minc_ms": 1e3 * m["time"],
            "scl_ms": 1e3 * c["time"],
            "minc_peak_mib": m["peak"] and m["peak"] / 2**20,
            "scl_peak_mib": c["peak"] and c["peak"] / 2**20,
        }
        print(f"loss d={dim}: {json.dumps(out[str(dim)])}", flush=True)
    return out


# --- the summary -----------------------------------------------------------------------------
def verdict(name: str, value: float) -> str:
    op, bound = TARGETS[name]
    met = value <= bound if op == "<=" else value >= bound
    return f"{'meets' if met else 'misses'} the target {op} {bound}"


def gib(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def summary(results: dict) -> str:
    env, s = results["environment"], results["sizes"]
    lines = [
        f"Device: {env['device']}; torch {env['torch']}, lightning {env['lightning']}, "
        f"minc-lightning {env['minc_lightning']}; mode `{results['mode']}`; "
        f"{results['seconds']:.0f} s in all.",
        "",
        f"### Throughput: {s['backbone']}, {s['image_size']} px, bf16-mixed, batch {s['batch']} "
        f"(median of {s['steps']} steps after {s['warmup']})",
        "",
        "| variant | MINC img/s | BYOL img/s | bound img/s | MINC / BYOL (step time) | "
        "MINC / bound | MINC / allowed bound | peak GiB (MINC, BYOL, bound) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in results["throughput"].items():
        lines.append(
            f"| {name} | {row['minc']['images_per_s']:.0f} | {row['byol']['images_per_s']:.0f} | "
            f"{row['bound']['images_per_s']:.0f} | {row['minc / byol']:.3f} | "
            f"{row['minc / bound']:.3f} | {row['minc / allowed bound']:.3f} | "
            f"{gib(row['minc']['peak_gib'])}, {gib(row['byol']['peak_gib'])}, "
            f"{gib(row['bound']['peak_gib'])} |"
        )
    lines += ["", "Verdicts (rule: `TARGETS` in `ops/gpu_check.py`):", ""]
    for name, row in results["throughput"].items():
        for target in TARGETS:
            lines.append(
                f"- {name}: MINC / BYOL = {row['minc / byol']:.3f} {verdict(target, row[target])}"
                if target == "minc / byol"
                else f"- {name}: MINC / allowed bound = {row[target]:.3f} "
                f"{verdict(target, row[target])}"
            )
    data = results["data_path"]
    lines += [
        "",
        "### Data path",
        "",
        'Device side of `augment_on="device"`: '
        f"{1e3 * data['device_side']['seconds_per_batch']:.1f}"
        " ms per batch of 256 at 224 px.",
        "",
        "| `minc-lightning fit` on JPEGs | images | wall s | GPU util. mean % | median % |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in ("device", "loader"):
        f = data[f"fit_{mode}"]
        util = [
            ("–" if f[k] is None else f"{f[k]:.0f}") for k in ("gpu_util_mean", "gpu_util_median")
        ]
        lines.append(
            f"| augment_on={mode} | {f['images']} | {f['wall_s']:.1f} | {util[0]} | {util[1]} |"
        )
    lines += [
        "",
        f"### Mixed precision ({s['mp_backbone']}, {s['mp_image_size']} px, batch {s['batch']})",
        "",
        "| precision | steps | losses finite | Λ finite | Λ dtype | scaler-skipped steps |",
        "|---|---:|---|---|---|---:|",
    ]
    for precision, m in results["mixed_precision"].items():
        if "skipped_because" in m:
            lines.append(f"| {precision} | – | not run: {m['skipped_because']} | | | |")
            continue
        lines.append(
            f"| {precision} | {m['steps']} | {m['all_losses_finite']} | "
            f"{m['lambda_always_finite']} | {', '.join(m['lambda_dtypes'])} | "
            f"{m['scaler_skipped_steps']} |"
        )
    lines += [
        "",
        f"### The cost of Λ (N = {s['loss_n']}, forward + backward)",
        "",
        "| d | MINC ms | SCL ms | SCL / MINC | MINC peak MiB | SCL peak MiB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for dim, r in results["lambda_scale"].items():
        lines.append(
            f"| {dim} | {r['minc_ms']:.2f} | {r['scl_ms']:.2f} | "
            f"{r['scl_ms'] / r['minc_ms']:.1f}× | {gib(r['minc_peak_mib'])} | "
            f"{gib(r['scl_peak_mib'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes")
    parser.add_argument(
        "--parts", nargs="+", default=["throughput", "data_path", "mixed_precision", "lambda_scale"]
    )
    args = parser.parse_args()
    mode = "dry-run" if args.dry_run else "gpu"
    s = SIZES[mode]
    if mode == "gpu" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device; use --dry-run on a CPU")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_float32_matmul_precision("high")
    start = time.perf_counter()
    results: dict[str, Any] = {
        "mode": mode,
        "sizes": s,
        "environment": {
            "device": torch.cuda.get_device_name() if mode == "gpu" else "CPU",
            "torch": torch.__version__,
            "lightning": L.__version__,
            "minc_lightning": getattr(minc_lightning, "__version__", "source"),
            "threads": torch.get_num_threads(),
            "cuda": torch.version.cuda,
        },
    }
    parts = {
        "throughput": throughput,
        "data_path": data_path,
        "mixed_precision": mixed_precision,
        "lambda_scale": lambda_scale,
    }
    for name in args.parts:
        part_start = time.perf_counter()
        results[name] = parts[name](s)
        results.setdefault("part_seconds", {})[name] = time.perf_counter() - part_start
        results["seconds"] = time.perf_counter() - start
        (args.out / "results.json").write_text(json.dumps(results, indent=1))  # after each part
    if set(parts) <= set(args.parts):
        (args.out / "summary.md").write_text(summary(results))
        print(summary(results))
    print(f"gpu_check: {results['seconds']:.0f} s; results in {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
