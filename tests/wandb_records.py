"""Read what a W&B offline run recorded: its ``run-*.wandb`` file is a LevelDB-style log
(32 KiB blocks of records with a 7-byte header) of protobuf ``Record`` messages."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK, HEADER, FILE_HEADER = 32768, 7, 7
FULL, LAST = 1, 4


def records(path: Path) -> Iterator[pb.Record]:
    data, pos, chunks = path.read_bytes(), FILE_HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if left < HEADER or (kind == 0 and length == 0):  # block padding
            pos += left
            continue
        chunks += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(chunks)
            yield record
            chunks = b""


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def offline_run(run_dir: Path) -> tuple[dict, set[str]]:
    """(config, names of logged metrics) of one offline run directory."""
    config, metrics = {}, set()
    for record in records(next(run_dir.glob("run-*.wandb"))):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config |= {_key(i): json.loads(i.value_json) for i in record.run.config.update}
        elif kind == "config":
            config |= {_key(i): json.loads(i.value_json) for i in record.config.update}
        elif kind == "history":
            metrics |= {_key(i) for i in record.history.item}
    return config, metrics
