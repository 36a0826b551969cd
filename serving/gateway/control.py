"""Start, reload and stop the gateway's own nginx (own prefix folder, pid file and loopback ports) and its token
keeper; route changes. What nginx reads from the folder is written by files.py."""
from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.schema import validate
from serving.gateway.config import GatewayConfig
from serving.gateway.files import nginx_bin, run_nginx, self_signed_cert, write_config  # noqa: F401 - re-exported
from serving.torchserve.client import ServingError
from serving.torchserve.server_config import free_port
from trainers.rundir import atomic_write_json

STATE_FILE = "gateway.json"   # ports + routes: what reload/route re-render from
REPO = Path(__file__).resolve().parents[2]


def load_running_config(cfg: GatewayConfig) -> GatewayConfig:
    """The config a gateway was started with (from its gateway.json), else cfg itself."""
    path = cfg.dir / STATE_FILE
    if not path.exists():
        return cfg
    saved = json.loads(path.read_text()).get("config")
    if not saved:
        return cfg
    # the schema rebuilds the nested configs and refuses a file another Shipyard version wrote with other keys
    return validate(GatewayConfig, saved, name="gateway.json config")


class Gateway:
    """One nginx instance living in `cfg.dir`."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.dir
        self.state_path = self.dir / STATE_FILE

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """gateway.json (ports, routes), or an empty state before the first start."""
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {"routes": {}}

    def pid(self) -> int | None:
        """The master pid if nginx is running from this folder."""
        try:
            pid = int((self.dir / "nginx.pid").read_text().strip())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def url(self, path: str = "") -> str:
        """https://127.0.0.1:PORT/path of the running gateway."""
        return f"https://{self.cfg.host}:{self.state()['https_port']}/{path.lstrip('/')}"

    # ------------------------------------------------------------------ rendering
    def held_token(self) -> str:
        """The inference token nginx's config carries now (secrets/upstream_auth.conf)."""
        text = (self.dir / "secrets" / "upstream_auth.conf").read_text()
        return re.search(r"Bearer ([^\"]+)", text).group(1)

    @contextmanager
    def _locked(self):
        """One render+reload at a time (the CLI and the token keeper both reload)."""
        (self.dir / "run").mkdir(parents=True, exist_ok=True)
        with open(self.dir / "run" / "reload.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def _write_config(self, state: dict[str, Any], upstream_mode: str | None = None) -> Path:
        return write_config(self.cfg, state, upstream_mode)

    def _nginx(self, *args: str, what: str) -> subprocess.CompletedProcess:
        return run_nginx(self.dir, *args, what=what)

    # ------------------------------------------------------------------ lifecycle
    def start(self, routes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Render and start nginx; returns the state (ports, routes). Fails if it is already running."""
        if self.pid():
            raise ServingError(f"the gateway in {self.dir} is already running (pid {self.pid()}): "
                               "`gateway reload` or `gateway stop` first")
        self.cfg.check_tls()
        state = self.state()
        state["config"] = asdict(self.cfg)  # reload/route/promote from another shell re-render with it
        state["https_port"] = self.cfg.https_port or free_port(self.cfg.host)
        state["http_port"] = None if self.cfg.http_port < 0 else (self.cfg.http_port or free_port(self.cfg.host))
        state["keeper_port"] = free_port(self.cfg.host)
        from serving.gateway.keeper import ensure_fresh_token

        ensure_fresh_token(self.cfg.serve_dir)  # a token past half-life would expire before the keeper's handover
        if routes is not None:
            state["routes"] = routes
        self._write_config(state, "direct")
        atomic_write_json(self.state_path, state)
        self._nginx(what="start")
        deadline = time.monotonic() + 10
        while not self.pid():
            if time.monotonic() > deadline:
                raise ServingError(f"nginx did not write its pid file; see {self.dir / 'logs' / 'error.log'}")
            time.sleep(0.05)
        self._start_keeper()
        return state

    def keeper_pid(self) -> int | None:
        """The token keeper's pid while it runs."""
        import psutil

        try:
            pid = int((self.dir / "run" / "keeper.pid").read_text())
            return pid if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
        except (FileNotFoundError, ValueError, psutil.Error):
            return None

    def _start_keeper(self, timeout: float = 20.0) -> None:
        """Start keeper.py (token renewal, /readyz, log rotation) beside nginx; return once its socket is up."""
        for name in ("keeper.pid", "keeper.ready"):
            (self.dir / "run" / name).unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        with open(self.dir / "logs" / "keeper.stderr", "ab") as err:
            proc = subprocess.Popen([sys.executable, "-m", "serving.gateway.keeper", str(self.dir)], cwd=REPO,
                                    env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (self.keeper_pid() and (self.dir / "run" / "keeper.ready").exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServingError(f"the gateway's token keeper did not start; see {self.dir / 'logs'}/keeper.*")
            time.sleep(0.05)

    def reload(self, upstream_mode: str | None = None, drain: bool = False) -> dict[str, Any]:
        """Re-render (routes, keys, token) and `nginx -s reload`: old workers finish their requests.

        drain: also wait until the old workers have exited (no request is served with the old config after).
        """
        if not self.pid():
            raise ServingError(f"no gateway running in {self.dir}: `python -m serving gateway start` first")
        with self._locked():
            # the settings saved last (reconfigure from another process): the keeper's Gateway was built at its
            # start, and a token handover re-rendering that old config would undo them
            self.cfg = load_running_config(self.cfg)
            state = self.state()
            self._write_config(state, upstream_mode)
            old_generation = self._generation()
            self._nginx("-s", "reload", what="reload")
            self._wait_new_workers(old_generation)
        if drain:
            # an old worker finishes its requests (at most upstream_timeout, then worker_shutdown_timeout ends it)
            deadline = time.monotonic() + self.cfg.upstream_timeout + 10
            while self._generation() & old_generation and time.monotonic() < deadline:
                time.sleep(0.02)
        if not self.keeper_pid():
            self._start_keeper()  # e.g. after a machine restart left nginx but not the keeper
        return state

    def reconfigure(self, cfg: GatewayConfig) -> dict[str, Any]:
        """Apply new settings (rate limit, body cap, key source, TLS files) to the running gateway by a reload."""
        if cfg.dir != self.dir:
            raise ServingError(f"reconfigure: {cfg.dir} is not this gateway's folder {self.dir}")
        self.cfg = cfg
        state = self.state()
        state["config"] = asdict(cfg)
        atomic_write_json(self.state_path, state)
        return self.reload()

    def _generation(self) -> set[int]:
        import psutil

        try:
            return {c.pid for c in psutil.Process(self.pid()).children()}
        except (psutil.Error, TypeError):
            return set()

    def _wait_new_workers(self, old: set[int], timeout: float = 10.0) -> None:
        """Return once a worker of the new configuration is up (so the next request sees it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._generation() - old:
                return
            time.sleep(0.02)
        raise ServingError(f"nginx reload started no new worker in {timeout:.0f}s; see {self.dir / 'logs' / 'error.log'}")

    def set_route(self, model: str, champion: str | None = None, candidate: str | None = None,
                  percent: float | None = None, clear_candidate: bool = False) -> dict[str, Any]:
        """Change one model's route and reload if running (promote/rollback/canary call this)."""
        state = self.state()
        route = dict(state["routes"].get(model, {}))
        if champion is not None:
            route["champion"] = str(champion)
        if clear_candidate:
            route.pop("candidate", None)
            route.pop("percent", None)
        if candidate is not None:
            route["candidate"] = str(candidate)
            route["percent"] = float(self.cfg.canary_percent if percent is None else percent)
        elif percent is not None:
            route["percent"] = float(percent)
        if "champion" not in route:
            raise ServingError(f"route for {model} needs a champion version first (champion=VERSION)")
        if route.get("candidate") == route["champion"]:
            route.pop("candidate")
            route.pop("percent", None)
        state["routes"][model] = route
        atomic_write_json(self.state_path, state)
        if self.pid():
            self.reload()
        return route

    def stop(self, timeout: float = 15.0) -> bool:
        """Graceful quit of nginx and the keeper; waits until both are gone. False when nothing ran."""
        keeper = self.keeper_pid()
        if keeper:
            os.kill(keeper, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.keeper_pid() and time.monotonic() < deadline:
                time.sleep(0.05)
        pid = self.pid()
        if not pid:
            return False
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + timeout
        while self.pid() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid():
            os.kill(pid, signal.SIGTERM)
            time.sleep(0.5)
        return True
