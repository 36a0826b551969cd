"""gRPC client of TorchServe, generated from the protos the installed TorchServe itself ships.

The torchserve wheel carries `inference.proto`/`management.proto` (and the `google/rpc/status.proto` they
import) inside `ts/frontend/model-server.jar`. `grpc_modules()` extracts them and runs grpcio-tools'
protoc once into `~/.cache/shipyard/torchserve_grpc/<hash>/` (keyed by the protos' and grpcio-tools'
versions, written atomically), so the client always matches the server's API. The same generation by hand:

    unzip model-server.jar 'proto/*.proto' 'google/rpc/status.proto' -d src && mkdir src/torchserve_grpc
    mv src/proto/*.proto src/torchserve_grpc/
    python -m grpc_tools.protoc -I src -I $(python -c 'import grpc_tools,os;print(os.path.dirname(grpc_tools.__file__))')/_proto \
        --python_out=OUT --grpc_python_out=OUT src/torchserve_grpc/*.proto src/google/rpc/status.proto

Token auth applies to gRPC as to REST (TorchServe 0.12's GRPCInterceptor): metadata
`authorization: Bearer <key>`, the inference key on the inference port, the management key on the
management port; a missing or wrong key gets PERMISSION_DENIED "Token Authorization failed ..." (measured on 0.12.0).

Per-request errors: TorchServe 0.12's gRPC path (GRPCJob.response) ignores the status a handler sets
for one request of a batch, so a refused input comes back as an OK reply whose body is the handler's
JSON error (`{"error": ..., "code": ...}`); `is_error_answer` tells the two apart. Whole-batch failures
(e.g. a crashed forward) do arrive as gRPC errors.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import grpc

from serving.torchserve.client import Endpoints, read_keys

PACKAGE = "torchserve_grpc"
CACHE = Path.home() / ".cache" / "shipyard" / "torchserve_grpc"
_PROTOS = {"proto/inference.proto": f"{PACKAGE}/inference.proto",
           "proto/management.proto": f"{PACKAGE}/management.proto",
           "google/rpc/status.proto": "google/rpc/status.proto"}


def _server_jar() -> Path:
    import ts

    jar = Path(ts.__file__).parent / "frontend" / "model-server.jar"
    if not jar.is_file():
        raise RuntimeError(f"{jar} is missing: reinstall torchserve==0.12.0")
    return jar


def generate(out_root: Path = CACHE) -> Path:
    """Generate the Python gRPC modules (once per proto/grpcio-tools version); returns their sys.path root."""
    import grpc_tools
    from grpc_tools import protoc

    with zipfile.ZipFile(_server_jar()) as jar:
        sources = {dst: jar.read(src) for src, dst in _PROTOS.items()}
    key = hashlib.sha256(b"".join(sources[k] for k in sorted(sources)) + grpc_tools.__file__.encode()
                         + getattr(protoc, "__version__", "").encode()).hexdigest()[:16]
    target = out_root / key
    if (target / PACKAGE / "inference_pb2_grpc.py").is_file():
        return target
    out_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".gen-", dir=out_root))
    try:
        src, out = work / "src", work / "out"
        for rel, data in sources.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        out.mkdir()
        include = Path(grpc_tools.__file__).parent / "_proto"
        args = ["protoc", f"-I{src}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                *(str(src / rel) for rel in sources)]
        if protoc.main(args) != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on TorchServe's protos: {' '.join(args)}")
        try:
            os.rename(out, target)  # atomic publish; a concurrent generator may have won the race
        except OSError:
            if not (target / PACKAGE / "inference_pb2_grpc.py").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def grpc_modules() -> SimpleNamespace:
    """inference_pb2(_grpc) and management_pb2(_grpc), generated on first use."""
    root = str(generate())
    if root not in sys.path:
        sys.path.append(root)  # appended: an installed googleapis-common-protos keeps precedence
    importlib.invalidate_caches()
    names = ("inference_pb2", "inference_pb2_grpc", "management_pb2", "management_pb2_grpc")
    return SimpleNamespace(**{n: importlib.import_module(f"{PACKAGE}.{n}") for n in names})


def is_error_answer(answer: object) -> bool:
    """True for the handlers' JSON error body (which gRPC delivers with status OK), False for a prediction."""
    return isinstance(answer, dict) and "error" in answer and "label" not in answer


class TorchServeGrpcClient:
    """Predictions and model descriptions over TorchServe's gRPC listeners, with token metadata."""

    def __init__(self, instance_dir: Path, timeout: float = 30.0) -> None:
        self.instance_dir = Path(instance_dir)
        self.endpoints = Endpoints.load(self.instance_dir)
        self.timeout = timeout
        self.mod = grpc_modules()
        host = self.endpoints.host
        self._inference = grpc.insecure_channel(f"{host}:{self.endpoints.grpc_inference}")
        self._management = grpc.insecure_channel(f"{host}:{self.endpoints.grpc_management}")
        self.inference = self.mod.inference_pb2_grpc.InferenceAPIsServiceStub(self._inference)
        self.management = self.mod.management_pb2_grpc.ManagementAPIsServiceStub(self._management)

    def _metadata(self, api: str, token: str | None = None) -> list[tuple[str, str]]:
        key = token if token is not None else read_keys(self.instance_dir)[api]
        return [("authorization", f"Bearer {key}")]

    def predict(self, name: str, inputs: dict[str, bytes], version: str | None = None,
                token: str | None = None) -> bytes:
        """One prediction; raises grpc.RpcError (code + details) on failure."""
        request = self.mod.inference_pb2.PredictionsRequest(model_name=name, model_version=version or "",
                                                            input=inputs)
        reply = self.inference.Predictions(request, metadata=self._metadata("inference", token),
                                           timeout=self.timeout)
        return reply.prediction

    def stream(self, name: str, inputs: dict[str, bytes], version: str | None = None) -> Iterator[bytes]:
        """A server-streaming prediction (StreamPredictions): each intermediate response's bytes as it arrives."""
        request = self.mod.inference_pb2.PredictionsRequest(model_name=name, model_version=version or "",
                                                            input=inputs)
        for reply in self.inference.StreamPredictions(request, metadata=self._metadata("inference"),
                                                      timeout=self.timeout):
            yield reply.prediction

    def ping(self) -> str:
        """TorchServe's health string over gRPC."""
        from google.protobuf import empty_pb2

        return self.inference.Ping(empty_pb2.Empty(), metadata=self._metadata("inference"),
                                   timeout=self.timeout).health

    def describe(self, name: str, version: str | None = None) -> str:
        """The management API's JSON description of a model, as text."""
        request = self.mod.management_pb2.DescribeModelRequest(model_name=name, model_version=version or "")
        return self.management.DescribeModel(request, metadata=self._metadata("management"),
                                             timeout=self.timeout).msg

    def close(self) -> None:
        """Close both channels."""
        self._inference.close()
        self._management.close()

    def __enter__(self) -> "TorchServeGrpcClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
