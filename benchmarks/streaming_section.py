"""docs/results.md's section on shards (``benchmarks/streaming.py``): load, judge, render.

The loader table puts each source beside the JPEG folder in the same ``augment_on`` mode (and
each S3 source with added latency beside S3 without), the verdicts follow ``verdicts``' stated
thresholds, and the chunk-local order's accuracy is compared with the global order's, runs
paired by seed. ``report.py`` fills the template's ``streaming`` section with ``context``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from benchmarks.claims import SHARDS, Verdict
from benchmarks.verdicts import (
    CORE_MS_BOUND,
    FOLDER_PACE,
    LATENCY_HIDDEN,
    ORDER_MARGIN,
    at_least,
    at_most,
    order_unchanged,
)

FOLDER, S3 = "JPEG folder", "shards, S3 on 127.0.0.1"
DELAYED = ("shards, S3 + 20 ms a request", "shards, S3 + 50 ms a request")


def context(
    result: dict, order: dict, verdicts: list[Verdict], docs: Path, draw: callable
) -> dict | None:
    """The section's fields; ``draw(fig, name)`` saves a figure beside the page and returns
    its markdown."""
    loader = result.get("loader")
    if not loader:
        return None
    shard_verdicts = sorted(
        (v for v in verdicts if v.claim.key == SHARDS.key), key=lambda v: v.metric != "linear"
    )
    quick = result.get("quickstart", {}).get("runs", [])
    return {
        "setting": setting(result.get("setting")),
        "table": loader_table(loader),
        "figure": draw(loader_figure(loader), "streaming.png"),
        "speed_verdicts": "\n".join(f"- {line}" for line in speed_lines(loader, result)),
        "first_batch": first_batch_note(result.get("first_batch")),
        "order": order_note(order.get("runs", []), draw),
        "quick_table": table(
            ["trained from", "seed", "kNN top-1 (%)", "linear top-1 (%)"],
            "lrrr",
            [
                [r["source"], str(r["seed"]), f"{100 * r['knn']:.2f}", f"{100 * r['linear']:.2f}"]
                for r in quick
            ],
        )
        if quick
        else "Not run yet.",
        "verdicts": "\n".join(f"- {v.metric}: {v.line()}" for v in shard_verdicts)
        or "No verdict until both sources have run.",
        "load": f"{result['load_average'] / result['cpus']:.1f}",
    }


def table(header: list[str], align: str, rows: list[list[str]]) -> str:
    rule = "|" + "".join("---|" if a == "l" else "---:|" for a in align)
    lines = ["| " + " | ".join(header) + " |", rule]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def setting(setting: dict | None) -> str:
    if setting is None:
        return "The loader part's images, batch and workers are those `docs/benchmarks.md` states."
    text = (
        f"{setting['jpegs']:,} JPEGs, batches of {setting['batch_size']}, "
        f"{setting['workers']} loader workers for samples/s"
    )
    rounds = setting.get("repeats", 1)
    text += (
        f", the median of {rounds} rounds (in brackets: their range), each round timing every "
        "source in turn."
        if rounds > 1
        else "."
    )
    if "chunks" in setting:
        text += (
            f" The shards are {setting['chunks']} chunks of up to "
            f"{setting['largest_chunk_bytes'] / 1e6:.1f} MB; each reader of S3 may hold "
            f"{setting['cache_bytes'] / 1e6:.1f} MB (`data.cache_bytes`)."
        )
    return text


def modes(loader: dict) -> list[str]:
    return list(dict.fromkeys(key.split(" | ")[1] for key in loader))


def steady(m: dict) -> float:
    """Samples/s from the first batch on (the pace of a long epoch); files written before it was
    measured hold the whole epoch's only."""
    return m.get("steady_samples_per_s", m["samples_per_s"])


def spread(m: dict) -> str:
    """Samples/s from the first batch: the median, and the range over the rounds there were."""
    rounds = [r["steady_samples_per_s"] for r in m.get("rounds", [])]
    if len(rounds) < 2:
        return f"{steady(m):.0f}"
    return f"{steady(m):.0f} ({min(rounds):.0f}–{max(rounds):.0f})"


