"""Download the wheels that the GPU machine lacks, for its Python 3.12 on manylinux x86_64.

That machine has no internet; it holds torch, torchvision, lightning, torchmetrics, timm and the
packages listed in ``PRESENT`` (its image's package list). This script walks the requirements of
minc-lightning's dependencies (and their extras, e.g. ``jsonargparse[signatures]``) from each
downloaded wheel's metadata, fetches every one that is not there (at the version this checkout's
environment runs, when it has one), once, and checks the total stays under the limit.

    python -m ops.gpu_wheels [--out .whl] [--limit_mib 60]
"""

from __future__ import annotations

import argparse
import email
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The GPU machine's image (docs of the device tool, read 2026-11-17): what need not travel.
PRESENT = set(
    map(
        canonicalize_name,
        """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
    diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
    frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
    hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
    jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator
    lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
    mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx
    ninja numba numba-cuda numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime onnxscript
    opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging
    pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf
    psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
    pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
    scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
    shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
    tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz
    torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers
    treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug
    wheel wrapt xarray xxhash yarl zipp""".split(),
    )
)
WANTED = ["lightly", "kornia", "jsonargparse[signatures]", "wandb"]  # what the check imports
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"] + [
    f"--platform={p}"
    for p in (
        "manylinux_2_28_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
        "manylinux1_x86_64",
    )
]
TARGET = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def download(requirement: Requirement, out: Path) -> Path:
    """One wheel, without its dependencies: this environment's version when it satisfies the
    requirement, else the newest that does."""
    version = installed_version(requirement.name)
    spec = (
        f"{requirement.name}=={version}"
        if version and requirement.specifier.contains(version, prereleases=True)
        else f"{requirement.name}{requirement.specifier}"
    )
    before = set(out.glob("*.whl"))
    binary = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", *PLATFORM, "-d", out]
    done = subprocess.run([*binary, spec], capture_output=True, text=True)
    if done.returncode != 0:  # published as source only: build the (pure-Python) wheel here
        build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, spec]
        done = subprocess.run(build, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cannot get a wheel of {spec}:\n{done.stderr[-2000:]}")
    wheels = [w for w in out.glob("*.whl") if wheel_name(w) == canonicalize_name(requirement.name)]
    new = set(wheels) - before
    wheel = (new or set(wheels)).pop()
    python_tag, abi_tag = wheel.name.split("-")[-3:-1]
    if not ("py3" in python_tag or "cp312" in python_tag or abi_tag == "abi3"):
        raise SystemExit(f"{wheel.name} is not a wheel for CPython 3.12")
    return wheel


def wheel_name(wheel: Path) -> str:
    return canonicalize_name(wheel.name.split("-")[0])


def requirements(wheel: Path, extras: set[str]) -> list[Requirement]:
    """The wheel's Requires-Dist for the GPU machine, with the given extras."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if re.match(r"[^/]+\.dist-info/METADATA$", n))
        meta = email.message_from_bytes(z.read(name))
    found = []
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or any(
            req.marker.evaluate(dict(TARGET, extra=e)) for e in (extras or {""})
        ):
            found.append(req)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".whl"))
    parser.add_argument("--limit_mib", type=float, default=60)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.whl"):
        stale.unlink()  # exactly this set: no second version of anything
    queue, fetched = [Requirement(r) for r in WANTED], {}
    while queue:
        req = queue.pop(0)
        name = canonicalize_name(req.name)
        if name in PRESENT or name in fetched:
            continue
        wheel = download(req, args.out)
        fetched[name] = wheel
        queue += requirements(wheel, set(req.extras))
    total = sum(w.stat().st_size for w in fetched.values()) / 2**20
    names = sorted(wheel_name(w) for w in args.out.glob("*.whl"))
    if len(names) != len(set(names)):
        raise SystemExit(f"two versions of one package in {args.out}: {names}")
    for wheel in sorted(fetched.values()):
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}")
    print(f"{len(fetched)} wheels, {total:.1f} MiB in {args.out}")
    if total > args.limit_mib:
        raise SystemExit(f"{total:.1f} MiB is over the {args.limit_mib} MiB limit")


if __name__ == "__main__":
    main()
