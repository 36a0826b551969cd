"""HTTP client of one TorchServe instance: reads its ports and keys from the instance folder, sends the right token.

The inference key goes with predictions, the management key with management calls; keys are read from
`<instance>/key_file.json` on every call (TorchServe rewrites it when a key is renewed) and never printed.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import requests

AUTH_FAILED = "Token Authorization failed"  # TorchServe's answer to a missing, wrong or expired key
INSTANCE_FILE = "instance.json"  # ports and pid of the running server (no secrets)
KEY_FILE = "key_file.json"       # written by TorchServe into its working directory (the instance folder)


class ServingError(RuntimeError):
    """A serving operation failed; the message says what and how to fix it."""


@dataclass
class Endpoints:
    """Where one running instance listens."""

    host: str
    inference: int
    management: int
    metrics: int
    grpc_inference: int
    grpc_management: int

    @classmethod
    def load(cls, instance_dir: Path) -> "Endpoints":
        """Read `instance.json`; a missing file means the server was never started here."""
        path = Path(instance_dir) / INSTANCE_FILE
        if not path.is_file():
            raise ServingError(f"no server instance at {instance_dir} (no {INSTANCE_FILE}): "
                               "run `python -m serving start` first, or pass the same root=/instance=")
        data = json.loads(path.read_text())
        return cls(host=data["host"], **{k: data["ports"][k] for k in
                                         ("inference", "management", "metrics", "grpc_inference", "grpc_management")})


def read_keys(instance_dir: Path) -> dict[str, str]:
    """{'inference': ..., 'management': ..., 'api': ...} from TorchServe's key file."""
    path = Path(instance_dir) / KEY_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ServingError(f"{path} is missing: the server is not running or was started elsewhere") from err
    except json.JSONDecodeError as err:
        raise ServingError(f"{path} is not valid JSON ({err.msg}): TorchServe may be rewriting it; retry") from err
    try:
        return {"inference": data["inference"]["key"], "management": data["management"]["key"],
                "api": data["API"]["key"]}
    except (KeyError, TypeError) as err:
        raise ServingError(f"{path} lacks the inference/management/API keys TorchServe 0.12 writes") from err


