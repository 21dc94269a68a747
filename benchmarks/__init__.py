"""The experiments behind every figure in docs/: each module is one benchmark, run from the
repository's root as ``python -m benchmarks.<name>`` (``--help`` says what it measures and how
long it takes), writing raw results to docs/data; ``python -m benchmarks.report`` turns them into
docs/results.md."""
