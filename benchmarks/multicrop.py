"""Multi-crop at one recipe's budget: two views against 2 and 4 local views, with one predictor
shared by every view or a separate one for the local views (MULAN, arXiv 2602.05845).

Every run is the recipe's config (MINC, its lr, its EMAs) with only ``data.local_views``,
``model.local_predictor`` and the seed changed, scored as ``minc-lightning-eval`` scores (kNN
k=200 and linear, 100 epochs, on the config's training images as the bank and the validation
images). Local views cost compute, so two comparisons are reported:

* **equal epochs:** every variant trains the recipe's epochs;
* **equal training time:** two-view runs given as many optimizer steps as the mean training
  seconds of the N-local-view runs buy at the two-view runs' own pace (their schedule stretched
  to those steps), against those N-local-view runs.

Each run trains in a fresh process, so that its peak resident memory (the training process;
loader workers apart) is its own; training images per second and the load average at the end
are kept beside it, since a timing taken while the machine did other work is not a timing of
the run alone.

    python -m benchmarks.multicrop      # the quickstart: 21 runs, about 2 hours on 2 cores

Writes ``docs/data/multicrop_<config name>.json`` after every run (runs already there are kept,
not repeated, so an interrupted script continues where it stopped); ``benchmarks/report.py``
judges it in docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path
from statistics import mean

from benchmarks.common import CLI_HELP, DATA, ROOT
from benchmarks.runner import final_point, run_missing

VARIANTS = [(0, "none"), (2, "shared"), (4, "shared"), (2, "separate"), (4, "separate")]


def steps_per_epoch(config: dict, train_images: int) -> int:
    return train_images // config["data"]["batch_size"]  # drop_last


def time_matched_steps(runs: list[dict], local_views: int, epoch_steps: int) -> int:
    """Optimizer steps of a two-view run that take the mean training seconds of the
    ``local_views`` runs (both predictors, every seed), at the two-view runs' mean pace."""
    at_epochs = [r for r in runs if r["budget"] == "epochs"]
    two_view = [r for r in at_epochs if r["local_views"] == 0]
    multi = [r for r in at_epochs if r["local_views"] == local_views]
    seconds_per_step = mean(r["train_seconds"] / r["steps"] for r in two_view)
    return round(mean(r["train_seconds"] for r in multi) / seconds_per_step)


def train_one(setting: dict, config: Path, cli_args: list[str]) -> dict:
    """One run in this process (``--one``): the final point, steps, pace and peak memory."""
    run_dir = "_".join(f"{k}{v}" for k, v in setting.items())
    extra = [
        f"--data.local_views={setting['local_views']}",
        f"--seed_everything={setting['seed']}",
    ]
    if setting["local_views"]:
        extra.append(f"--model.local_predictor={setting['local_predictor']}")
    if setting["budget"] != "epochs":
        steps = setting["steps"]
        extra += [f"--trainer.max_steps={steps}", f"--trainer.max_epochs={setting['epochs']}"]
    # the budget last: a time-matched run's steps override the command line's epochs
    point = final_point(config, ROOT / "runs" / "multicrop" / run_dir, [*cli_args, *extra])
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return point | {"peak_rss_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=CLI_HELP)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a run in a fresh process, as JSON
    args, cli_args = parser.parse_known_args()  # the CLI checks the rest: --trainer.max_epochs=1
    if args.one:
        print("RESULT " + json.dumps(train_one(json.loads(args.one), args.config, cli_args)))
        return
    import yaml  # the parent only

    config = yaml.safe_load(args.config.read_text())
    out = args.out / f"multicrop_{args.config.stem}.json"

    def train(setting: dict) -> dict:
        command = [sys.executable, __file__, f"--config={args.config}", "--one"]
        done = subprocess.run(
            [*command, json.dumps(setting), *cli_args], stdout=subprocess.PIPE, text=True
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"the run {setting} failed (exit {done.returncode}); see above")
        point = json.loads(lines[-1].removeprefix("RESULT "))
        point["steps"] = setting.get("steps", epoch_steps * epochs)
        images = point["steps"] * config["data"]["batch_size"]
        point["images_per_s"] = images / point["train_seconds"]
        return point | {"load_average": os.getloadavg()[0], "cpus": os.cpu_count()}

    epochs = config["trainer"]["max_epochs"]
    epoch_steps = steps_per_epoch(config, config["data"]["train_subset"])
    for flag in cli_args:  # a changed budget on the command line
        key, _, value = flag.removeprefix("--").partition("=")
        if key == "trainer.max_epochs":
            epochs = int(value)
        if key == "data.train_subset":
            epoch_steps = steps_per_epoch(config, int(value))
    at_epochs = [
        {"budget": "epochs", "local_views": n, "local_predictor": head, "seed": seed}
        for seed in args.seeds  # seed by seed: an interrupted run leaves every variant comparable
        for n, head in VARIANTS
    ]
    runs = run_missing(out, at_epochs, train)
    matched = []
    for n in sorted({n for n, _ in VARIANTS if n}):
        steps = time_matched_steps(runs, n, epoch_steps)
        matched += [
            {
                "budget": f"time of {n} local views",
                "local_views": 0,
                "local_predictor": "none",
                "seed": seed,
                "steps": steps,
                "epochs": math.ceil(steps / epoch_steps),
            }
            for seed in args.seeds
        ]
    run_missing(out, matched, train)
    print(f"wrote {out}; python -m benchmarks.report judges it")


if __name__ == "__main__":
    main()
