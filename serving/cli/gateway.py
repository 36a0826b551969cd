"""`gateway start|reload|stop|status|route`: the canary nginx in front of TorchServe (GatewayConfig)."""
from __future__ import annotations

import argparse

from core.errors import ConfigError
from serving.cli.common import print_json, split_overrides
from serving.torchserve.client import ServingError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `gateway`."""
    p = subparsers.add_parser("gateway", help="canary gateway (nginx): start|reload|stop|status, "
                                              "route NAME champion=V [candidate=V percent=P | clear]")
    p.add_argument("action", choices=["start", "reload", "stop", "status", "route"])
    p.add_argument("items", nargs="*", metavar="ARG|KEY=VALUE",
                   help="route: NAME champion=V candidate=V percent=P clear; others: GatewayConfig overrides (serving/gateway/config.py)")
    p.set_defaults(func=run_gateway)


ROUTE_KEYS = ("champion", "candidate", "percent")


def gateway_config(overrides: list[str]):
    """`key=value` overrides → a validated GatewayConfig (core/schema.py)."""
    from core.schema import from_overrides
    from serving.gateway.config import GatewayConfig

    return from_overrides(GatewayConfig, overrides)


def run_gateway(args: argparse.Namespace) -> int:
    """Dispatch one gateway action; user errors become one-line messages."""
    from serving.gateway.control import Gateway, load_running_config

    overrides, rest = split_overrides(args.items)
    route = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] in ROUTE_KEYS}
    overrides = [o for o in overrides if o.split("=", 1)[0] not in ROUTE_KEYS]
    try:
        cfg = gateway_config(overrides)
        # every action but start works on the running gateway's own settings (keys source, TLS, ports)
        gw = Gateway(cfg if args.action == "start" else load_running_config(cfg))
        if args.action == "start":
            state = gw.start()
            print_json({"url": gw.url(), "https_port": state["https_port"], "http_port": state["http_port"],
                        "routes": state["routes"]})
        elif args.action == "reload":
            print_json({"reloaded": True, "routes": gw.reload()["routes"]})
        elif args.action == "stop":
            print_json({"stopped": gw.stop()})
        elif args.action == "status":
            print_json({"running": bool(gw.pid()), **gw.state()})
        else:
            if not rest or rest[0] == "clear" or rest[1:] not in ([], ["clear"]):
                raise ServingError("usage: gateway route NAME [champion=V] [candidate=V percent=P] [clear]")
            name, clear = rest[0], rest[1:] == ["clear"]
            print_json({name: gw.set_route(name, route.get("champion"), route.get("candidate"),
                                           float(route["percent"]) if "percent" in route else None, clear)})
    except ConfigError:  # a typo'd key: the standard message and exit 2 (serving/cli/__init__.py)
        raise
    except (ValueError, FileNotFoundError) as err:
        raise ServingError(str(err)) from err
    return 0
