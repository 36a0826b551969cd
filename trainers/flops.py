"""Model FLOPs and device peaks: the one home of MFU arithmetic (no Lightning import, so plain loops use it too)."""
from __future__ import annotations

import torch

# Dense peak FLOP/s per device (vendor datasheets, no sparsity), keyed by a lower-case substring of
# torch.cuda.get_device_name. Ordered: the more specific names come first ("h100 pcie" before "h100").
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "h200 nvl": {"bf16": 835.5e12, "fp16": 835.5e12, "fp32": 60.0e12, "tf32": 417.6e12},
    "h200": {"bf16": 989.5e12, "fp16": 989.5e12, "fp32": 66.9e12, "tf32": 494.7e12},
    "h100 nvl": {"bf16": 835.5e12, "fp16": 835.5e12, "fp32": 60.0e12, "tf32": 417.6e12},
    "h100 pcie": {"bf16": 756.0e12, "fp16": 756.0e12, "fp32": 51.2e12, "tf32": 378.0e12},
    "h100": {"bf16": 989.5e12, "fp16": 989.5e12, "fp32": 66.9e12, "tf32": 494.7e12},
    "a100": {"bf16": 312.0e12, "fp16": 312.0e12, "fp32": 19.5e12, "tf32": 156.0e12},
    "l40s": {"bf16": 362.1e12, "fp16": 362.1e12, "fp32": 91.6e12, "tf32": 183.0e12},
    "l4": {"bf16": 121.0e12, "fp16": 121.0e12, "fp32": 30.3e12, "tf32": 60.0e12},
    "a10g": {"bf16": 70.0e12, "fp16": 70.0e12, "fp32": 31.2e12, "tf32": 35.0e12},
}


def precision_key(precision: str) -> str:
    """Lightning precision string ('bf16-mixed', '16-mixed', '32-true', ...) → key of PEAK_FLOPS."""
    if "bf16" in precision:
        return "bf16"
    if "16" in precision:
        return "fp16"
    # fp32 matmuls run on tensor cores (tf32) once float32_matmul_precision is 'high' or 'medium'
    return "tf32" if torch.get_float32_matmul_precision() != "highest" else "fp32"


def peak_flops_for_name(device_name: str, precision: str) -> float | None:
    """Peak dense FLOP/s of a device named like torch.cuda.get_device_name, or None when not in the table."""
    name = device_name.lower()
    for key, table in PEAK_FLOPS.items():
        if key in name:
            return table[precision_key(precision)]
    return None


def device_peak_flops(device: torch.device, precision: str) -> float | None:
    """Peak dense FLOP/s of one device for the precision, or None when unknown (CPUs, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    return peak_flops_for_name(torch.cuda.get_device_name(device), precision)


def decoder_flops_per_token(n_params: int, n_layers: int, n_heads: int, head_dim: int, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token of a decoder: 6·N + 12·L·H·Q·T.

    N: parameters taking part in matmuls (position embeddings excluded, tied input/output embedding
    counted once, as in PaLM's appendix B and nanoGPT); the second term is attention's score and
    value products, which N does not see. With causal masking kernels skip about half of that term,
    but MFU conventionally counts it in full (PaLM).
    """
    return 6.0 * n_params + 12.0 * n_layers * n_heads * head_dim * seq_len
