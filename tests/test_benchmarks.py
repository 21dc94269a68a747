"""The exact benchmark's mathematics, and report verdicts that follow the numbers they are fed."""

import itertools
import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import (
    accuracy_section,
    claims,
    multicrop_section,
    page,
    rankme_section,
    report,
    rows,
    streaming_section,
    verdicts,
)
from benchmarks import spectral_exact as exact

# every result write_report would otherwise read from docs/data, empty: a test's page is its own
HERMETIC = {
    k: {}
    for k in (
        "recipes", "comparisons", "lambdas", "tuned", "multicrop", "streaming", "order",
        "rankme", "where_lambda", "estimators", "noise", "exact_alpha",
    )
}  # fmt: skip


@pytest.fixture(scope="module")
def graph():
    return exact.spectrum(exact.chain_of_clusters(nodes=60, clusters=3, density=0.5, seed=1))


def test_exact_objective_matches_a_monte_carlo_estimate(graph):
    F = torch.randn(graph.n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    n = 400_000
    x, xp = exact.sample_pairs(graph, n, g)  # positive pairs from P
    a = torch.multinomial(graph.d, n, replacement=True, generator=g)  # independent x, x'' ~ p
    b = torch.multinomial(graph.d, n, replacement=True, generator=g)
    positive = (F[x] * F[xp]).sum(1)
    pair = (F[a] * F[b]).sum(1).square()
    estimate = 2 * positive.mean() - pair.mean()
    se = math.sqrt(4 * positive.var() / n + pair.var() / n)
    assert abs(exact.population_objective(F, graph) - estimate.item()) < 4 * se


def test_sampled_pairs_follow_p(graph):
    x, xp = exact.sample_pairs(graph, 200_000, torch.Generator().manual_seed(0))
    counts = torch.zeros(graph.n, graph.n, dtype=torch.float64)
    counts.index_put_((x, xp), torch.ones(len(x), dtype=torch.float64), accumulate=True)
    assert torch.allclose(counts.sum(1) / len(x), graph.d, atol=3e-3)  # marginals
    assert (counts[graph.P == 0] == 0).all()  # never a pair P does not have


def test_eigenfunctions_attain_the_optimum_and_nothing_beats_it(graph):
    k = 3
    best = exact.optimal_embedding(graph, k)
    j_star = exact.optimum(graph, k)
    assert exact.population_objective(best, graph) == pytest.approx(j_star, rel=1e-9)
    rotation, _ = torch.linalg.qr(torch.randn(k, k, dtype=torch.float64))
    assert exact.population_objective(best @ rotation, graph) == pytest.approx(j_star, rel=1e-9)
    for seed in range(5):  # perturbations only lose
        noise = torch.randn(best.shape, generator=torch.Generator().manual_seed(seed))
        assert exact.population_objective(best + 0.05 * noise.double(), graph) < j_star
    assert torch.allclose(exact.alignment(best, graph, k), torch.ones(k, dtype=torch.float64))
    assert exact.principal_angles(best @ rotation, graph, k).max() < 1e-4
    assert exact.alignment(best @ rotation, graph, k).mean() < 0.999  # a rotation is unordered


def test_training_run_reports_a_curve_or_its_divergence(graph):
    ok = exact.train(graph, "minc_tril", batch=16, base_lr=4, seed=0, samples=4096, k=3, evals=4)
    assert ok["diverged_at"] is None and len(ok["curve"]) == 4
    assert 0 < ok["curve"][-1][1] <= 1 + 1e-9 and ok["final"] == ok["curve"][-1][1]
    assert ok["curve"][-1][1] > ok["curve"][0][1]  # it learns
    bad = exact.train(graph, "scl", batch=16, base_lr=1e4, seed=0, samples=4096, k=3, evals=4)
    assert bad["diverged_at"] is not None and math.isnan(bad["final"])


# --- verdicts ------------------------------------------------------------------------------
def test_compare_uses_a_t_interval_for_the_runs_there_are():
    assert verdicts.compare([1.0, 1.1, 0.9], [0.0, 0.1, -0.1]) == "ahead"
    assert verdicts.compare([0.0, 0.1, -0.1], [1.0, 1.1, 0.9]) == "behind"
    assert verdicts.compare([1.0, 2.0, 0.0], [0.9, 1.9, -0.1]) == "tie"
    assert verdicts.compare([1.0], [0.5]) == "tie"  # two single numbers cannot be told apart
    assert verdicts.compare([1.0, 1.01, 0.99], [0.5]) == "ahead"  # a deterministic baseline


def invented_exact(minc: dict, scl: dict, tril_align: float, full_align: float) -> dict:
    runs = []
    for objective, finals in (("minc_tril", minc), ("minc_full", minc), ("scl", scl)):
        for batch, values in finals.items():
            for seed, value in enumerate(values):
                align = tril_align if objective == "minc_tril" else full_align
                runs.append(
                    {
                        "objective": objective,
                        "batch": batch,
                        "seed": seed,
                        "final": value,
                        "diverged_at": None,
                        "alignment": [align + 0.01 * seed] * 2,
                        "angles": [1.0, 2.0],
                        "curve": [[1, value]],
                    }
                )
    return {"runs": runs}


def test_exact_verdicts_change_with_the_numbers():
    good = invented_exact(
        {8: [0.9, 0.91, 0.92], 64: [0.95, 0.96, 0.97]},
        {8: [0.5, 0.51, 0.52], 64: [0.6, 0.61, 0.62]},
        0.95,
        0.3,
    )
    v = claims.judge_exact(rows.exact_rows(good["runs"]))
    assert (v["every"][0], v["small_vs_large"][0], v["ordering"][0]) == ("holds",) * 3
    bad = invented_exact(
        {8: [0.5, 0.51, 0.52], 64: [0.6, 0.61, 0.62]},
        {8: [0.9, 0.91, 0.92], 64: [0.95, 0.96, 0.97]},
        0.3,
        0.95,
    )
    v = claims.judge_exact(rows.exact_rows(bad["runs"]))
    assert (v["every"][0], v["small_vs_large"][0], v["ordering"][0]) == ("does not hold",) * 3
    noisy = invented_exact(
        {8: [0.5, 0.9, 0.7], 64: [0.5, 0.9, 0.7]},
        {8: [0.6, 0.8, 0.7], 64: [0.6, 0.8, 0.7]},
        0.5,
        0.5,
    )
    v = claims.judge_exact(rows.exact_rows(noisy["runs"]))
    assert (v["every"][0], v["small_vs_large"][0], v["ordering"][0]) == ("inconclusive",) * 3


def invented_store(minc: float, spectral: float, byol: float, pixels: float) -> dict:
    store = {"baseline/pixels": {"knn": pixels, "linear": pixels}}
    for objective, acc in (("minc", minc), ("spectral", spectral), ("byol", byol)):
        for batch in (64, 256):
            for seed in range(3):
                value = acc + 0.001 * seed
                store[f"batch/{objective}/{batch}/{seed}"] = {
                    "objective": objective,
                    "batch_size": batch,
                    "seed": seed,
                    "knn": value,
                    "linear": value,
                }
    return store


def real_verdicts(store: dict) -> dict:
    return claims.judge_objectives(rows.sweep_rows(store), store.get("baseline/pixels"))


def test_real_data_verdicts_change_with_the_numbers():
    v = real_verdicts(invented_store(0.85, 0.80, 0.85, 0.83))
    assert [v[k][0] for k in ("every", "small_vs_large", "byol", "pixels")] == ["holds"] * 4
    v = real_verdicts(invented_store(0.75, 0.80, 0.85, 0.83))
    assert [v[k][0] for k in ("every", "small_vs_large", "byol", "pixels")] == ["does not hold"] * 4
    v = real_verdicts(invented_store(0.15, 0.10, 0.15, 0.83))  # collapsed
    assert v["byol"][0] == "does not hold"


def test_variance_and_lambda_verdicts_change_with_the_numbers():
    assert verdicts.claim_lower_variance({8: 1.0, 64: 0.5}, {8: 3.0, 64: 2.0}) == "holds"
    assert verdicts.claim_lower_variance({8: 1.0, 64: 2.5}, {8: 3.0, 64: 2.0}) == "does not hold"
    assert verdicts.claim_lower_variance({8: 1.0, 64: 1.9}, {8: 3.0, 64: 2.0}) == "inconclusive"
    on, off = (
        {"offdiag_ratio": 0.01, "diag_sorted": 0.9},
        {"offdiag_ratio": 0.2, "diag_sorted": 0.5},
    )
    assert verdicts.claim_lambda_diagonal(on, off) == "holds"
    assert verdicts.claim_lambda_diagonal(off, on) == "does not hold"


def test_the_short_runs_are_retired_from_the_page_though_still_judged(tmp_path):
    """reproduce.py's short runs end below the untrained network: they decide nothing, so the
    page shows neither their rows nor a claim judged on them."""
    store = invented_store(0.85, 0.80, 0.85, 0.83)
    report.write_report(store, tmp_path, **HERMETIC)
    page = (tmp_path / "results.md").read_text()
    assert "Fashion-MNIST, short runs" not in page and "| minc | 64 |" not in page
    ev = claims.Evidence(store, None, {}, {}, {}, {}, {}, {})
    assert any(v.evidence == rows.SHORT for v in claims.judge_all(ev))


def invented_comparison(minc: float, spectral: float, byol: float, pixels: float) -> dict:
    """objectives_at_budget.py's file: the runs, the first holding the baselines."""
    runs = [
        dict(r, train_seconds=200.0, wall_seconds=215.0)
        for r in invented_store(minc, spectral, byol, pixels).values()
        if "objective" in r
    ]
    runs[0]["baselines"] = {
        "pixels": {"knn": pixels, "linear": pixels},
        "random_init": {"knn": 0.5, "linear": 0.6},
    }
    return {"runs": runs}


def test_objective_comparison_verdicts_and_rows_follow_the_numbers(tmp_path):
    row = (
        "| MINC at the smallest batch beats SCL at the largest | Fashion-MNIST, `toy.yaml` budget |"
    )
    for (minc, pixels), verdict in (((0.85, 0.83), "holds"), ((0.75, 0.80), "does not hold")):
        comparison = invented_comparison(minc, 0.80, 0.85, pixels)
        report.write_report({}, tmp_path, **HERMETIC | {"comparisons": {"toy": comparison}})
        page = (tmp_path / "results.md").read_text()
        assert f"{row} **{verdict}** |" in page
        assert f"| raw pixels (784 values) | – | – | {100 * pixels:.2f} |" in page
        assert "| minc | 64 | 3.3 |" in page  # the cell's mean training minutes
    assert (tmp_path / "objectives_toy.png").is_file()


def invented_lambda(tril: tuple[float, float], full: tuple[float, float]) -> dict:
    """lambda_at_budget.py's file: (off-diagonal energy, ordered share) per ``triangular``."""
    runs = []
    for seed in range(3):
        for triangular, (offdiag, ordered) in ((True, tril), (False, full)):
            runs.append(
                {
                    "triangular": triangular,
                    "seed": seed,
                    "offdiag_ratio": offdiag + 0.002 * seed,
                    "diag_sorted": ordered + 0.01 * seed,
                    "knn": 0.7,
                    "linear": 0.8,
                    "wall_seconds": 200.0,
                }
            )
    return {"runs": runs}


def test_lambda_verdict_over_seeds_follows_the_numbers(tmp_path):
    def verdict(tril, full):
        return claims.judge_lambda(invented_lambda(tril, full))[0]

    assert verdict((0.1, 0.9), (0.9, 0.5)) == "holds"
    assert verdict((0.95, 0.5), (0.9, 0.5)) == "does not hold"  # more off-diagonal energy
    assert verdict((0.1, 0.3), (0.9, 0.5)) == "does not hold"  # a less ordered diagonal
    assert verdict((0.6, 0.9), (0.9, 0.5)) == "inconclusive"  # lower, but not under half
    assert verdict((0.9, 0.5), (0.9, 0.5)) == "inconclusive"  # within seed noise
    row = "| tril(Λ) drives Λ towards an ordered diagonal | Fashion-MNIST, `toy.yaml` budget |"
    for tril, expected in (((0.1, 0.9), "holds"), ((0.95, 0.5), "does not hold")):
        lambdas = {"toy": invented_lambda(tril, (0.9, 0.5))}
        report.write_report({}, tmp_path, **HERMETIC | {"lambdas": lambdas})
        assert f"{row} **{expected}** |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "lambda_toy.png").is_file()


def test_run_missing_trains_only_what_the_file_lacks(tmp_path):
    from benchmarks.runner import run_missing

    out, trained = tmp_path / "runs.json", []

    def train(setting: dict) -> dict:
        trained.append(setting)
        return {"linear": 0.5}

    settings = [{"objective": o, "seed": s} for o in ("minc", "byol") for s in (0, 1)]
    run_missing(out, settings[:3], train)
    runs = run_missing(out, settings, train)  # as after an interrupted run: only the last
    assert trained == [*settings[:3], settings[3]]
    assert [{k: r[k] for k in ("objective", "seed")} for r in runs] == settings
    assert json.loads(out.read_text())["runs"] == runs
    out.write_text('{"runs": [')  # cut short: stop, naming the file, and leave it as it was
    with pytest.raises(SystemExit, match="runs.json is not valid JSON"):
        run_missing(out, settings, train)
    assert out.read_text() == '{"runs": ['


def test_run_missing_makes_its_folder_before_training(tmp_path):
    """A run trained for minutes is not lost because the output folder did not exist."""
    from benchmarks.runner import run_missing

    out = tmp_path / "not" / "yet" / "runs.json"
    runs = run_missing(out, [{"seed": 0}], lambda setting: {"linear": 0.5})
    assert json.loads(out.read_text())["runs"] == runs == [{"seed": 0, "linear": 0.5}]
    assert [p.name for p in out.parent.iterdir()] == ["runs.json"]  # no partial file left


def test_lr_is_chosen_per_objective_and_batch_on_the_selection_seed_only():
    from benchmarks.objectives_at_budget import chosen_lrs

    def run(objective, batch, lr, seed, linear):
        return dict(objective=objective, batch_size=batch, lr=lr, seed=seed, linear=linear)

    runs = [
        run("minc", 64, 1.0, 100, 0.80),
        run("minc", 64, 2.0, 100, 0.82),
        run("minc", 64, 4.0, 100, 0.81),
        run("minc", 64, 4.0, 0, 0.99),  # a reported seed: never selects
        run("spectral", 64, 1.0, 100, 0.70),
        run("spectral", 64, 2.0, 100, 0.70),  # a tie: the smaller rate
        run("minc", 256, 4.0, 100, 0.85),
    ]
    assert chosen_lrs(runs, seed=100) == {
        ("minc", 64): 2.0,
        ("spectral", 64): 1.0,
        ("minc", 256): 4.0,
    }


def test_recipe_verdict_and_trend_follow_the_curve():
    rising = [
        {"train_seconds": 60 * m, "linear": a} for m, a in ((5, 0.80), (10, 0.82), (20, 0.84))
    ]
    assert verdicts.claim_beats_pixels(rising, 0.80, "linear", 60) == "holds"
    assert verdicts.claim_beats_pixels(rising, 0.86, "linear", 60) == "does not hold"
    assert verdicts.claim_beats_pixels(rising, 0.835, "linear", 60) == "inconclusive"
    assert verdicts.claim_beats_pixels(rising, 0.80, "linear", 4) == "inconclusive"  # none in time
    # +2 points per doubling of time: 0.86 is one doubling after 20 minutes
    assert verdicts.minutes_to_reach(rising, 0.86, "linear") == pytest.approx(40, rel=0.01)
    flat = [dict(p, linear=0.8) for p in rising]
    assert verdicts.minutes_to_reach(flat, 0.86, "linear") is None


def test_recipe_rows_follow_the_curve(tmp_path):
    def recipe(linear: float) -> dict:
        points = [
            {"epoch": e, "train_seconds": 600 * e, "knn": 0.5, "linear": linear + e / 100}
            for e in (1, 2, 4)
        ]
        return {
            "points": points,
            "threads": 2,
            "baselines": {
                "pixels": {"knn": 0.8, "linear": 0.8},
                "random_init": {"knn": 0.4, "linear": 0.7},
            },
        }

    row = (  # one row for the claim; its linear and kNN verdicts combined (kNN stays behind)
        "| (baseline) a 60-minute recipe beats the raw pixels | [Fashion-MNIST, one long run]"
        "(#a-longer-recipe-against-the-raw-pixels-configstoyyaml) |"
    )
    for linear, verdict in ((0.85, "inconclusive"), (0.70, "does not hold")):
        report.write_report({}, tmp_path, **HERMETIC | {"recipes": {"toy": recipe(linear)}})
        page = (tmp_path / "results.md").read_text()
        assert f"{row} **{verdict}** |" in page
    assert (tmp_path / "recipe_toy.png").is_file()


def test_data_path_verdicts_follow_the_numbers():
    from benchmarks import data_throughput as throughput

    def measured(loader_ms: float, device_ms: float) -> dict:
        jpeg = {"loader": loader_ms, "device": device_ms}
        return {"loader_ms_per_sample": {"32 px": {"loader": 1, "device": 1}, "224 px": jpeg}}

    def quick(loader: list[float], device: list[float], seconds: tuple[float, float]) -> dict:
        def runs(mode: str, accuracies: list[float], time: float) -> list[dict]:
            return [
                {"augment_on": mode, "knn": a, "linear": a, "train_seconds": time}
                for a in accuracies
            ]

        return {"runs": runs("loader", loader, seconds[0]) + runs("device", device, seconds[1])}

    lines = throughput.verdicts(measured(9.0, 2.0), quick([0.80, 0.81], [0.805, 0.815], (9, 7)))
    assert "4.5× (target ≥ 3×): met" in lines[0]
    assert all("equal within seed noise" in line for line in lines[1:3])
    assert lines[3].endswith("faster on the CPU: device")
    lines = throughput.verdicts(measured(5.0, 2.0), quick([0.80, 0.802], [0.75, 0.751], (7, 9)))
    assert "not met" in lines[0]
    assert all("differs" in line and "-5.0" in line for line in lines[1:3])
    assert lines[3].endswith("faster on the CPU: loader")


def test_quickstart_search_verdicts_follow_the_numbers():
    from benchmarks import quickstart_search as search

    def runs(variant: str, accuracies: list[float]) -> list[dict]:
        return [
            {"variant": variant, "seed": i, "knn": a, "linear": a, "train_seconds": 200.0}
            for i, a in enumerate(accuracies)
        ]

    base = runs("baseline", [0.80, 0.81])
    lines = search.summary(base + runs("a", [0.85, 0.851]) + runs("b", [0.805, 0.806]))
    assert lines[0].startswith("baseline: 200 s; knn 80.50 (80.00-81.00)")
    assert lines[1].count(": better") == 2
    assert lines[2].count("within seed noise") == 2
    assert lines[3] == "chosen: a (highest mean kNN and linear accuracy)"
    assert search.summary(base + runs("c", [0.70, 0.701]))[1].count(": worse") == 2


def test_loader_cost_leaves_torchs_thread_count_as_it_found_it():
    """It measures on one thread; the device-side figure measured after it must not run on
    some other count, nor on the inter-op count in place of the intra-op one."""
    from benchmarks import data_throughput as throughput

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        cost = throughput.loader_cost(images=64, jpegs=4, batch_size=2)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert all(set(modes) == {"loader", "device"} for modes in cost.values())


def test_benchmark_scripts_pass_unknown_arguments_to_the_cli(tmp_path, monkeypatch):
    """``--trainer.max_epochs=1`` goes to ``minc-lightning fit``, past the script's own parser."""
    from benchmarks import objectives_at_budget, recipe_curve

    calls = []

    def fake_point(config, run_dir, cli_args, baselines=False):
        calls.append((cli_args, baselines))
        return {"knn": 0.5, "linear": 0.5}

    monkeypatch.setattr(objectives_at_budget, "final_point", fake_point)
    argv = ["x", "--out", str(tmp_path), "--objectives", "minc", "byol", "--seeds", "0"]
    monkeypatch.setattr(sys, "argv", [*argv, "--batch_sizes", "64", "--trainer.max_epochs=1"])
    objectives_at_budget.main()
    runs = 2 * 3 + 2  # 2 objectives: 3 learning rates on the selection seed, then seed 0
    assert [c[0][-1] for c in calls] == ["--trainer.max_epochs=1"] * runs
    assert [c[1] for c in calls] == [True] + [False] * (runs - 1)  # the first scores baselines
    assert len(json.loads((tmp_path / "tuned_quickstart.json").read_text())["runs"]) == runs

    monkeypatch.setattr(recipe_curve, "fit_with_curve", lambda *a: calls.append(a))
    monkeypatch.setattr(sys, "argv", ["x", "--out", str(tmp_path), "--trainer.max_epochs=1"])
    recipe_curve.main()
    assert calls[-1][-1] == ["--trainer.max_epochs=1"]


def test_the_curve_scores_a_backbone_where_it_is(monkeypatch):
    """Scoring moves the backbone to the scoring device: a GPU run's backbone must not be moved
    to the CPU between epochs."""
    from benchmarks import runner

    devices = []
    monkeypatch.setattr(runner, "score", lambda net, dm, device, **kw: devices.append(device))
    runner.protocol_score(torch.nn.Linear(2, 2, device="meta"), None)
    runner.protocol_score(runner.Pixels(), None)
    assert [d.type for d in devices] == ["meta", "cpu"]


def test_reproduce_records_no_path_of_the_machine(tmp_path):
    """runs.json is committed: it keeps --out relative and other folders by name, never absolute
    paths."""
    import argparse

    from benchmarks import reproduce

    args = argparse.Namespace(
        out=reproduce.ROOT / "docs" / "data", root=tmp_path / "fmnist", seeds=3
    )
    assert reproduce.recorded(args) == {
        "out": "docs/data",
        "root": "fmnist",
        "seeds": "3",
    }


def test_the_results_page_names_the_machine_the_runs_recorded_not_this_process():
    """The page once said the thread count of whoever regenerated it: a developer with one torch
    thread got a page that differed from the committed one."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        recorded = {"args": {"device": "cpu"}, "machine": {"arch": "x86_64", "threads": 3}}
        assert accuracy_section.machine(recorded) == "x86_64 CPU (3 threads)"
        assert "threads were not recorded" in accuracy_section.machine({"args": {"device": "cpu"}})
        assert accuracy_section.machine({"args": {"device": "cuda"}}) == "one cuda device"
    finally:
        torch.set_num_threads(threads)


def test_the_curve_records_where_lambda_stands(tmp_path, monkeypatch):
    """A MINC run's point holds Λ's off-diagonal energy and ordered share; other objectives'
    points hold none."""
    from types import SimpleNamespace

    from benchmarks import runner
    from minc_lightning.loss import MINCLoss

    monkeypatch.setattr(runner, "protocol_score", lambda backbone, dm: {"knn": 0.5})
    criterion = MINCLoss(dim=3, alpha=0.1)
    criterion.second_moment.copy_(torch.tensor([[3.0, 1, 0], [1, 2, 0], [0, 0, 1]]))
    trainer = SimpleNamespace(current_epoch=0, max_epochs=1, datamodule=None)
    for loss in (criterion, torch.nn.MSELoss()):
        curve = runner.Curve([], tmp_path / "curve.json", {}, baselines=False)
        curve.on_train_epoch_end(trainer, SimpleNamespace(backbone=None, criterion=loss))
        points = curve.result["points"]
        if loss is criterion:  # off-diagonal 2 of 16; diagonal 3 > 2 > 1: in order
            assert points[0]["offdiag_ratio"] == pytest.approx(2 / 16)
            assert points[0]["diag_sorted"] == 1.0
        else:
            assert "offdiag_ratio" not in points[0]


def test_results_page_is_what_the_report_makes_of_the_committed_data(tmp_path):
    """docs/results.md is regenerated, never edited: the committed page equals report.py's for the
    committed data in docs/data (apart from the torch version the page was drawn with)."""
    data = Path(__file__).parents[1] / "docs" / "data"
    kinds = ("recipe", "objectives", "lambda", "tuned", "multicrop")
    store, exact = report.load(data / "runs.json"), report.load(data / "spectral_exact.json")
    named = [report.load_named(kind, data) for kind in kinds]
    report.write_report(store, tmp_path, exact or None, *named)
    torch_line = re.compile(r"torch \S+\.$", re.M)
    ours = torch_line.sub("", (tmp_path / "results.md").read_text())
    assert ours == torch_line.sub("", (data.parent / "results.md").read_text())


def invented_sensitivity(finals: dict[int, dict[float, list[float]]], predicted: dict) -> dict:
    runs = [
        {"batch": b, "alpha": rate, "final": value, "diverged_at": None}
        for b, by_rate in finals.items()
        for rate, values in by_rate.items()
        for value in values
    ]
    return {"runs": runs, "predicted": {str(b): p for b, p in predicted.items()}}


def test_the_rules_prediction_is_judged_against_the_best_rate():
    near = {0.01: [0.95, 0.951, 0.952], 0.1: [0.90, 0.901, 0.902], 1.0: [0.5, 0.51, 0.52]}
    far = {0.01: [0.5, 0.51, 0.52], 0.1: [0.90, 0.901, 0.902], 1.0: [0.95, 0.951, 0.952]}
    noisy = {0.01: [0.90, 0.95, 0.93], 0.1: [0.94, 0.92, 0.96], 1.0: [0.5, 0.51, 0.52]}
    (verdict, numbers), per = claims.judge_prediction(invented_sensitivity({8: near}, {8: 0.012}))
    assert verdict == "holds" and per[8] == dict(
        best=0.01, nearest=0.01, predicted=0.012, outcome="the best"
    )
    (verdict, _), per = claims.judge_prediction(
        invented_sensitivity({8: near, 512: far}, {8: 0.012, 512: 0.02})
    )
    assert verdict == "does not hold" and per[512]["outcome"] == "worse"  # 0.01 is far behind 1.0
    (verdict, _), per = claims.judge_prediction(invented_sensitivity({64: noisy}, {64: 0.012}))
    assert verdict == "holds" and per[64]["outcome"] == "within noise"


def test_tuned_comparison_leaves_the_selection_seed_out_of_every_verdict(tmp_path):
    from benchmarks.objectives_at_budget import SELECTION_SEED

    comparison = invented_comparison(0.85, 0.80, 0.85, 0.83)
    for r in comparison["runs"]:
        r["lr"] = 2.0
    for objective in ("minc", "spectral", "byol"):  # the selection seed: SCL far ahead of MINC
        for batch in (64, 256):
            for lr, linear in ((1.0, 0.5), (2.0, 0.99 if objective == "spectral" else 0.6)):
                comparison["runs"].append(
                    dict(
                        objective=objective,
                        batch_size=batch,
                        seed=SELECTION_SEED,
                        lr=lr,
                        knn=linear,
                        linear=linear,
                        train_seconds=100.0,
                        wall_seconds=120.0,
                    )
                )
    report.write_report({}, tmp_path, **HERMETIC | {"tuned": {"toy": comparison}})
    page = (tmp_path / "results.md").read_text()
    evidence = "Fashion-MNIST, `toy.yaml` budget, lr per objective"
    assert f"| MINC beats SCL at every batch size | {evidence} | **holds** |" in page
    assert "| spectral | 64 | 50.00 | **99.00** |" in page  # the selection seed chose lr 2
    assert "the table holds seeds 0, 1, 2" in page
    assert (tmp_path / "tuned_toy.png").is_file()


def test_a_diverged_run_loses_to_any_finished_one():
    finished, diverged = [0.90, 0.91, 0.92], [0.99, float("-inf"), 0.99]
    assert verdicts.compare(finished, diverged) == "ahead"
    assert verdicts.compare(diverged, finished) == "behind"
    assert verdicts.compare(diverged, diverged) == "tie"
    assert claims.pm(diverged, 1, 2) == "div (1/3), others 0.99 ± 0.00"
    assert claims.pm([0.8532], 100, 2) == "85.32"  # one run has no sd to show


def shard_runs(shards: list[float], files: list[float]) -> dict:
    """streaming.py's file with the invented quickstart scores of each source (both metrics)."""
    runs = [
        {"source": source, "seed": seed, "linear": value, "knn": value}
        for source, values in (("shards", shards), ("files", files))
        for seed, value in enumerate(values)
    ]
    return {"quickstart": {"runs": runs}}


@pytest.mark.parametrize(
    "shards, files, expected",
    [
        ([0.84], [0.84], "holds"),  # one run a side: equal reaches
        ([0.83], [0.84], "inconclusive"),  # one run a side: no noise to allow a lower score
        ([0.80, 0.81, 0.80], [0.84, 0.85, 0.84], "does not hold"),  # behind by over 2 SE
        ([0.83, 0.85, 0.84], [0.84, 0.85, 0.84], "holds"),  # within 2 SE
    ],
)
def test_the_shards_verdict_follows_the_numbers(shards, files, expected):
    verdicts = claims.judge_shards(shard_runs(shards, files))
    assert {v.metric: v.verdict for v in verdicts} == {"linear": expected, "knn": expected}
    assert [v.in_table for v in verdicts] == [True, False]  # the table shows linear
    assert claims.judge_shards({}) == []  # not run: no verdict


def streaming_section_of(result: dict, order: dict, verdicts, folder: Path) -> dict:
    return streaming_section.context(
        result, order, verdicts, folder, lambda fig, name: page.saved(fig, folder, name)
    )


def test_the_streaming_section_computes_its_ratios_from_the_file(tmp_path):
    loader = {
        f"{source} | {mode}": {"core_ms": cost, "samples_per_s": 1000 / cost}
        for source, factor in (("JPEG folder", 1.0), ("shards, local folder", 3.0))
        for mode, cost in (("loader", 10.0 * factor), ("device", 2.0 * factor))
    }
    result = shard_runs([0.8], [0.8]) | {"loader": loader, "cpus": 2, "load_average": 1.0}
    result["first_batch"] = {
        "files": 1000,
        "prepare_seconds": 3.0,
        "JPEG folder": 8.0,
        "shards, local folder": 2.0,
    }
    verdicts = claims.judge_shards(result)
    section = streaming_section_of(result, {}, verdicts, tmp_path)
    assert (
        "| shards, local folder | device | 6.00 | 3.00× | 167 | 167 | 0.33× | – | – | – |"
        in (section["table"])
    )
    assert "the folder takes 4.0× the shards' time" in section["first_batch"]
    assert (tmp_path / "streaming.png").is_file() and "**holds**" in section["verdicts"]
    assert "not run yet" in section["order"]
    del result["first_batch"], result["quickstart"]  # streaming.py --parts loader
    section = streaming_section_of(result, {}, [], tmp_path)
    assert "not run yet" in section["first_batch"] and section["quick_table"] == "Not run yet."


def s3_loader(s3_rate: float, s3_cost: float, delayed_rate: float, peak: int) -> dict:
    """Invented timings: the folder at 100 samples/s and 10 core-ms in both modes. The rates
    are those from the first batch on; over the whole epoch, S3's start-up halves them."""
    loader = {}
    for mode in ("loader", "device"):
        loader[f"JPEG folder | {mode}"] = {"core_ms": 10.0, "samples_per_s": 100.0}
        for source, rate in (("S3 on 127.0.0.1", s3_rate), ("S3 + 50 ms a request", delayed_rate)):
            loader[f"shards, {source} | {mode}"] = {
                "core_ms": s3_cost,
                "samples_per_s": rate / 2,
                "steady_samples_per_s": rate,
                "peak_cache_bytes": peak,
            }
    return loader


@pytest.mark.parametrize(
    "s3_rate, s3_cost, delayed_rate, peak, expected",
    [
        (95.0, 11.0, 80.0, 90, ["holds", "holds", "holds", "holds"]),
        (85.0, 11.0, 80.0, 90, ["does not hold", "holds", "holds", "holds"]),  # 0.85× the folder
        (95.0, 13.0, 80.0, 90, ["holds", "does not hold", "holds", "holds"]),  # 1.3× its cost
        (95.0, 11.0, 70.0, 90, ["holds", "holds", "does not hold", "holds"]),  # 0.74× of none
        (95.0, 11.0, 80.0, 101, ["holds", "holds", "holds", "does not hold"]),  # over the bound
    ],
)
def test_the_streaming_speed_verdicts_follow_their_thresholds(
    s3_rate, s3_cost, delayed_rate, peak, expected
):
    lines = streaming_section.speed_lines(
        s3_loader(s3_rate, s3_cost, delayed_rate, peak), {"setting": {"cache_bytes": 100}}
    )
    assert [line.split("**")[1] for line in lines] == expected


def test_the_order_note_pairs_seeds_and_applies_the_margin(tmp_path):
    def runs(shift: float) -> dict:
        base = {0: 0.80, 1: 0.83, 2: 0.78}  # seeds differ by points, pairs by 0.05 points
        out = [{"order": "global", "seed": s, "linear": v, "knn": v} for s, v in base.items()]
        for s, v in base.items():
            moved = v + shift + 0.0005 * (-1) ** s
            out.append({"order": "chunks", "seed": s, "linear": moved, "knn": moved})
        return {"runs": [r | {"chunks": 200, "window": 4} for r in out]}

    draw = lambda fig, name: page.saved(fig, tmp_path, name)  # noqa: E731
    assert "linear: chunk-local − global +0.02 points" in streaming_section.order_note(
        runs(0.0)["runs"], draw
    )
    assert "**holds**" in streaming_section.order_note(runs(0.0)["runs"], draw)
    assert "**does not hold**" in streaming_section.order_note(runs(-0.02)["runs"], draw)
    assert (tmp_path / "streaming_order.png").is_file()


def multicrop_runs(linear: dict[tuple, list[float]]) -> dict:
    """multicrop.py's file with the invented linear top-1 of each (budget, N, predictor)."""
    runs = []
    for (budget, n, head), scores in linear.items():
        for seed, value in enumerate(scores):
            runs.append(
                dict(budget=budget, local_views=n, local_predictor=head, seed=seed)
                | dict(linear=value, knn=value, train_seconds=60.0 * (1 + n / 4), steps=100)
                | dict(wall_seconds=90.0, images_per_s=100.0, peak_rss_mib=900.0)
            )
    return {"runs": runs}


def test_multicrop_verdicts_follow_the_numbers(tmp_path):
    high, low = [0.80, 0.81, 0.80], [0.70, 0.71, 0.70]
    result = multicrop_runs(
        {
            ("epochs", 0, "none"): low,
            ("epochs", 2, "separate"): high,
            ("epochs", 2, "shared"): low,
            ("time of 2 local views", 0, "none"): high,
        }
    )
    verdicts = claims.judge_multicrop(result, "quickstart")
    linear = {v.claim.table: v.verdict for v in verdicts if v.metric == "linear"}
    assert linear == {
        "(multi-crop) 2 local views with a separate local predictor beat two views, "
        "equal epochs": "holds",
        "(multi-crop) 2 local views with a separate local predictor beat two views, "
        "equal training time": "inconclusive",
        "(multi-crop) 2 local views with one shared predictor beat two views, "
        "equal epochs": "inconclusive",
        "(multi-crop) 2 local views with one shared predictor beat two views, "
        "equal training time": "does not hold",
        "(multi-crop) separate local predictors beat a shared one, 2 local views": "holds",
    }
    shown = {v.claim.key for v in verdicts if v.in_table}
    assert shown == {"multicrop", "separate"}
    ev = claims.Evidence(multicrop={"quickstart": result})
    context = multicrop_section.multicrop_context(
        result, "quickstart", claims.judge_all(ev), tmp_path
    )
    assert "| 2 local, separate predictors | 3 |" in context["table"]
    assert "**does not hold** (70.33 ± 0.58 vs 80.33 ± 0.58)" in context["verdicts"]
    assert (tmp_path / "multicrop_quickstart.png").is_file()


def test_the_better_local_predictor_is_the_higher_mean_over_every_multicrop_run():
    result = multicrop_runs(
        {
            ("epochs", 0, "none"): [0.99, 0.99],  # two views and time-matched runs do not count
            ("time of 2 local views", 0, "none"): [0.99],
            ("epochs", 2, "separate"): [0.80, 0.82],
            ("epochs", 4, "separate"): [0.70],  # mean of the three runs: 0.7733
            ("epochs", 2, "shared"): [0.75, 0.75],
            ("epochs", 4, "shared"): [0.80],  # 0.7667
        }
    )
    better, means = claims.better_local_predictor(result)
    assert better == "separate"
    assert means == pytest.approx({"separate": 0.77333, "shared": 0.76667}, abs=1e-5)
    note = multicrop_section.default_predictor_note(result)
    assert "separate 77.33, shared 76.67) is `separate`" in note
    assert claims.better_local_predictor(multicrop_runs({("epochs", 2, "shared"): [0.8]})) is None


def test_time_matched_steps_buy_the_multicrop_runs_seconds_at_the_two_view_pace():
    from benchmarks import multicrop

    runs = [
        dict(budget="epochs", local_views=0, train_seconds=100.0, steps=50),  # 2 s per step
        dict(budget="epochs", local_views=0, train_seconds=120.0, steps=50),  # 2.4
        dict(budget="epochs", local_views=4, train_seconds=330.0, steps=50),
        dict(budget="epochs", local_views=4, train_seconds=330.0, steps=50),
        dict(budget="time of 4 local views", local_views=0, train_seconds=1.0, steps=1),
    ]
    assert multicrop.time_matched_steps(runs, 4, epoch_steps=50) == 150  # 330 s / 2.2 s


def test_runs_that_share_seeds_are_compared_pair_by_pair():
    base = [80.0, 82.5, 78.0, 81.0, 79.5]  # seeds differ by points; MINC leads each by ~0.3
    lead = [x + 0.3 + 0.02 * (-1) ** i for i, x in enumerate(base)]
    seeds = [0, 1, 2, 3, 4]
    assert verdicts.compare(lead, base) == "tie"  # unpaired: the seeds' spread hides it
    a, b = verdicts.Sample(lead, seeds), verdicts.Sample(base[::-1], seeds[::-1])
    assert verdicts.compare(a, b) == "ahead"  # paired by seed, whatever the order
    assert verdicts.difference(a, b).paired
    other = verdicts.Sample(base, [5, 6, 7, 8, 9])  # other seeds: no pairing
    assert not verdicts.difference(a, other).paired


def test_a_claim_at_every_batch_divides_the_level_among_the_batches():
    a = {n: verdicts.Sample([1.0, 1.2, 1.1], [0, 1, 2]) for n in (8, 64)}
    b = {n: verdicts.Sample([0.7, 1.1, 0.9], [0, 1, 2]) for n in (8, 64)}  # t = 3.46, dof 2
    assert verdicts.compare(a[8], b[8]) == "ahead"  # alone, at 5%: ahead
    assert verdicts.claim_every_batch(a, b)[0] == verdicts.UNSURE  # at 2.5% each: a tie


def test_close_to_byol_needs_the_difference_inside_a_stated_margin():
    seeds = [0, 1, 2, 3, 4]
    byol = {64: verdicts.Sample([0.80, 0.83, 0.78, 0.81, 0.79], seeds)}
    near = {64: verdicts.Sample([v + 0.001 * (-1) ** i for i, v in enumerate(byol[64])], seeds)}
    far = {
        64: verdicts.Sample([v - 0.03 + 0.001 * (-1) ** i for i, v in enumerate(byol[64])], seeds)
    }
    assert verdicts.claim_close_to_byol(near, byol) == verdicts.HOLDS
    assert verdicts.claim_close_to_byol(far, byol) == verdicts.FAILS
    unpaired = {64: list(near[64])}  # without seeds the spread hides the answer
    assert verdicts.claim_close_to_byol(unpaired, byol) == verdicts.UNSURE


def test_equivalence_follows_the_interval_on_data_whose_answer_is_known():
    base = [80.0, 82.5, 78.0, 81.0, 79.5]  # seeds differ by points; the pairs by 0.05
    near = [x + 0.05 * (-1) ** i for i, x in enumerate(base)]
    far = [x - 2.0 + 0.05 * (-1) ** i for i, x in enumerate(base)]
    assert verdicts.equivalence(near, base, margin=0.5, paired=True)[0] == verdicts.EQUIVALENT
    assert verdicts.equivalence(far, base, margin=0.5, paired=True)[0] == verdicts.DIFFERENT
    # unpaired, the seeds' spread hides both: neither can be decided from 5 runs
    assert verdicts.equivalence(near, base, margin=0.5, paired=False)[0] == verdicts.UNSURE
    assert verdicts.equivalence(far, base, margin=0.5, paired=False)[0] == verdicts.UNSURE
    # one run a side decides nothing
    assert verdicts.equivalence([1.0], [1.0], margin=0.5, paired=True)[0] == verdicts.UNSURE


def test_the_interval_uses_t_for_the_seed_count():
    d = [0.0, 1.0, 2.0]  # mean 1, sd 1, se 1/sqrt(3); t(0.95, 2) = 2.919986
    ci = verdicts.interval(d, [0.0, 0.0, 0.0], paired=True)
    assert ci.dof == 2 and abs(ci.high - ci.value - 2.919986 / 3**0.5) < 1e-5
    wide = verdicts.interval(d, [0.0] * 3, paired=True, alpha=verdicts.corrected(0.05, 3))
    assert wide.high - wide.low > ci.high - ci.low  # three claims at once: a wider interval


def rankme_runs(link: float, objectives=("minc", "byol", "spectral")) -> list[dict]:
    """Invented runs: linear top-1 spread over settings; rankme = link × that spread plus a
    fixed wobble (link 1: the same ranking, -1: reversed)."""
    out = []
    for j, objective in enumerate(objectives):
        for i in range(4):
            linear = 0.6 + 0.02 * (4 * j + i)
            wobble = 0.3 * (-1) ** i
            out.append(
                {"objective": objective, "lr": 0.5 * (i + 1), "seed": i % 2, "linear": linear}
                | {"knn": linear, "rankme": 20 + link * 100 * (linear - 0.6) + wobble}
            )
    return out


@pytest.mark.parametrize("link, expected", [(1.0, "holds"), (-1.0, "does not hold")])
def test_the_rankme_verdict_follows_spearman_and_its_threshold(link, expected):
    lines = rankme_section.lines(rankme_runs(link))
    assert lines[0].split("**")[1] == expected
    assert ("the same order" in lines[-1]) == (link > 0)


def test_too_few_runs_decide_nothing_and_an_objective_rankme_misorders_is_said(tmp_path):
    few = rankme_runs(1.0)[:3]
    assert rankme_section.lines(few)[0].split("**")[1] == "inconclusive"
    runs = rankme_runs(1.0)
    for r in runs:  # byol's runs score the highest RankMe, yet sit in the middle on accuracy
        if r["objective"] == "byol":
            r["rankme"] += 100
    assert "does not tell these methods apart" in rankme_section.lines(runs)[-1]
    draw = lambda fig, name: page.saved(fig, tmp_path, name)  # noqa: E731
    section = rankme_section.context({"runs": runs}, draw)
    assert section["count"] == "12" and (tmp_path / "rankme_selection.png").is_file()
    assert rankme_section.context({"runs": []}, draw) is None


def test_a_streaming_row_is_the_median_of_its_rounds_with_their_range_shown():
    from benchmarks import streaming

    rounds = [
        {"samples_per_s": r, "steady_samples_per_s": r + 5, "first_batch_s": 1.0, "peak": None}
        for r in (100.0, 300.0, 120.0)
    ]
    for i, r in enumerate(rounds):
        r["peak_cache_bytes"] = [5, 9, None][i]
        del r["peak"]
    row = {"core_ms": 2.0, "rounds": rounds} | streaming.summary(rounds)
    assert row["samples_per_s"] == 120.0 and row["steady_samples_per_s"] == 125.0
    assert row["peak_cache_bytes"] == 9  # the largest a reader ever held
    assert streaming_section.spread(row) == "125 (105–305)"


def test_the_s3_servers_own_cpu_is_said_beside_the_verdicts_not_as_one():
    loader = s3_loader(95.0, 11.0, 80.0, 90)
    for mode, served in (("loader", 2.0), ("device", 1.0)):
        loader[f"shards, S3 on 127.0.0.1 | {mode}"]["server_core_ms"] = served
    lines = streaming_section.speed_lines(loader, {"setting": {"cache_bytes": 100}})
    said = [line for line in lines if "S3 server" in line]
    assert said == [line for line in lines if "**" not in line] and len(said) == 1
    assert "used 2.00, 1.00 core-ms per sample" in said[0] and "20%, 10% of the folder" in said[0]


def _tune(
    estimator: str, accuracy, batch: int = 64, runs: list[dict] | None = None
) -> tuple[list[dict], dict]:
    """Drive ``estimators.selection`` to its end on invented accuracies, as the script does."""
    from benchmarks import estimators

    runs = [] if runs is None else runs
    for _ in range(40):
        todo, chosen = estimators.selection(runs, estimator, batch)
        if not todo:
            return runs, chosen
        runs += [s | {"linear": accuracy(s)} for s in todo]
    raise AssertionError("tuning did not end")


@pytest.mark.parametrize("peak", [1 / 8, 2.0, 16.0])
def test_the_chosen_lr_lies_inside_the_grid_it_was_chosen_from(peak):
    runs, chosen = _tune("byol", lambda s: 0.8 - abs(math.log2(s["lr"] / peak)) / 100)
    assert chosen == {"lr": peak}
    tried = sorted(r["lr"] for r in runs)
    assert tried[0] < chosen["lr"] < tried[-1]


def test_another_batch_tunes_from_batch_64s_setting_and_still_brackets_its_own_lr():
    """Batch 256 waits for batch 64's tuning, then starts at its setting (mu, alpha) and its
    lr's two neighbours, and still moves lr, mu and alpha wherever its own optimum lies."""
    from benchmarks import estimators

    assert estimators.selection([], "minc", 256) == ([], None)  # nothing before 64 is tuned

    def accuracy(s: dict) -> float:  # 64: best at lr 4, alpha 0.1; 256: lr 32, alpha 1
        peak, alpha = (4.0, 0.1) if s["batch_size"] == 64 else (32.0, 1.0)
        return 0.8 - abs(math.log2(s["lr"] / peak)) / 100 - (s["alpha"] != alpha) / 1000

    at_64, chosen_64 = _tune("minc", accuracy)
    assert chosen_64 == {"lr": 4.0, "mu": 1.0, "alpha": 0.1}
    runs, chosen = _tune("minc", accuracy, 256, list(at_64))
    at_256 = [r for r in runs if r["batch_size"] == 256]
    assert [r["lr"] for r in at_256[:3]] == [2.0, 4.0, 8.0]  # batch 64's rate and neighbours
    assert at_256[0]["alpha"] == 0.1  # at batch 64's alpha
    assert chosen == {"lr": 32.0, "mu": 1.0, "alpha": 1.0}
    tried = sorted({r["lr"] for r in at_256 if r["alpha"] == 1.0})
    assert tried[0] < chosen["lr"] < tried[-1]


def test_the_carried_setting_is_reported_at_every_batch_before_other_cells_are_tuned(
    monkeypatch, tmp_path
):
    """An interrupted study already compares the estimators at each batch: after batch 64's
    tuning, its setting's fresh seeds run at every batch, and only then the other cells tune."""
    from benchmarks import estimators

    trained = []

    def fake_point(config, run_dir, cli_args):
        trained.append(run_dir.name)
        lr = float(next(a for a in cli_args if a.startswith("--model.lr=")).split("=")[1])
        return {"linear": 0.8 - abs(math.log2(lr / 2.0)) / 100, "knn": 0.7}

    monkeypatch.setattr(estimators, "final_point", fake_point)
    out = tmp_path / "estimators.json"
    argv = ["estimators", "--estimators", "byol", "--batch_sizes", "64", "256", "--seeds", "0"]
    paths = ["--out", str(out), "--run_dir", str(tmp_path), "--take_over", str(tmp_path / "none")]
    monkeypatch.setattr(sys, "argv", [*argv, *paths])
    estimators.main()
    order = [(("seed100" in n), ("batch_size256" in n)) for n in trained]
    first_256_selection = order.index((True, True))
    assert (False, True) in order[:first_256_selection]  # batch 256's carried run came first
    runs = json.loads(out.read_text())["runs"]
    assert {(r["batch_size"], r["seed"], r["lr"]) for r in runs if r["seed"] == 0} == {
        (64, 0, 2.0),
        (256, 0, 2.0),
    }


@pytest.mark.parametrize(
    "minc, byol, scl, close",
    [
        ((0.85, 0.86, 0.84), (0.85, 0.86, 0.84), (0.80, 0.81, 0.79), False),  # decided
        ((0.85, 0.86, 0.84), (0.85, 0.86, 0.84), (0.86, 0.84, 0.85), True),  # MINC-SCL ties
        ((0.85, 0.80, 0.88), (0.84, 0.83, 0.86), (0.70, 0.71, 0.69), True),  # BYOL: wide
        ((0.85, 0.86, 0.84), (0.80, 0.81, 0.79), (0.70, 0.71, 0.69), False),  # BYOL: apart
        # MINC − BYOL told apart from 0 but not from the 1-point margin: the claims stay open
        ((0.852, 0.860, 0.848), (0.840, 0.849, 0.835), (0.70, 0.71, 0.69), True),
        # MINC behind SCL at ALPHA, a tie at ALPHA / 3: the "every batch" claim's own rule
        ((0.85, 0.86, 0.84), (0.85, 0.86, 0.84), (0.855, 0.870, 0.855), True),
    ],
)
def test_more_seeds_go_where_the_first_three_leave_a_comparison_open(minc, byol, scl, close):
    from benchmarks import estimators

    chosen = {e: {"lr": 2.0} for e in estimators.ESTIMATORS}
    runs = [
        {"estimator": e, "batch_size": 64, "seed": seed, "lr": 2.0, "linear": value}
        for e, values in (("minc", minc), ("byol", byol), ("scl", scl))
        for seed, value in enumerate(values)
    ]
    assert estimators.undecided(runs, 64, chosen) is close
    assert estimators.undecided(runs, 256, chosen) is False  # no seeds there yet


def test_mu_and_alpha_are_tuned_where_the_estimator_has_them_and_lr_bracketed_again():
    def accuracy(s):  # best at lr 4 with alpha 0.1, at lr 8 with alpha 0.01; mu 16 worse
        peak = 8.0 if s.get("alpha") == 0.01 else 4.0
        return 0.8 - abs(math.log2(s["lr"] / peak)) / 100 + 0.02 * (s.get("alpha") == 0.01)

    runs, chosen = _tune("minc", accuracy)
    assert chosen == {"lr": 8.0, "mu": 1.0, "alpha": 0.01}
    assert {r["lr"] for r in runs if r["alpha"] == 0.01} >= {4.0, 8.0, 16.0}  # bracketed again
    assert {r["seed"] for r in runs} == {100}  # only the selection seed tunes
    moment_runs, moment = _tune("batch_moment", accuracy)
    assert "alpha" not in moment and all("alpha" not in r for r in moment_runs)


def test_the_older_comparison_is_taken_over_as_this_studys_settings(tmp_path):
    from benchmarks import estimators

    old = {"objective": "spectral", "batch_size": 64, "seed": 0, "lr": 4.0, "linear": 0.84}
    (tmp_path / "old.json").write_text(json.dumps({"runs": [old]}))
    [run] = estimators.taken_over(tmp_path / "old.json")
    assert run == {
        "estimator": "scl",
        "batch_size": 64,
        "seed": 0,
        "lr": 4.0,
        "mu": 1.0,
        "linear": 0.84,
        "from": "old.json",
    }
    assert estimators.arguments(run)[-2:] == ["--model.lr=4.0", "--model.mu=1.0"]


def _lambda_run(triangular: bool, mu, linear: float, offdiag: float, sorted_: float, **kw) -> dict:
    run = {
        "objective": "minc", "mu": mu, "triangular": triangular, "alpha": 0.1,
        "use_predictor": True, "seed": 0, "linear": linear, "knn": 0.75, "diverged": False,
        "pull_ratio": 0.1, "participation": 5.0, "top4_share": 0.8, "offdiag_ratio": offdiag,
        "diag_sorted": sorted_, "diagonal": [3.0, 2.0, 1.0],
    }  # fmt: skip
    return run | kw


@pytest.mark.parametrize("ordered_linear, default_moves", [(0.85, True), (0.835, False)])
def test_a_setting_becomes_the_default_only_if_tril_orders_lambda_there_as_accurately(
    ordered_linear, default_moves
):
    from benchmarks import where_lambda_section as section

    byol = {"objective": "byol", "linear": 0.84, "knn": 0.75, "diverged": False}
    runs = [
        byol,
        _lambda_run(True, 1.0, 0.84, 0.94, 0.48),  # shipped: unordered
        _lambda_run(False, 1.0, 0.84, 0.94, 0.49),
        _lambda_run(True, 16.0, ordered_linear, 0.2, 0.9),  # ordered
        _lambda_run(False, 16.0, 0.84, 0.9, 0.5),
    ]
    assert [section.orders(t, f) for t, f in section.pairs(runs)] == [
        verdicts.FAILS,
        verdicts.HOLDS,
    ]
    text = section.decision(runs)
    assert ("becomes the default" in text) == default_moves
    assert ("mu 16" in text) == default_moves or "orders Λ only at mu 16" in text
    assert section.versus_byol(runs[3], byol) == ("better" if default_moves else "not told apart")
    worse_knn = runs[1] | {"knn": 0.70}
    assert section.versus_byol(worse_knn, byol) == "worse"
    assert section.versus_byol(worse_knn | {"linear": 0.9}, byol) == "mixed"


def test_relative_noise_recovers_a_known_signal_to_noise_ratio():
    from benchmarks.gradient_noise import relative_noise

    g = torch.Generator().manual_seed(0)
    mean = torch.ones(50, dtype=torch.float64)  # ‖ḡ‖² = 50
    grads = mean + 2.0 * torch.randn(4000, 50, generator=g, dtype=torch.float64)  # E‖ε‖² = 200
    exact = relative_noise(grads, mean)
    assert exact["relative"] == pytest.approx(4.0, rel=0.03)
    own = relative_noise(grads[:8])  # the sample mean's own noise is taken out of its norm
    assert 1.0 < own["relative"] < 16.0
    many = [relative_noise(grads[i : i + 8])["signal"] for i in range(0, 4000, 8)]
    assert sum(many) / len(many) == pytest.approx(50.0, rel=0.1)  # unbiased for ‖ḡ‖²


@pytest.mark.parametrize("estimator", ["scl", "minc_tril", "batch_moment"])
def test_each_estimators_gradient_averages_to_its_exact_mean_field(graph, estimator):
    """SCL's batch gradient is −∇J on average, MINC's −∇J/2 with Λ (or tril(Λ)) in place of
    FᵀDF: the closed forms the exact noise is measured against."""
    from benchmarks import gradient_noise as noise

    F = 0.3 * torch.randn(graph.n, 3, generator=torch.Generator().manual_seed(0))
    grads = noise.exact_gradients(graph, F, estimator, 256, 0.1, 1500, seed=0)
    field = noise.mean_field(F, graph, estimator).flatten()
    error = (grads.double().mean(0) - field).norm() / field.norm()
    assert error < 0.05  # the remaining Monte Carlo error of 1500 batches (and the batch moment)
    if estimator == "scl":  # and SCL's field is the exact gradient of −J
        F64 = F.double().requires_grad_()
        pair_term = (F64.T @ (graph.d[:, None] * F64)).square().sum()
        J = 2 * torch.trace(F64.T @ graph.P @ F64) - pair_term
        (dJ,) = torch.autograd.grad(J, F64)
        assert torch.allclose(field, -dJ.flatten(), rtol=1e-9, atol=1e-12)


def test_alpha_is_tuned_per_cell_with_lr_bracketed_around_the_best_pair():
    from benchmarks import exact_alpha

    def run(lr, alpha, final):
        return {"objective": "minc_tril", "batch": 8, "base_lr": lr, "alpha_per_256": alpha,
                "seed": 1000, "final": final}  # fmt: skip

    runs = [run(lr, a, 0.5) for lr in (4, 8, 16) for a in exact_alpha.ALPHAS[:-1]]
    assert exact_alpha.todo(runs, "minc_tril", 8, 8) == [(lr, 1.0) for lr in (4, 8, 16)]
    runs += [run(lr, 1.0, 0.6 + lr / 100) for lr in (4, 8, 16)]  # best: alpha 1 at the top lr
    assert exact_alpha.todo(runs, "minc_tril", 8, 8) == [(32, 1.0)]
    runs.append(run(32, 1.0, 0.1))  # now inside its grid
    assert exact_alpha.todo(runs, "minc_tril", 8, 8) == []
    assert exact_alpha.todo(runs, "minc_full", 8, 8)  # another cell is tuned on its own


def test_the_claims_table_has_one_row_per_claim_decided_by_the_most_controlled_evidence():
    from benchmarks.claims import EVERY, Verdict

    verdicts_ = [
        Verdict(EVERY, "Fashion-MNIST, `quickstart.yaml` budget, lr per objective", "holds", "a"),
        Verdict(EVERY, "exact objective", "does not hold", "b"),
        Verdict(EVERY, rows.SHORT, "holds", "c"),  # retired: never shown
    ]
    table = report.claims_context(verdicts_, {"exact": "the-exact-section"})["rows"]
    assert table.count("\n") == 0  # one row
    assert "[exact objective](#the-exact-section) | **does not hold** | b |" in table
    assert "lr per objective: holds" in table and "short runs" not in table
    assert len(report.DECIDERS) <= 12


def _estimator_runs(minc_gap: float) -> list[dict]:
    """Invented estimators.json: every cell tuned at lr 2 on the selection seed (a bracket of
    1, 2, 4 and the defaults' neighbours), fresh seeds 0-2 whose MINC leads SCL by ``minc_gap``."""
    from benchmarks import estimators

    runs = []
    for estimator, batch in itertools.product(estimators.ESTIMATORS, (32, 64, 256)):

        def add(seed, lr, linear, estimator=estimator, batch=batch, **values):
            runs.append(
                estimators.setting(estimator, batch, seed, lr, **values) | {"linear": linear}
            )

        for lr in (1.0, 2.0, 4.0):
            add(100, lr, 0.8 - abs(lr - 2.0) / 100)
        add(100, 2.0, 0.7, mu=16.0)
        if estimator == "minc":
            add(100, 2.0, 0.7, alpha=0.01)
            add(100, 2.0, 0.7, alpha=1.0)
        base = {"minc": 0.80 + minc_gap, "scl": 0.80, "byol": 0.80 + minc_gap, "batch_moment": 0.8}
        for seed in range(3):
            add(seed, 2.0, base[estimator] + 0.003 * seed)
    return runs


@pytest.mark.parametrize("gap, every", [(0.02, "holds"), (-0.02, "does not hold")])
def test_the_estimators_verdicts_follow_their_fresh_seeds(gap, every):
    from benchmarks import estimators_section as section

    found = {v.claim.key: v for v in section.verdicts({"runs": _estimator_runs(gap)})}
    assert found["every"].verdict == every
    assert found["byol"].verdict == "holds"  # MINC and BYOL equal seed for seed
    assert found["lambda_acts"].verdict == "does not hold"  # so Λ's term made no difference
    assert {v.evidence for v in found.values()} == {section.CARRIED}  # the last of each claim
    assert len(section.verdicts({"runs": _estimator_runs(gap)})) == 8  # 4 claims, both ways
    short = section.verdicts({"runs": _estimator_runs(gap)[:-3]})  # SCL at 256 not yet run
    assert "every" not in {v.claim.key for v in short} and "byol" in {v.claim.key for v in short}


def test_the_carried_setting_is_judged_at_a_batch_whose_own_tuning_has_not_run():
    """The study runs batch 64's setting at every batch before tuning the others: those runs are
    judged as carried evidence at once, and per-cell evidence waits for the cells' tuning."""
    from benchmarks import estimators
    from benchmarks import estimators_section as section

    untuned = [
        r
        for r in _estimator_runs(0.02)
        if r["batch_size"] == 64 or r["seed"] != estimators.SELECTION_SEED
    ]
    evidence = {(v.claim.key, v.evidence) for v in section.verdicts({"runs": untuned})}
    assert ("every", section.CARRIED) in evidence and ("every", section.EVIDENCE) not in evidence
    assert set(section.grid(untuned, "carried")["minc"]) == {32, 64, 256}
    assert set(section.grid(untuned, "tuned")["minc"]) == {64}


def test_the_noise_verdict_pairs_seeds_and_points():
    from benchmarks import noise_section

    def exact(minc_factor: float) -> list[dict]:
        out = []
        for seed, fraction, batch in itertools.product(range(3), (0.0, 0.5), (32, 256)):
            scl = 10.0 * (1 + seed) * (1 + fraction)  # seeds and points differ a lot
            for estimator, value in (("minc_tril", minc_factor * scl), ("scl", scl)):
                out.append(dict(seed=seed, fraction=fraction, batch=batch, estimator=estimator,
                                relative=value * (1 + 0.01 * seed)))  # fmt: skip
        return out

    quiet = noise_section.verdicts({"exact": exact(0.5)})[0]
    assert quiet.verdict == "holds" and "0.50×" in quiet.numbers
    assert noise_section.verdicts({"exact": exact(2.0)})[0].verdict == "does not hold"
    # a point where SCL's mean gradient was too small to measure leaves the pairing intact:
    # that pair is left out, named, and the other pairs still decide (unpaired, the seeds'
    # spread would hide the factor)
    unmeasured = exact(0.5)
    unmeasured[1]["relative"] = None  # SCL, seed 0, point 0, batch 32
    found = noise_section.verdicts({"exact": unmeasured})[0]
    assert found.verdict == "holds" and "0.50×" in found.numbers
    assert "left out, a mean gradient too small to measure: SCL at batch 32, seed 0, point 0" in (
        found.numbers
    )


def test_the_carried_alpha_is_judged_only_once_every_cell_has_run():
    from benchmarks import exact_alpha_section as section

    def runs(objective, batch, base, alpha):
        fixed = dict(objective=objective, batch=batch, base_lr=8, alpha=0.05, diverged_at=None)
        return [fixed | dict(seed=s, alpha_per_256=alpha, final=base + 0.001 * s) for s in range(3)]

    exact = {"config": {"batches": [8]}, "alpha_per_256": {"minc_tril": 0.3}, "runs": []}
    exact["runs"] = runs("minc_tril", 8, 0.90, 0.3) + runs("minc_full", 8, 0.90, 0.3)
    tuned = {"runs": runs("minc_tril", 8, 0.90, 0.5)}  # one of the two cells
    assert section.verdicts(tuned, exact)[0].verdict == "inconclusive"
    tuned["runs"] += runs("minc_full", 8, 0.90, 0.5)
    assert section.verdicts(tuned, exact)[0].verdict == "holds"
    tuned["runs"][-3:] = runs("minc_full", 8, 0.95, 0.5)  # tuned well ahead at one cell
    assert section.verdicts(tuned, exact)[0].verdict == "does not hold"


def test_a_rate_that_diverges_closes_the_grid_from_above(monkeypatch, tmp_path):
    """A fit that diverges is recorded with −∞ accuracy (not a crash of the study), so the rate
    below it is chosen and lies inside the grid."""
    from benchmarks import runner
    from minc_lightning.errors import Diverged

    def diverging_fit(*args, **kwargs):
        raise Diverged("weights became non-finite at step 3")

    monkeypatch.setattr(runner, "fit_with_curve", diverging_fit)
    point = runner.final_point(tmp_path / "config.yaml", tmp_path / "run", [])
    assert point["diverged"] == "weights became non-finite at step 3"
    assert point["linear"] == point["knn"] == float("-inf")

    runs, chosen = _tune("byol", lambda s: point["linear"] if s["lr"] > 32 else s["lr"] / 100)
    assert chosen["lr"] == 32 and max(r["lr"] for r in runs) == 64


def test_tuning_never_trains_a_rate_beyond_the_bounds():
    """A rate still rising at the top bound is not bracketed again beyond it."""
    from benchmarks import estimators

    runs, chosen = _tune("byol", lambda s: 0.5 + s["lr"] / 1000)  # higher is always better
    assert max(r["lr"] for r in runs) == estimators.LR_BOUNDS[1] == chosen["lr"]


def test_a_cell_chosen_at_a_bound_of_the_lr_grid_is_said():
    from benchmarks import estimators, estimators_section

    runs, _ = _tune("byol", lambda s: 0.5 + s["lr"] / 1000)
    runs = [r | {"knn": 0.5} for r in runs]
    text = estimators_section.context({"runs": runs}, lambda fig, name: "")["progress"]
    assert "chosen at a bound of the lr grid, so not inside it: BYOL at 64" in text
    assert estimators.selection(runs[:2], "byol", 64)[1] is None  # not tuned yet: no setting


def test_run_missing_keeps_the_runs_another_process_saves_meanwhile(tmp_path):
    """Two studies sharing one results file (one per core) neither drop nor repeat each
    other's runs: the file is read again before each setting and before each save."""
    from benchmarks.runner import run_missing

    out, trained = tmp_path / "runs.json", []

    def train(setting: dict) -> dict:
        trained.append(setting)
        if setting["seed"] == 0:  # meanwhile, another process saves seeds 5 and 1
            run_missing(out, [{"seed": 5}, {"seed": 1}], lambda s: {"linear": 0.1})
        return {"linear": 0.5}

    runs = run_missing(out, [{"seed": 0}, {"seed": 1}], train)
    assert trained == [{"seed": 0}]  # seed 1 was saved by the other process: not trained again
    assert sorted(r["seed"] for r in runs) == [0, 1, 5]
    assert json.loads(out.read_text())["runs"] == runs

    def train_too(setting: dict) -> dict:  # the other process trains seed 2 at the same time
        run_missing(out, [{"seed": 2}], lambda s: {"linear": 0.1})
        return {"linear": 0.5}

    runs = run_missing(out, [{"seed": 2}], train_too)
    assert [r["linear"] for r in runs if r["seed"] == 2] == [0.1]  # saved once, the first


def test_the_page_names_a_cell_whose_own_setting_is_behind_the_carried_one():
    """A setting chosen on one selection seed can lose on the fresh seeds: the page says where."""
    from benchmarks.estimators_section import worse_than_carried
    from benchmarks.verdicts import Sample

    seeds = [0, 1, 2]
    tuned = {"byol": {32: Sample([0.840, 0.845, 0.842], seeds), 64: Sample([0.85] * 3, seeds)}}
    carried = {"byol": {32: Sample([0.853, 0.854, 0.852], seeds), 64: Sample([0.85] * 3, seeds)}}
    assert worse_than_carried(tuned, carried) == [
        "BYOL at 32 (84.23 ± 0.25% against 85.30 ± 0.10%)"
    ]
    assert worse_than_carried(carried, tuned) == []  # ahead of the carried one: nothing to say