def loader_table(loader: dict) -> str:
    rows = []
    for key, m in loader.items():
        source, mode = key.split(" | ")
        folder, direct = loader[f"{FOLDER} | {mode}"], loader.get(f"{S3} | {mode}")
        vs_direct = "–"
        if source in DELAYED and direct:
            vs_direct = f"{steady(m) / steady(direct):.2f}×"
        first, peak = m.get("first_batch_s"), m.get("peak_cache_bytes")
        rows.append(
            [
                source,
                mode,
                f"{m['core_ms']:.2f}",
                f"{m['core_ms'] / folder['core_ms']:.2f}×",
                f"{m['samples_per_s']:.0f}",
                spread(m),
                f"{steady(m) / steady(folder):.2f}×",
                vs_direct,
                "–" if first is None else f"{first:.1f}",
                "–" if peak is None else f"{peak / 1e6:.1f}",
                "–" if m.get("server_core_ms") is None else f"{m['server_core_ms']:.2f}",
            ]
        )
    header = ["source", "`augment_on`", "loader core-ms per sample", "vs folder"]
    header += ["samples/s, whole epoch", "samples/s, from the first batch", "vs folder"]
    header += ["vs S3 without latency", "first batch (s)", "peak MB a reader"]
    header += ["S3 server core-ms per sample"]
    return table(header, "llrrrrrrrrr", rows)


def speed_lines(loader: dict, result: dict) -> list[str]:
    """The stated thresholds applied to the measured ratios, one line per claim."""
    if f"{S3} | {modes(loader)[0]}" not in loader:
        return []
    ms = modes(loader)
    pace = [steady(loader[f"{S3} | {m}"]) / steady(loader[f"{FOLDER} | {m}"]) for m in ms]
    cost = [loader[f"{S3} | {m}"]["core_ms"] / loader[f"{FOLDER} | {m}"]["core_ms"] for m in ms]
    lines = [
        f"S3 on 127.0.0.1 reads at the folder's pace: **{at_least(pace, FOLDER_PACE)}** "
        f"(samples/s from the first batch {', '.join(f'{r:.2f}×' for r in pace)} of the "
        f"folder's in {' / '.join(ms)} mode; rule: at least {FOLDER_PACE}× in each mode).",
        f"S3 costs the loader about what the folder does: **{at_most(cost, CORE_MS_BOUND)}** "
        f"(core-ms per sample {', '.join(f'{r:.2f}×' for r in cost)} of the folder's; rule: at "
        f"most {CORE_MS_BOUND}×).",
    ]
    delayed = [
        (
            source,
            m,
            steady(loader[f"{source} | {m}"]) / steady(loader[f"{S3} | {m}"]),
        )
        for source in DELAYED
        for m in ms
        if f"{source} | {m}" in loader
    ]
    if delayed:
        shown = ", ".join(f"{s.split('+ ')[1].split(' a')[0]} {m} {r:.2f}×" for s, m, r in delayed)
        lines.append(
            f"Latency is hidden by prefetch: **{at_least([r for *_, r in delayed], LATENCY_HIDDEN)}"
            f"** (samples/s from the first batch against S3 without added latency: {shown}; "
            f"rule: at least {LATENCY_HIDDEN}× each)."
        )
    served = [loader[f"{S3} | {m}"].get("server_core_ms") for m in ms]
    if all(v is not None for v in served):
        shares = [v / loader[f"{FOLDER} | {m}"]["core_ms"] for v, m in zip(served, ms, strict=True)]
        lines.append(
            f"Not a verdict, the cost no column above carries: the S3 server, on the same "
            f"cores as the workers, used {', '.join(f'{v:.2f}' for v in served)} core-ms per "
            f"sample ({' / '.join(ms)} mode), {', '.join(f'{r:.0%}' for r in shares)} of the "
            "folder's loader core-ms; a bucket elsewhere takes it off these cores."
        )
    bound = (result.get("setting") or {}).get("cache_bytes")
    peaks = [m["peak_cache_bytes"] for m in loader.values() if m.get("peak_cache_bytes")]
    if bound and peaks:
        lines.append(
            f"The cache stays within its bound: **{at_most([p / bound for p in peaks], 1.0)}** "
            f"(largest folder a reader held {max(peaks) / 1e6:.2f} MB of {bound / 1e6:.2f} MB, "
            "sampled every 5 ms)."
        )
    return lines


