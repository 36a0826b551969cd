"""One case of the GPU check per process: python -m benchmarks.gpu_cases CASE OUT_JSON (see gpu_check.py)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.gpt import GPT, PRESETS, GPTConfig, lm_loss, make_optimizer, token_loader
from benchmarks.gpt_lightning import compile_blocks
from trainers.flops import device_peak_flops

REPO = Path(__file__).resolve().parent.parent
DRY_RUN = os.environ.get("GPU_CHECK_DRY_RUN") == "1"
PRECISION = "bf16-mixed"


def settings() -> dict[str, Any]:
    """Model preset, batch and step counts: env overrides, tiny on a dry run."""
    if DRY_RUN:
        return {"model": "tiny", "batch": 2, "warmup": 1, "timed": 2}
    return {
        "model": os.environ.get("GPU_CHECK_MODEL", "gpt2-125m"),
        "batch": int(os.environ.get("GPU_CHECK_BATCH", "16")),
        "warmup": int(os.environ.get("GPU_CHECK_WARMUP", "30")),
        "timed": int(os.environ.get("GPU_CHECK_STEPS", "50")),
    }


def device() -> torch.device:
    """CUDA when present (dry runs use the CPU even where a GPU is visible)."""
    return torch.device("cuda", 0) if torch.cuda.is_available() and not DRY_RUN else torch.device("cpu")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def rates(cfg: GPTConfig, batch: int, steps: int, seconds: float, dev: torch.device, flops_per_token: float) -> dict[str, Any]:
    """tokens/s, achieved TFLOP/s and MFU of a timed window."""
    return token_rates(batch * cfg.seq_len, steps, seconds, dev, flops_per_token)


def token_rates(tokens_per_step: int, steps: int, seconds: float, dev: torch.device, flops_per_token: float) -> dict[str, Any]:
    """tokens/s, achieved TFLOP/s and MFU of a timed window of `steps` steps of `tokens_per_step` tokens."""
    tokens_per_s = steps * tokens_per_step / seconds
    achieved = tokens_per_s * flops_per_token
    peak = device_peak_flops(dev, PRECISION)
    return {
        "steps_timed": steps, "seconds": round(seconds, 4), "tokens_per_s": round(tokens_per_s, 1),
        "steps_per_s": round(steps / seconds, 3), "tflops": round(achieved / 1e12, 2),
        "mfu": round(achieved / peak, 4) if peak else None, "peak_tflops": peak / 1e12 if peak else None,
        "flops_per_token": flops_per_token,
        "max_memory_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == "cuda" else None,
    }


def plain_loop(compile_model: bool) -> dict[str, Any]:
    """The baseline: a hand-written loop, bf16 autocast, fused AdamW, the same batches."""
    s, dev = settings(), device()
    cfg = PRESETS[s["model"]]
    batches = token_loader(cfg, s["batch"], s["warmup"] + s["timed"], pin_memory=dev.type == "cuda")
    torch.manual_seed(0)
    model = GPT(cfg).to(dev)
    flops_per_token = model.flops_per_token()
    if compile_model:
        compile_blocks(model)
    opt = make_optimizer(model.parameters(), dev.type)
    started = time.perf_counter()
    t0 = started
    for i, batch in enumerate(batches):
        if i == s["warmup"]:
            sync(dev)
            t0 = time.perf_counter()
        x = batch["input_ids"].to(dev, non_blocking=True)
        y = batch["labels"].to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = lm_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(dev)
    t1 = time.perf_counter()
    out = rates(cfg, s["batch"], s["timed"], t1 - t0, dev, flops_per_token)
    return {**out, "warmup_seconds": round(t0 - started, 2), "final_loss": float(loss), "params": model.num_params()}


def build_strategy(name: str, accelerator: str) -> tuple[Any, dict[str, Any], str]:
    """Strategy and Trainer kwargs from conf/ (Hydra compose, as train.py would), else Lightning's stock ones."""
    trainer_group = "gpu" if accelerator == "gpu" else "cpu"
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        from trainers.resolvers import register
    except ImportError as err:
        return _stock_strategy(name), {"accelerator": accelerator, "devices": 1, "precision": PRECISION}, f"Lightning stock ({err})"
    if not (REPO / "conf" / "strategy" / f"{name}.yaml").exists():
        return _stock_strategy(name), {"accelerator": accelerator, "devices": 1, "precision": PRECISION}, f"Lightning stock (no conf/strategy/{name}.yaml yet)"
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"strategy={name}", f"trainer={trainer_group}", f"trainer.precision={PRECISION}",
                                          f"paths.output_root={tempfile.mkdtemp(prefix='gpu_check_')}"])
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_kwargs.pop("_target_", None)
    return instantiate(cfg.strategy), trainer_kwargs, f"conf/strategy/{name}.yaml"


