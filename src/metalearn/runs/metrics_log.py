"""Metric logs of a run: JSON lines (one object per logged step) and TensorBoard event files.

The TensorBoard writer is self-contained (the TFRecord framing with masked CRC-32C and the few
protobuf fields of a scalar ``Event``), so runs get TensorBoard curves without TensorBoard or
TensorFlow installed; ``tensorboard --logdir RUN/tb`` reads them.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path
from typing import Any


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord framing."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _event(step: int, wall_time: float, *, file_version: str | None = None,
           scalars: dict[str, float] | None = None) -> bytes:
    msg = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step)
    if file_version is not None:
        msg += _field_bytes(3, file_version.encode())
    if scalars:
        summary = b""
        for tag, value in scalars.items():
            val = _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(value))
            summary += _field_bytes(1, val)
        msg += _field_bytes(5, summary)
    return msg


class TensorBoardWriter:
    """Appends scalar events to a new ``events.out.tfevents.*`` file in ``logdir``."""

    def __init__(self, logdir: Path | str) -> None:
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{time.monotonic_ns() % 10**6}"
        self.path = logdir / name
        self._f = open(self.path, "ab")  # noqa: SIM115 (kept open for the run; closed by close())
        self._write(_event(0, time.time(), file_version="brain.Event:2"))

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        self._f.write(header + struct.pack("<I", _masked_crc(header)) + record
                      + struct.pack("<I", _masked_crc(record)))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._write(_event(step, time.time(), scalars=values))
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class MetricsLog:
    """Writes each logged row to ``metrics.jsonl`` and, as scalars, to TensorBoard."""

    def __init__(self, jsonl_path: Path | str, tb_dir: Path | str | None = None) -> None:
        self.jsonl_path = Path(jsonl_path)
        self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.jsonl_path, "a", buffering=1)  # noqa: SIM115 (closed by close())
        self.tb = TensorBoardWriter(tb_dir) if tb_dir is not None else None

    def log(self, step: int, **values: Any) -> None:
        row = {"step": step, **values}
        self._f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            nums = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.tb.scalars(step, nums)

    def close(self) -> None:
        self._f.close()
        if self.tb is not None:
            self.tb.close()
