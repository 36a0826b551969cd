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
    429: "rate limit exceeded (requests per API key, or failed authentications per address); retry later",
    502: "the model server is unavailable",
    503: "the model server is busy (queue full or no worker ready); retry after Retry-After seconds",
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


# Mozilla "intermediate": TLS 1.2 only with AEAD suites (no CBC, no SHA-1 MACs); TLS 1.3 suites are fixed
SSL_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
               "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
KEEPER_SECRET = "keeper.conf"  # secrets/: the header nginx proves itself to the keeper with (0600)


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def map_hash_sizes(keys: dict[str, str] | None) -> tuple[int, int]:
    """map_hash_bucket_size/max_size that fit the API keys (nginx refuses to start when a key outgrows a bucket)."""
    longest = max((len(k) for k in (keys or {}).values()), default=64)
    # a bucket holds the key bytes plus a pointer and length, aligned: twice the longest key always fits
    return max(64, _pow2(2 * longest + 16)), max(2048, _pow2(4 * len(keys or {})))


def render_nginx(cfg: GatewayConfig, https_port: int, http_port: int | None, upstream_port: int,
                 routes: dict[str, dict[str, Any]], cert: Path, key: Path, user: str | None,
                 keys: dict[str, str] | None = None, upstream_mode: str = "direct", keeper_port: int = 0) -> str:
    """The whole nginx.conf (paths absolute; prefix = the gateway folder).

    upstream_mode "direct": predictions go straight to TorchServe with the inference token nginx holds;
    "keeper": through the token keeper, which adds the current token per request (used while it renews).
    """
    d = cfg.dir
    temp = "\n".join(f"    {kind}_temp_path {d / 'tmp' / kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    hsts = (f'    add_header Strict-Transport-Security "max-age={cfg.hsts_max_age}" always;'
            if cfg.hsts_max_age else "")
    errors = "\n".join(
        f"    location = /__gateway_error/{code} {{\n        internal;\n        default_type application/json;\n"
        + ("        add_header Retry-After 1 always;\n" if code in (429, 503) else "")
        + (hsts + "\n" if hsts else "")
        + f"        return {code} '{json.dumps({'code': code, 'error': msg, 'message': msg})}\\n';\n    }}"
        for code, msg in ERRORS.items())
    error_pages = "\n".join(f"    error_page {code} /__gateway_error/{code};" for code in ERRORS)
    bucket, max_size = map_hash_sizes(keys)
    if upstream_mode == "keeper":
        # the keeper adds the current inference token; it forwards only requests that carry its secret
        upstream_auth = f"include {d / 'secrets' / KEEPER_SECRET};"
        upstream = "keeper"
    else:
        upstream_auth = f"include {d / 'secrets' / 'upstream_auth.conf'};"
        upstream = "torchserve"
    http_server = "" if http_port is None else f"""
server {{
    listen {cfg.host}:{http_port};
    client_header_timeout {cfg.client_timeout}s;
    # plain HTTP never reaches a model: 308 keeps the method and body on the client's retry over TLS;
    # the target is the configured name, never the client's Host header (no open redirect)
    location / {{ return 308 https://{cfg.public_name}:{https_port}$request_uri; }}
}}"""
    return f"""# written by `python -m serving gateway` from its GatewayConfig; regenerated at start/reload/route
{f'user {user};' if user else ''}
worker_processes 1;
pid {d / 'nginx.pid'};
error_log {d / 'logs' / 'error.log'} warn;
events {{ worker_connections 1024; }}
# a reload's old workers finish their requests, but never longer than this (the keeper waits for them)
worker_shutdown_timeout {cfg.upstream_timeout + 5}s;

http {{
    log_format gateway {LOG_FORMAT};
    access_log {d / 'logs' / 'access.log'} gateway;
    server_tokens off;
{temp}
    client_max_body_size {cfg.max_body};
    client_body_buffer_size {cfg.max_body};
    # slow clients: at most client_timeout s between two reads (header and body) or two writes, then 408/close
    client_header_timeout {cfg.client_timeout}s;
    client_body_timeout {cfg.client_timeout}s;
    send_timeout {cfg.client_timeout}s;
    reset_timedout_connection on;
    keepalive_timeout 65;
    limit_conn_zone $binary_remote_addr zone=per_ip:1m;
    limit_conn_status 429;
    map_hash_bucket_size {bucket};
    map_hash_max_size {max_size};

    # API keys: map X-API-Key → client id (secrets/api_keys.conf, 0600); only the client id is ever logged
    map $http_x_api_key $api_client {{
        default "";
        include {d / 'secrets' / 'api_keys.conf'};
    }}
    limit_req_zone $api_client zone=per_key:1m rate={cfg.rate_limit.per_second}r/s;
    limit_conn_zone $api_client zone=per_key_conn:1m;
    # failed authentication is limited per client address (an empty key means "not limited")
    map $api_client $auth_failed_addr {{
        "" $binary_remote_addr;
        default "";
    }}
    limit_req_zone $auth_failed_addr zone=auth_fail:1m rate={cfg.rate_limit.auth_failures_per_second}r/s;
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
    upstream keeper {{
        # loopback TCP, not a unix socket: nginx's workers (nobody) may not traverse the gateway's parents
        server 127.0.0.1:{keeper_port};
    }}
{http_server}
server {{
    listen {cfg.host}:{https_port} ssl;
    server_name {cfg.public_name};
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {SSL_CIPHERS};
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:gateway_tls:1m;
    limit_conn per_ip {cfg.max_connections_per_ip};
{hsts}
{error_pages}
{errors}

    location ~ ^/v1/models/[A-Za-z0-9_.-]+:predict$ {{
        if ($request_method != POST) {{ return 405; }}
        # rewrite-phase `return` would run before limit_req: unknown keys go where the limit applies first
        if ($api_client = "") {{ rewrite ^ /__gateway_unauthorized last; }}
        if ($gw_version = "") {{ return 404; }}
        limit_req zone=per_key burst={cfg.rate_limit.burst} nodelay;
        # a location's limit_conn replaces the server's: both again, plus in-flight requests per key
        limit_conn per_ip {cfg.max_connections_per_ip};
        limit_conn per_key_conn {cfg.rate_limit.concurrent};
        {upstream_auth}
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Request-ID $request_id;
        proxy_set_header X-API-Key "";
        proxy_read_timeout {cfg.upstream_timeout}s;
        # streamed generations ("stream": true) pass each chunk on as it arrives
        proxy_buffering off;
        # a prediction is a pure function of its body: retrying one whose pooled upstream connection was
        # closed by TorchServe (it closes after error answers) is safe, and avoids a spurious 502
        proxy_next_upstream error timeout non_idempotent;
        proxy_next_upstream_tries 3;
        # TorchServe's queue-full 503 (and 413/404) get the gateway's JSON answer with Retry-After; codes
        # without an error_page (the handlers' 400s with their own JSON message) pass through unchanged
        proxy_intercept_errors on;
        add_header X-Model-Version $gw_version always;
        add_header X-Request-ID $request_id always;
{hsts.replace('    ', '        ', 1)}
        proxy_pass http://{upstream}/predictions/$gw_model/$gw_version;
    }}
    location = /__gateway_unauthorized {{
        internal;
        limit_req zone=auth_fail burst={cfg.rate_limit.auth_failures_burst} nodelay;
        try_files /__no_such_file =401;
    }}
    location = /healthz {{ default_type application/json; return 200 '{{"status":"ok"}}\\n'; }}
    # readiness for load balancers: 200 only while every registered model version has a READY worker
    location = /readyz {{ proxy_pass http://keeper/readyz; proxy_intercept_errors off; }}
    location = /readyz/metrics {{ proxy_pass http://keeper/metrics; proxy_intercept_errors off; }}
    location / {{ return 404; }}
}}
}}
"""


def render_secrets(keys: dict[str, str], inference_token: str) -> dict[str, str]:
    """The two include files that hold secrets (written 0600, never logged)."""
    api = "".join(f"    {_quote(key)} {_quote(client)};\n" for client, key in sorted(keys.items()))
    auth = f"proxy_set_header Authorization {_quote('Bearer ' + inference_token)};\n"
    return {"api_keys.conf": api, "upstream_auth.conf": auth}
