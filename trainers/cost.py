"""Device-hours and estimated cost: a configurable price table (conf/cost/), per run and before a Slurm submit."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from trainers.rundir import atomic_write_json, read_json

CPU = "cpu"


@dataclass(frozen=True)
class CostEstimate:
    """Device-hours of a job and what they cost (None when the table has no price for the device)."""

    device_kind: str
    devices: int
    nodes: int
    hours: float
    device_hours: float
    cost: float | None
    currency: str
    price_per_device_hour: float | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for run.json)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for people: '8 device-hours of h100 (2 nodes x 4 devices x 1.00 h) ≈ 24.00 USD'."""
        shape = f"{self.nodes} node(s) x {self.devices} device(s) x {self.hours:.2f} h"
        price = (f"≈ {self.cost:.2f} {self.currency}" if self.cost is not None
                 else f"cost unknown: no price for '{self.device_kind}' in cost.prices_per_device_hour")
        return f"{self.device_hours:.3f} device-hours of {self.device_kind} ({shape}) {price}"


class PriceTable:
    """Prices per device-hour by device kind (lower-case substring of the GPU name, or 'cpu')."""

    def __init__(self, prices_per_device_hour: Mapping[str, float], currency: str = "USD") -> None:
        prices = {str(k).lower(): float(v) for k, v in dict(prices_per_device_hour).items()}
        negative = [k for k, v in prices.items() if v < 0]
        if negative:
            raise ValueError(f"cost.prices_per_device_hour: negative prices for {negative}")
        self.prices = prices
        self.currency = currency

    def kind_of(self, device_name: str) -> str:
        """The table's key for a device name ('NVIDIA H100 80GB HBM3' → 'h100'); longest match wins."""
        name = device_name.lower()
        if name == CPU:
            return CPU
        matches = [k for k in self.prices if k != CPU and k in name]
        return max(matches, key=len) if matches else name

    def price(self, device_kind: str) -> float | None:
        """Price of one device-hour, or None when the kind is not in the table."""
        return self.prices.get(self.kind_of(device_kind))

    def estimate(self, devices: int, nodes: int, hours: float, device_kind: str) -> CostEstimate:
        """Device-hours (devices per node x nodes x hours) and their cost."""
        if devices < 1 or nodes < 1 or hours < 0:
            raise ValueError(f"devices={devices}, nodes={nodes}, hours={hours}: need devices, nodes >= 1, hours >= 0")
        kind = self.kind_of(device_kind)
        price = self.prices.get(kind)
        device_hours = devices * nodes * hours
        return CostEstimate(device_kind=kind, devices=devices, nodes=nodes, hours=hours, device_hours=device_hours,
                            cost=None if price is None else device_hours * price, currency=self.currency,
                            price_per_device_hour=price)


def estimate(devices: int, nodes: int, hours: float, device_kind: str, table: PriceTable) -> CostEstimate:
    """What a job of this shape costs: e.g. before `sbatch` (print `.describe()`)."""
    return table.estimate(devices, nodes, hours, device_kind)


def local_device_kind(root_device: torch.device) -> str:
    """The device name a price table matches: the CUDA device's name, or 'cpu'."""
    if root_device.type == "cuda":
        return torch.cuda.get_device_name(root_device)
    return CPU


def run_cost(table: PriceTable, devices: int, nodes: int, wall_seconds: float, root_device: torch.device) -> dict:
    """run.json fields of one attempt: device-hours and estimated cost of the wall time it ran."""
    return table.estimate(devices, nodes, wall_seconds / 3600.0, local_device_kind(root_device)).as_dict()


def process_wall_seconds() -> float:
    """Seconds since this process started: the devices were held for imports and data setup too, not only fit."""
    import psutil

    return max(0.0, time.time() - psutil.Process(os.getpid()).create_time())


def record_attempt_cost(run_json: Path, table: PriceTable, devices: int, nodes: int, wall_seconds: float,
                        root_device: torch.device) -> dict[str, Any]:
    """Rank 0: this attempt's device-hours and cost into run.json (attempts[-1]) and the run's running total."""
    info = read_json(run_json)
    this = run_cost(table, devices, nodes, wall_seconds, root_device)
    this["wall_seconds"] = round(wall_seconds, 2)
    attempts = info.setdefault("attempts", [])
    if attempts:
        attempts[-1]["cost"] = this
    priced = [a["cost"] for a in attempts if isinstance(a.get("cost"), dict)] or [this]
    costs = [c["cost"] for c in priced]
    info["cost"] = {
        "device_hours": sum(c["device_hours"] for c in priced),
        "estimated_cost": None if any(c is None for c in costs) else sum(costs),
        "currency": table.currency,
        "device_kind": this["device_kind"],
        "devices": devices,
        "nodes": nodes,
        "attempts_priced": len(priced),
    }
    atomic_write_json(run_json, info)
    return info["cost"]
