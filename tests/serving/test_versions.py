"""Model versions on a real TorchServe through `python -m serving`: register v2 beside v1, pinned and default
traffic, make v2 the default, roll back to v1 while a client keeps sending."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from tests.conftest import REPO
from tests.serving.servers import png_bytes, running_server
from tests.serving.stock_mar import build_stock_mar

pytestmark = [pytest.mark.torchserve, pytest.mark.slow]
NAME = "tiny"
IMAGE = png_bytes((32, 32), (180, 40, 90), mode="RGB")


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """v1.0 and v2.0 of one model with different weights, so that answers show which version served."""
    root = tmp_path_factory.mktemp("versions_mar")
    return {"1.0": build_stock_mar(root, NAME, "1.0", seed=1), "2.0": build_stock_mar(root, NAME, "2.0", seed=2)}


@pytest.fixture(scope="module")
def server(tmp_path_factory, archives):
    """A server with v1.0 only; the tests register v2.0 through the CLI."""
    with running_server(tmp_path_factory.mktemp("ts_versions"), [archives["1.0"]]) as instance:
        yield instance


def cli(server, *args: str) -> subprocess.CompletedProcess:
    """`python -m serving ARGS root=... instance=...` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "serving", *args, f"root={server.cfg.root}",
                           f"instance={server.cfg.instance}"], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})


def answer(server, version: str | None = None) -> dict:
    """The model's answer for the fixed image (default version unless pinned)."""
    resp = server.client().predict(NAME, IMAGE, version=version, content_type="image/png")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_register_switch_and_roll_back(server, archives):
    registered = cli(server, "register", str(archives["2.0"]), "--version", "2.0", "model.batch_size=2")
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout) == {"name": NAME, "version": "2.0", "store_file": "tiny-2.0.mar",
                                             "default_version": "1.0"}
    described = {d["modelVersion"]: d for d in server.client().describe(NAME)}
    assert described["2.0"]["batchSize"] == 2 and described["1.0"]["batchSize"] == 1
    v1, v2 = answer(server, "1.0"), answer(server, "2.0")
    assert v1 != v2, "the two versions must answer differently for this test to show routing"
    assert answer(server) == v1  # default stays v1 after registering v2

    switched = cli(server, "set-default", NAME, "2.0")
    assert switched.returncode == 0, switched.stderr
    assert json.loads(switched.stdout)["default_version"] == "2.0"
    assert answer(server) == v2 and answer(server, "1.0") == v1  # pinned traffic unaffected

    # roll back while a client keeps sending: every request succeeds, answers switch from v2 to v1
    seen, failures, stop = [], [], threading.Event()

    def keep_sending() -> None:
        client = server.client()
        while not stop.is_set():
            resp = client.predict(NAME, IMAGE, content_type="image/png")
            (seen if resp.status_code == 200 else failures).append(resp.json() if resp.status_code == 200 else resp.text)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        rolled = cli(server, "set-default", NAME, "1.0")
    finally:
        stop.set()
        sender.join(timeout=60)
    assert rolled.returncode == 0, rolled.stderr
    assert not failures, failures[:3]
    assert answer(server) == v1
    assert seen and all(a in (v1, v2) for a in seen)

    status = json.loads(cli(server, "status").stdout)
    [model] = [m for m in status["models"] if m["name"] == NAME]
    assert model["default_version"] == "1.0"
    assert {v["version"]: v["default"] for v in model["versions"]} == {"1.0": True, "2.0": False}


def test_bad_version_operations_are_refused_with_a_message(server, archives):
    unknown = cli(server, "set-default", NAME, "7.0")
    assert unknown.returncode == 1 and "has no version '7.0'" in unknown.stderr, unknown.stderr
    again = cli(server, "register", str(archives["1.0"]))
    assert again.returncode == 1 and "already registered" in again.stderr, again.stderr
    mismatch = cli(server, "register", str(archives["1.0"]), "--version", "3.0")
    assert mismatch.returncode == 1 and "packaged as version '1.0'" in mismatch.stderr, mismatch.stderr
    assert answer(server)  # still serving
