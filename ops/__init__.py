"""Scripts that operate on the project rather than measure it: the GPU check and the wheels it
carries (docs/gpu.md), and the test suite on the oldest versions pyproject.toml claims."""