class TorchServeClient:
    """REST calls against one instance folder's server, each with a timeout and the matching token."""

    def __init__(self, instance_dir: Path, timeout: float = 30.0) -> None:
        self.instance_dir = Path(instance_dir)
        self.endpoints = Endpoints.load(self.instance_dir)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: never through an HTTP proxy from the environment

    # ------------------------------------------------------------------ plumbing
    def url(self, api: str, path: str) -> str:
        """http://host:port/path for api in inference|management|metrics."""
        return f"http://{self.endpoints.host}:{getattr(self.endpoints, api)}/{path.lstrip('/')}"

    def _headers(self, api: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if api in ("inference", "management"):
            headers["Authorization"] = f"Bearer {read_keys(self.instance_dir)[api]}"
        return headers

    def request(self, api: str, method: str, path: str, *, headers: dict[str, str] | None = None,
                timeout: float | None = None, **kwargs: Any) -> requests.Response:
        """One HTTP call with the api's token (renewed once if it expired); connection errors become ServingError."""
        def send() -> requests.Response:
            try:
                return self.session.request(method, self.url(api, path), headers=self._headers(api, headers),
                                            timeout=timeout or self.timeout, **kwargs)
            except requests.RequestException as err:
                raise ServingError(f"{method} {self.url(api, path)} failed: {err}") from err

        resp = send()
        if api in ("inference", "management") and resp.status_code in (400, 401) and AUTH_FAILED in resp.text:
            # the key came from the server's own key file, so it expired (token_expiration_min): renew, retry once
            self.renew_key(api)
            resp = send()
        return resp

    def renew_key(self, api: str) -> None:
        """Ask TorchServe for a new inference/management key (it rewrites key_file.json); uses the API key."""
        url = self.url("management", f"token?type={api}")
        try:
            resp = self.session.post(url, headers={"Authorization": f"Bearer {read_keys(self.instance_dir)['api']}"},
                                     timeout=self.timeout)
        except requests.RequestException as err:
            raise ServingError(f"renewing the {api} key failed: {err}") from err
        if resp.status_code != 200:
            raise ServingError(f"renewing the {api} key failed: HTTP {resp.status_code} {_message(resp)}")

    def management(self, method: str, path: str, **kwargs: Any) -> Any:
        """A management call that must succeed; returns its JSON."""
        resp = self.request("management", method, path, **kwargs)
        if resp.status_code >= 400:
            raise ServingError(f"{method} /{path.lstrip('/')} → HTTP {resp.status_code}: {_message(resp)}")
        return resp.json() if resp.content else {}

    # ------------------------------------------------------------------ management API
    def list_models(self) -> list[dict[str, Any]]:
        """[{'modelName', 'modelUrl'}] of every registered model."""
        return self.management("GET", "models").get("models", [])

    def describe(self, name: str, version: str | None = None) -> list[dict[str, Any]]:
        """TorchServe's description of a model (all versions, or one)."""
        path = f"models/{name}" + (f"/{version}" if version else "/all")
        return self.management("GET", path)

    def default_version(self, name: str) -> str:
        """The version `/predictions/name` answers with."""
        return self.management("GET", f"models/{name}")[0]["modelVersion"]

    def register(self, url: str, name: str, *, workers: int, batch_size: int, max_batch_delay: int,
                 response_timeout: int, startup_timeout: int) -> dict[str, Any]:
        """Register an archive already in the model store (url = its file name); workers start asynchronously."""
        params = {"url": url, "model_name": name, "initial_workers": workers, "batch_size": batch_size,
                  "max_batch_delay": max_batch_delay, "response_timeout": response_timeout,
                  "startup_timeout": startup_timeout, "synchronous": "false"}
        return self.management("POST", "models", params=params)

    def set_default(self, name: str, version: str) -> dict[str, Any]:
        """Make `version` the one `/predictions/name` answers with."""
        return self.management("PUT", f"models/{name}/{version}/set-default")

    def unregister(self, name: str, version: str) -> dict[str, Any]:
        """Remove one version (TorchServe refuses to remove the default while others exist)."""
        return self.management("DELETE", f"models/{name}/{version}")

    # ------------------------------------------------------------------ inference / metrics
    def predict(self, name: str, body: bytes, *, version: str | None = None,
                content_type: str = "application/octet-stream", timeout: float | None = None) -> requests.Response:
        """POST /predictions/name[/version]; the caller inspects status and JSON."""
        path = f"predictions/{name}" + (f"/{version}" if version else "")
        return self.request("inference", "POST", path, data=body, headers={"Content-Type": content_type},
                            timeout=timeout)

    def predict_stream(self, name: str, body: bytes, *, version: str | None = None,
                       timeout: float | None = None) -> Iterator[tuple[float, Any]]:
        """POST a streaming request; yields (arrival time.monotonic(), chunk) per JSON line as it arrives.

        An error answer (4xx) is yielded as its one JSON body."""
        path = f"predictions/{name}" + (f"/{version}" if version else "")
        resp = self.request("inference", "POST", path, data=body, headers={"Content-Type": "application/json"},
                            timeout=timeout, stream=True)
        with resp:
            yield from json_lines(resp)

    def ping(self) -> requests.Response:
        """GET /ping (with the inference key: token auth covers it too)."""
        return self.request("inference", "GET", "ping")

    def metrics(self) -> str:
        """Prometheus text from the metrics listener."""
        resp = self.request("metrics", "GET", "metrics")
        if resp.status_code != 200:
            raise ServingError(f"GET /metrics → HTTP {resp.status_code}: {_message(resp)}")
        return resp.text


def json_lines(resp: requests.Response) -> Iterator[tuple[float, Any]]:
    """A streamed response's JSON lines, each with its arrival time (HTTP chunks may split or join lines)."""
    buffer = b""
    for data in resp.iter_content(chunk_size=None):
        arrived = time.monotonic()
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield arrived, json.loads(line)
    if buffer.strip():
        yield time.monotonic(), json.loads(buffer)


def _message(resp: requests.Response) -> str:
    """TorchServe's error message from a JSON body, else the start of the text."""
    try:
        data = resp.json()
        if isinstance(data, dict):
            return str(data.get("message") or data.get("error") or data)
        return str(data)
    except ValueError:
        return resp.text[:500]