def loader_figure(loader: dict) -> plt.Figure:
    """Loader core-ms per sample and samples/s of each source, both augment_on modes."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(loader) + 1.5))
    sources = list(dict.fromkeys(key.split(" | ")[0] for key in loader))
    ys = np.arange(len(sources))
    for ax, metric, title in (
        (axes[0], lambda m: m["core_ms"], "loader core-ms per sample (lower is better)"),
        (axes[1], steady, "samples per second through the workers, from the first batch"),
    ):
        for i, mode in enumerate(modes(loader)):
            values = [metric(loader[f"{s} | {mode}"]) for s in sources]
            ax.barh(ys + 0.4 * i - 0.2, values, height=0.4, label=f"augment_on={mode}")
        ax.set(title=title)
        ax.set_yticks(ys, sources if ax is axes[0] else [])
        ax.invert_yaxis()
    axes[1].legend(loc="lower right")
    return fig


def first_batch_note(first: dict | None) -> str:
    if first is None:
        return "Time to the first batch on many files: not run yet (`--parts first_batch`)."
    labels = ("JPEG folder", "shards, local folder")
    rows = [[label, f"{first[label]:.1f}"] for label in labels]
    return (
        f"Time from `MINCDataModule(...)` to the first training batch, on a folder of "
        f"{first['files']:,} small JPEGs against its shards, file cache warm; the folder takes "
        f"{first[labels[0]] / first[labels[1]]:.1f}× the shards' time (`minc-lightning-prepare` "
        f"wrote the shards in {first['prepare_seconds']:.0f} s):\n\n"
        + table(["source", "seconds"], "lr", rows)
    )


def paired(runs: list[dict], metric: str) -> tuple[list[int], list[float], list[float]]:
    """(seeds, chunk-local scores, global scores) of the seeds run both ways."""
    by = {(r["order"], r["seed"]): r[metric] for r in runs}
    seeds = sorted(s for o, s in by if o == "chunks" and ("global", s) in by)
    return seeds, [by["chunks", s] for s in seeds], [by["global", s] for s in seeds]


def order_note(runs: list[dict], draw) -> str:
    """The chunk-local order against the global order: runs, verdict per metric, plot."""
    if not runs:
        return "The chunk-local order against the global order: not run yet (`--parts order`)."
    seeds, _, _ = paired(runs, "linear")
    rows = []
    for s in seeds:
        pair = {r["order"]: r for r in runs if r["seed"] == s}
        rows.append(
            [str(s)]
            + [f"{100 * pair[o][m]:.2f}" for m in ("linear", "knn") for o in ("chunks", "global")]
        )
    lines = []
    for metric in ("linear", "knn"):
        _, a, b = paired(runs, metric)
        verdict, ci = order_unchanged(a, b)
        lines.append(
            f"- {metric}: chunk-local − global {100 * ci.value:+.2f} points, 90% interval "
            f"[{100 * ci.low:+.2f}, {100 * ci.high:+.2f}] over {len(a)} paired seeds: "
            f"**{verdict}**"
        )
    fig, ax = plt.subplots(figsize=(5, 3))
    _, a, b = paired(runs, "linear")
    for s, x, y in zip(seeds, a, b, strict=True):
        ax.plot([0, 1], [100 * y, 100 * x], "o-", label=f"seed {s}")
    ax.set_xticks([0, 1], ["global order", "chunk-local order"])
    ax.set(ylabel="linear top-1 (%)", title="the same seed, both orders")
    ax.legend(fontsize=8)
    first = runs[0]
    header = ["seed", "linear, chunk-local", "linear, global", "kNN, chunk-local", "kNN, global"]
    return (
        f"The quickstart from shards in {first['chunks']} chunks (about "
        f"{20000 // first['chunks']} records each; a window of {first['window']} chunks holds "
        f"{100 * first['window'] / first['chunks']:.0f}% of the data), read in the chunk-local "
        "order and in the global order, the same seed both ways (`--parts order`, raw runs in "
        "`docs/data/streaming_order.json`; top-1 in %):\n\n"
        + table(header, "lrrrr", rows)
        + "\n\n"
        + draw(fig, "streaming_order.png")
        + "\n\n"
        + "\n".join(lines)
        + f"\n\nRule (`verdicts.order_unchanged`): the two one-sided tests at 5% against "
        f"±{100 * ORDER_MARGIN:.1f} points, over the per-seed differences (Student's t with "
        "seeds − 1 degrees of freedom): holds when the 90% interval lies inside the margin, "
        "does not hold when it lies wholly outside, else inconclusive."
    )
