"""Render nginx.conf for the canary gateway (secrets live in include files under secrets/, mode 0600).

Request flow for `POST /v1/models/NAME:predict`:
  413 (body > max_body) → 401 (no/unknown X-API-Key) → 429 (limit_req per key) → split_clients picks
  champion or candidate for NAME → proxy to TorchServe's pinned `/predictions/NAME/VERSION` with the
  inference token injected. The chosen version is returned in `X-Model-Version`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from serving.gateway.config import GatewayConfig

LOG_FORMAT = ('\'$remote_addr [$time_iso8601] "$request_method $uri" $status $body_bytes_sent '
              'rt=$request_time urt=$upstream_response_time client=$api_client model=$gw_model '
              'version=$gw_version id=$request_id\'')
ERRORS = {
    401: "missing or unknown API key: send it in the X-API-Key header",
    404: "unknown model or path: POST /v1/models/NAME:predict with a model the gateway routes",
    405: "method not allowed: use POST",
    413: "request body too large for the gateway (max_body)",
    429: "rate limit exceeded for this API key; retry later",
    502: "the model server is unavailable",
    504: "the model server timed out",
}


def _ident(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _quote(value: str) -> str:
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError(f"refusing to put {value!r} into nginx.conf")
    return f'"{value}"'


def render_routes(routes: dict[str, dict[str, Any]]) -> str:
    """split_clients per model with a candidate, and the maps from model name to the chosen version."""
    blocks, model_map = [], []
    for name, route in sorted(routes.items()):
        ident = _ident(name)
        champion, candidate = str(route["champion"]), route.get("candidate")
        percent = float(route.get("percent", 0)) if candidate else 0.0
        if candidate and 0 < percent < 100:
            # request_id is random per request: the split is a fair coin with P(candidate) = percent
            blocks.append(f'split_clients "${{request_id}}" $gw_bucket_{ident} {{\n'
                          f'    {percent:g}% candidate;\n    * champion;\n}}')
            blocks.append(f"map $gw_bucket_{ident} $gw_version_{ident} {{\n"
                          f"    candidate {_quote(str(candidate))};\n    default {_quote(champion)};\n}}")
            model_map.append(f"    {_quote(name)} $gw_version_{ident};")
        else:
            chosen = str(candidate) if candidate and percent >= 100 else champion
            model_map.append(f"    {_quote(name)} {_quote(chosen)};")
    blocks.append("map $gw_model $gw_version {\n    default \"\";\n" + "\n".join(model_map) + "\n}")
    return "\n".join(blocks)


def render_nginx(cfg: GatewayConfig, https_port: int, http_port: int | None, upstream_port: int,
                 routes: dict[str, dict[str, Any]], cert: Path, key: Path, user: str | None) -> str:
    """The whole nginx.conf (paths absolute; prefix = the gateway folder)."""
    d = cfg.dir
    temp = "\n".join(f"    {kind}_temp_path {d / 'tmp' / kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    errors = "\n".join(
        f"    location = /__gateway_error/{code} {{\n        internal;\n        default_type application/json;\n"
        f"        return {code} '{json.dumps({'code': code, 'message': msg})}\\n';\n    }}"
        for code, msg in ERRORS.items())
    error_pages = "\n".join(f"    error_page {code} /__gateway_error/{code};" for code in ERRORS)
    http_server = "" if http_port is None else f"""
server {{
    listen {cfg.host}:{http_port};
    # plain HTTP never reaches a model: 308 keeps the method and body on the client's retry over TLS
    location / {{ return 308 https://$host:{https_port}$request_uri; }}
}}"""
    return f"""# written by `python -m serving gateway` from conf/gateway.yaml; regenerated at start/reload/route
{f'user {user};' if user else ''}
worker_processes 1;
pid {d / 'nginx.pid'};
error_log {d / 'logs' / 'error.log'} warn;
events {{ worker_connections 1024; }}

http {{
    log_format gateway {LOG_FORMAT};
    access_log {d / 'logs' / 'access.log'} gateway;
    server_tokens off;
{temp}
    client_max_body_size {cfg.max_body};
    client_body_buffer_size {cfg.max_body};
    keepalive_timeout 65;

    # API keys: map X-API-Key → client id (secrets/api_keys.conf, 0600); only the client id is ever logged
    map $http_x_api_key $api_client {{
        default "";
        include {d / 'secrets' / 'api_keys.conf'};
    }}
    limit_req_zone $api_client zone=per_key:1m rate={cfg.rate_limit.per_second}r/s;
    limit_req_status 429;

    map $uri $gw_model {{
        default "";
        "~^/v1/models/(?<m>[A-Za-z0-9_.-]+):predict$" $m;
    }}
{render_routes(routes)}

    upstream torchserve {{
        server 127.0.0.1:{upstream_port};
        keepalive 16;
    }}
{http_server}
server {{
    listen {cfg.host}:{https_port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:gateway_tls:1m;
{error_pages}
{errors}

    location ~ ^/v1/models/[A-Za-z0-9_.-]+:predict$ {{
        if ($request_method != POST) {{ return 405; }}
        if ($api_client = "") {{ return 401; }}
        if ($gw_version = "") {{ return 404; }}
        limit_req zone=per_key burst={cfg.rate_limit.burst} nodelay;
        include {d / 'secrets' / 'upstream_auth.conf'};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Request-ID $request_id;
        proxy_set_header X-API-Key "";
        proxy_read_timeout {cfg.upstream_timeout}s;
        # a prediction is a pure function of its body: retrying one whose pooled upstream connection was
        # closed by TorchServe (it closes after error answers) is safe, and avoids a spurious 502
        proxy_next_upstream error timeout non_idempotent;
        proxy_next_upstream_tries 3;
        proxy_intercept_errors off;
        add_header X-Model-Version $gw_version always;
        add_header X-Request-ID $request_id always;
        proxy_pass http://torchserve/predictions/$gw_model/$gw_version;
    }}
    location = /healthz {{ default_type application/json; return 200 '{{"status":"ok"}}\\n'; }}
    location / {{ return 404; }}
}}
}}
"""


def render_secrets(keys: dict[str, str], inference_token: str) -> dict[str, str]:
    """The two include files that hold secrets (written 0600, never logged)."""
    api = "".join(f"    {_quote(key)} {_quote(client)};\n" for client, key in sorted(keys.items()))
    auth = f"proxy_set_header Authorization {_quote('Bearer ' + inference_token)};\n"
    return {"api_keys.conf": api, "upstream_auth.conf": auth}
