"""GPU check, export part: TorchScript export of classifiers and in-process request latency on the device."""
from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from benchmarks.gpt import GPT, PRESETS, GPTConfig


class GPTClassifier(nn.Module):
    """The decoder with a classification head: last position's hidden state → logits (what serving exports)."""

    def __init__(self, cfg: GPTConfig, num_classes: int) -> None:
        super().__init__()
        self.gpt = GPT(cfg)
        self.head = nn.Linear(cfg.d_model, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.gpt.wte(input_ids) + self.gpt.wpe(torch.arange(input_ids.shape[1], device=input_ids.device))
        for block in self.gpt.blocks:
            x = block(x)
        return self.head(self.gpt.ln_f(x)[:, -1])


def _latency(fn: Callable[[], Any], dev: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """p50/p99/mean milliseconds of fn() with the device synchronised around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 3), "p99_ms": round(times[min(len(times) - 1, int(0.99 * len(times)))], 3),
            "mean_ms": round(statistics.fmean(times), 3), "repeats": repeats}


def _script(model: nn.Module, example: torch.Tensor, path: Path) -> torch.jit.ScriptModule:
    """Trace → save → load back: the file is what serving loads."""
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), example)
    traced.save(str(path))
    return torch.jit.load(str(path), map_location=example.device)


def digits_request_path(dev: torch.device, workdir: Path, repeats: int) -> dict[str, Any]:
    """SimpleCNN on digits: PNG bytes → Shipyard preprocessing → TorchScript forward on the device → top-k JSON."""
    from PIL import Image

    from runtime.preprocessing import PreprocessSpec, postprocess, preprocess_image_bytes
    from trainers.nets.cnn import SimpleCNN

    spec = PreprocessSpec(kind="image", labels=[str(d) for d in range(10)], image_size=[8, 8], channels=1,
                          mean=[0.3056], std=[0.3778])
    scripted = _script(SimpleCNN(num_classes=10, in_channels=1).to(dev), torch.rand(1, 1, 8, 8, device=dev), workdir / "cnn.pt")
    buf = io.BytesIO()
    Image.fromarray((torch.rand(8, 8) * 255).byte().numpy(), mode="L").save(buf, format="PNG")
    png = buf.getvalue()

    try:  # the TorchServe handlers' own request path (runtime/classifier_io.py)
        from runtime import classifier_io as hio
    except ImportError:
        hio = None

    def request(batch: int) -> Callable[[], Any]:
        def run() -> Any:
            if hio is not None:
                inputs = hio.collate_images([hio.decode_image_request(png, spec).value for _ in range(batch)])
                return hio.format_predictions(hio.predict_batch(scripted, inputs, dev), spec)
            x = torch.stack([preprocess_image_bytes(png, spec) for _ in range(batch)]).to(dev, non_blocking=True)
            with torch.inference_mode():
                logits = scripted(x)
            return postprocess(logits.float().cpu(), spec, top_k=3)
        return run

    what = ("runtime.classifier_io request path (decode, validate, collate, TorchScript forward on the device, "
            "top-k JSON)" if hio is not None else "decode+preprocess+TorchScript forward+postprocess (no serving handlers)")
    return {"what": what, "batch_1": _latency(request(1), dev, 10, repeats), "batch_8": _latency(request(8), dev, 10, repeats)}


def gpt_classifier_forward(dev: torch.device, workdir: Path, model_name: str, repeats: int) -> dict[str, Any]:
    """The decoder's classification variant exported to TorchScript (bf16 on GPU): forward latency at seq 128."""
    cfg = PRESETS[model_name]
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model = GPTClassifier(cfg, num_classes=4).to(dev, dtype)
    seq = min(128, cfg.seq_len)
    scripted = _script(model, torch.randint(0, cfg.vocab_size, (1, seq), device=dev), workdir / "gpt_cls.pt")
    out: dict[str, Any] = {"model": model_name, "seq_len": seq, "dtype": str(dtype)}
    for batch in (1, 8):
        ids = torch.randint(0, cfg.vocab_size, (batch, seq), device=dev)
        with torch.inference_mode():
            eager, traced = model(ids).float(), scripted(ids).float()
            out[f"batch_{batch}"] = _latency(lambda: scripted(ids), dev, 5, repeats)
        out[f"batch_{batch}"]["max_abs_diff_vs_eager"] = float((eager - traced).abs().max())
    return out


def export_and_time(dev: torch.device, dry_run: bool) -> dict[str, Any]:
    """Both export targets, timed on the device."""
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_export_"))
    repeats = 3 if dry_run else 200
    return {
        "digits_cnn": digits_request_path(dev, workdir, repeats),
        "gpt_classifier": gpt_classifier_forward(dev, workdir, "tiny" if dry_run else "gpt2-125m", repeats),
    }
