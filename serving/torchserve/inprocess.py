"""Run a `.mar`'s handler inside this process through TorchServe's own Python worker code (no Java).

The frontend's wire format is encoded here; TorchServe's `otf_message_handler.retrieve_msg` decodes
it (JSON/text bodies are parsed exactly as in a real worker), `TsModelLoader` loads the handler
from the extracted archive, and `Service.predict` builds the real `Context`/`RequestProcessor`s and
encodes the response, which is decoded back into per-request status, content type and body.
"""
from __future__ import annotations

import json
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ts
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
from ts.model_loader import TsModelLoader
from ts.protocol.otf_message_handler import retrieve_msg

# modules a .mar brings (the entry handler files + the runtime package); each archive's own copies are imported
ARCHIVE_MODULES = ("image_classifier", "text_classifier", "text_generator", "runtime")


def _from_archive(name: str) -> bool:
    return name.split(".")[0] in ARCHIVE_MODULES


def _s(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


def encode_predict(requests: list[tuple[bytes, str]], name: str = "body") -> bytes:
    """The frontend's predict frame: one request per (body, content type)."""
    msg = b"I"
    for i, (body, content_type) in enumerate(requests):
        msg += _s(f"req-{i}".encode())
        msg += _s(b"Content-Type") + _s(content_type.encode()) + struct.pack("!i", -1)  # headers
        msg += _s(name.encode()) + _s(content_type.encode()) + _s(body) + struct.pack("!i", -1)  # parameters
    return msg + struct.pack("!i", -1)


class _Conn:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def recv(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


@dataclass
class Answer:
    """One request's response as the frontend receives it."""

    request_id: str
    status: int
    phrase: str
    content_type: str
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def decode_response(msg: bytes) -> tuple[int, str, list[Answer]]:
    """Batch code, message and the per-request answers of a worker response frame."""
    pos = 0

    def read_int() -> int:
        nonlocal pos
        value = struct.unpack("!i", msg[pos:pos + 4])[0]
        pos += 4
        return value

    def read_bytes() -> bytes:
        nonlocal pos
        n = read_int()
        out = msg[pos:pos + n]
        pos += n
        return out

    code, message = read_int(), read_bytes().decode()
    answers = []
    while True:
        n = read_int()
        if n == -1:
            break
        req_id = msg[pos:pos + n].decode()
        pos += n
        content_type = read_bytes().decode()
        status, phrase = read_int(), read_bytes().decode()
        for _ in range(read_int()):  # response headers
            read_bytes(), read_bytes()
        answers.append(Answer(req_id, status, phrase, content_type, read_bytes()))
    return code, message, answers


class InProcessWorker:
    """A loaded archive: `predict([(body, content_type), ...])` → (batch code, answers)."""

    def __init__(self, mar: Path, workdir: Path, batch_size: int = 8) -> None:
        self.model_dir = workdir / mar.stem
        with zipfile.ZipFile(mar) as archive:
            archive.extractall(self.model_dir)
        manifest = json.loads((self.model_dir / "MAR-INF" / "MANIFEST.json").read_text())
        # the repository's own runtime package is set aside while the archive's copy loads, then restored
        own = {name: sys.modules.pop(name) for name in list(sys.modules) if _from_archive(name)}
        sys.path.insert(0, str(self.model_dir))  # what the worker's PYTHONPATH holds
        try:
            metrics = MetricsCacheYamlImpl(config_file_path=str(Path(ts.__file__).parent / "configs" / "metrics.yaml"))
            metrics.initialize_cache()
            self.service = TsModelLoader().load(manifest["model"]["modelName"], str(self.model_dir),
                                                manifest["model"]["handler"], None, batch_size, None, True, metrics)
        finally:
            sys.path.remove(str(self.model_dir))
            for name in [n for n in sys.modules if _from_archive(n)]:
                del sys.modules[name]
            sys.modules.update(own)
        self.service.set_cl_socket(None)
        self.handler = self.service._entry_point.__self__

    def predict(self, requests: list[tuple[bytes, str]]) -> tuple[int, list[Answer]]:
        """Send one batch through TorchServe's decode → handle → encode path."""
        _, batch = retrieve_msg(_Conn(encode_predict(requests)))
        code, _, answers = decode_response(bytes(self.service.predict(batch)))
        return code, answers