def _stock_strategy(name: str) -> Any:
    from lightning.pytorch.strategies import ModelParallelStrategy

    return {"single": "auto", "fsdp": ModelParallelStrategy(), "deepspeed_stage_2": "deepspeed_stage_2"}[name]


def trainer_loop(strategy_name: str, compile_model: bool, checkpoint: bool) -> dict[str, Any]:
    """Our trainer: Lightning Trainer from conf/trainer, the strategy from conf/strategy, ThroughputMonitor."""
    from lightning.pytorch import Callback, Trainer
    from benchmarks.gpt_lightning import GPTLightningModule
    from trainers.callbacks.throughput import ThroughputMonitor

    s, dev = settings(), device()
    cfg = PRESETS[s["model"]]
    total = s["warmup"] + s["timed"]
    batches = token_loader(cfg, s["batch"], total, pin_memory=dev.type == "cuda")

    class WindowTimer(Callback):
        """Wall time between the end of optimizer step `warmup` and the last one (device synchronised)."""

        def __init__(self) -> None:
            self.t0 = self.t1 = None
            self.started = time.perf_counter()

        def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
            if trainer.global_step in (s["warmup"], total):
                sync(trainer.strategy.root_device)
                if trainer.global_step == s["warmup"]:
                    self.t0 = time.perf_counter()
                else:
                    self.t1 = time.perf_counter()

    strategy, trainer_kwargs, source = build_strategy(strategy_name, "gpu" if dev.type == "cuda" else "cpu")
    timer, monitor = WindowTimer(), ThroughputMonitor(log_every_n_steps=max(1, s["timed"] // 5))
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    trainer_kwargs.update(
        strategy=strategy, callbacks=[timer, monitor], logger=False, max_steps=total, max_epochs=1,
        limit_train_batches=None, limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(workdir),
        accumulate_grad_batches=1, log_every_n_steps=max(1, s["timed"] // 5),
    )
    torch.manual_seed(0)
    module = GPTLightningModule(cfg, compile_model=compile_model)
    trainer = Trainer(**trainer_kwargs)
    trainer.fit(module, batches)
    out = rates(cfg, s["batch"], s["timed"], timer.t1 - timer.t0, trainer.strategy.root_device, module.flops_per_sample() / cfg.seq_len)
    out.update(strategy_source=source, strategy_class=type(trainer.strategy).__name__,
               warmup_seconds=round(timer.t0 - timer.started, 2), callback=getattr(monitor, "last_metrics", None))
    if checkpoint:
        from benchmarks.gpu_consolidate import save_and_consolidate

        out["checkpoint"] = save_and_consolidate(trainer, module, workdir)
    return out


CASES: dict[str, Any] = {
    "plain_eager": lambda: plain_loop(False),
    "plain_compile": lambda: plain_loop(True),
    "single_eager": lambda: trainer_loop("single", False, False),
    "single_compile": lambda: trainer_loop("single", True, False),
    "fsdp_eager": lambda: trainer_loop("fsdp", False, True),
    "fsdp_compile": lambda: trainer_loop("fsdp", True, False),
    "deepspeed_stage_2_eager": lambda: trainer_loop("deepspeed_stage_2", False, True),
    "deepspeed_stage_2_compile": lambda: trainer_loop("deepspeed_stage_2", True, False),
}


def _lm_case(strategy: str, compile_model: bool) -> Any:
    def run() -> dict[str, Any]:
        from benchmarks import gpu_lm_cases

        s, dev = settings(), device()
        if strategy == "plain":
            return gpu_lm_cases.lm_plain(compile_model, s, dev, token_rates, sync, DRY_RUN)
        return gpu_lm_cases.lm_trainer(strategy, compile_model, s, dev, token_rates, sync, DRY_RUN)
    return run


# lm_llama_350m (conf/experiment): lm_plain_eager, lm_single_compile, lm_fsdp_eager, ...
CASES.update({f"lm_{strategy}_{mode}": _lm_case(strategy, mode == "compile")
              for strategy in ("plain", "single", "fsdp", "deepspeed_stage_2") for mode in ("eager", "compile")})


def main(argv: list[str]) -> int:
    """Run one case; its result (or the exception) goes to OUT_JSON for the orchestrator."""
    name, out_path = argv[0], Path(argv[1])
    if name == "export_handler":
        from benchmarks.gpu_export import export_and_time

        result = export_and_time(device(), DRY_RUN)
    else:
        result = CASES[name]()
    result.update(case=name, device=torch.cuda.get_device_name(0) if device().type == "cuda" else "cpu",
                  torch=torch.__version__, settings=settings())
    out_path.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
