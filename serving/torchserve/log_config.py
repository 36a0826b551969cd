"""The log4j2 configuration of one TorchServe instance: every file size-rotated, per-request lines only at DEBUG.

TorchServe's bundled log4j2.xml sends the root logger to STDOUT too (the launcher's log, which nothing
rotates) and logs `org.pytorch.serve` at DEBUG plus one ACCESS_LOG line per request; its rolling files
roll by day or 100 MB with 5 kept per day, so they grow without bound. Here: no console appender, size
rolling only (`server.log_max_mb` / `server.log_backups` of ServeConfig), and the per-request
loggers (ACCESS_LOG, the frontend's DEBUG lines, the per-prediction MODEL_METRICS/TS_METRICS lines)
only when `server.log_level=debug`.
"""
from __future__ import annotations

from pathlib import Path

LEVELS = ("error", "warn", "info", "debug")
# logger name → (appender, level when log_level is not debug); None = follow log_level
LOGGERS = {
    "ACCESS_LOG": ("access_log", "warn"),       # one line per request
    "MODEL_LOG": ("model_log", None),          # the workers' stdout/stderr (handler logging)
    "MODEL_METRICS": ("model_metrics", "warn"),  # one line per prediction per metric (Prometheus has them)
    "TS_METRICS": ("ts_metrics", "warn"),      # periodic system metrics, also in Prometheus
    "org.pytorch.serve": ("ts_log", None),
    # the frontend's per-request INFO lines ("Backend response time", "Sending response for jobId")
    "org.pytorch.serve.wlm.WorkerThread": ("ts_log", "warn"),
    "org.pytorch.serve.wlm.BatchAggregator": ("ts_log", "warn"),
    # echoes every [METRICS] line a worker prints (3 per prediction); Prometheus serves them already
    "org.pytorch.serve.wlm.WorkerLifeCycle": ("ts_log", "warn"),
}
# the Python worker's own per-request INFO line (ts/model_service_worker.py), dropped below debug
PER_REQUEST_MODEL_LOG = ".*Backend received inference at.*"


def render_log4j(logs: Path, metrics: Path, level: str, max_mb: int, backups: int) -> str:
    """log4j2.xml text with absolute paths for one instance."""
    appenders = []
    for name, folder in (("access_log", logs), ("model_log", logs), ("ts_log", logs),
                         ("model_metrics", metrics), ("ts_metrics", metrics)):
        appenders.append(f"""    <RollingFile name="{name}" fileName="{folder / name}.log" filePattern="{folder / name}.%i.log">
      <PatternLayout pattern="%d{{ISO8601}} [%-5p] %t %c - %m%n"/>
      <Policies><SizeBasedTriggeringPolicy size="{max_mb} MB"/></Policies>
      <DefaultRolloverStrategy max="{backups}" fileIndex="min"/>
    </RollingFile>""")
    loggers = []
    for logger, (appender, quiet) in LOGGERS.items():
        lvl = level if quiet is None or level == "debug" else quiet
        drop = (f'<RegexFilter regex="{PER_REQUEST_MODEL_LOG}" onMatch="DENY" onMismatch="NEUTRAL"/>'
                if logger == "MODEL_LOG" and level != "debug" else "")
        loggers.append(f'    <Logger name="{logger}" level="{lvl}" additivity="false">{drop}'
                       f'<AppenderRef ref="{appender}"/></Logger>')
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- written by `python -m serving start` from ServeConfig (server.log_*); regenerated at every start -->
<Configuration>
  <Appenders>
{chr(10).join(appenders)}
  </Appenders>
  <Loggers>
    <Logger name="io.netty" level="error" additivity="false"><AppenderRef ref="ts_log"/></Logger>
    <Logger name="org.apache" level="off"/>
{chr(10).join(loggers)}
    <Root level="{level}"><AppenderRef ref="ts_log"/></Root>
  </Loggers>
</Configuration>
"""
