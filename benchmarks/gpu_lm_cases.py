"""The GPU check's LM cases: `lm_llama_350m` (conf/experiment) as a plain loop vs the LM task in a Trainer.

Cases lm_{plain,single,fsdp,deepspeed_stage_2}_{eager,compile}: the composed experiment's CausalLM, AdamW
groups, activation checkpointing and per-block compile; random token windows of its vocabulary and seq_len
(the GPU check times the model, not the tokenizer). MFU from the task's `flops_per_token`. Targets: single
>= 45 % MFU and >= 0.97 of the plain loop, fsdp (FSDP2, param_dtype=bf16) >= 0.95. A dry run shrinks the
model and runs on the CPU.
"""
from __future__ import annotations

import tempfile
import time
from typing import Any

import torch

STRATEGIES = ("single", "fsdp", "deepspeed_stage_2")
TARGETS = {"single": {"mfu": 0.45, "vs_plain": 0.97}, "fsdp": {"vs_plain": 0.95}}
SHRUNK = ["datamodule.seq_len=64", "model.net.config.hidden_size=64", "model.net.config.intermediate_size=128",
          "model.net.config.num_hidden_layers=2", "model.net.config.num_attention_heads=4",
          "model.net.config.num_key_value_heads=2", "trainer.accelerator=cpu"]


def lm_config(strategy: str, compile_model: bool, dry_run: bool) -> Any:
    """The composed lm_llama_350m with this strategy (FSDP2 keeps param_dtype=bf16; the others have no such key)."""
    from omegaconf import open_dict

    from trainers.compose import compose_train

    if strategy not in STRATEGIES:
        raise KeyError(f"LM GPU case strategy {strategy!r} is not one of {STRATEGIES}")
    overrides = ["+experiment=lm_llama_350m", f"strategy={strategy}", f"model.compile={str(compile_model).lower()}",
                 "run_id=gpu_check", "trainer.devices=1", "trainer.num_nodes=1"]
    if strategy != "fsdp":  # the experiment's FSDP2 mixed-precision keys mean nothing to these strategies
        overrides += ["~strategy.param_dtype", "~strategy.reduce_dtype"]
    cfg = compose_train([*overrides, *(SHRUNK if dry_run else [])], tempfile.mkdtemp(prefix="gpu_check_lm_"))
    with open_dict(cfg):  # what train.py takes from the tokens datamodule
        cfg.model.vocab_size, cfg.model.seq_len = int(cfg.datamodule.vocab_size), int(cfg.datamodule.seq_len)
    return cfg


def token_batches(cfg: Any, batch: int, steps: int, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """`steps` batches of random windows of the experiment's vocabulary and length, in order (fixed seed: every
    case sees the same); a DataLoader with a batch size, which DeepSpeed reads for its micro-batch."""
    gen = torch.Generator().manual_seed(0)
    seq, vocab = int(cfg.model.seq_len), int(cfg.model.vocab_size)
    ids = torch.randint(0, vocab, (batch * steps, seq + 1), generator=gen)
    data = [{"input_ids": row[:-1], "labels": row[1:]} for row in ids]
    return torch.utils.data.DataLoader(data, batch_size=batch, shuffle=False, drop_last=True, pin_memory=pin_memory)


def lm_plain(compile_model: bool, s: dict[str, Any], dev: torch.device, rates: Any, sync: Any, dry_run: bool) -> dict[str, Any]:
    """Hand-written loop on the experiment's net: same AC/compile, AdamW groups, bf16 autocast, grad clipping."""
    import torch.nn.functional as F
    from hydra.utils import instantiate

    from trainers.schedules import decay_param_groups

    cfg = lm_config("single", compile_model, dry_run)
    torch.manual_seed(0)
    net = instantiate(cfg.model.net).to(dev)
    if cfg.model.activation_checkpointing:
        net.enable_activation_checkpointing()
    if compile_model:
        net.compile_blocks()
    opt = instantiate(cfg.model.optimizer)(params=decay_param_groups(net.named_parameters(), float(cfg.model.weight_decay)))
    clip = cfg.trainer.get("gradient_clip_val")
    batches = token_batches(cfg, s["batch"], s["warmup"] + s["timed"], pin_memory=dev.type == "cuda")
    started = t0 = time.perf_counter()
    for i, batch in enumerate(batches):
        if i == s["warmup"]:
            sync(dev)
            t0 = time.perf_counter()
        x, y = batch["input_ids"].to(dev, non_blocking=True), batch["labels"].to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            logits = net(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), float(clip))
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(dev)
    out = rates(s["batch"] * int(cfg.model.seq_len), s["timed"], time.perf_counter() - t0, dev,
                float(net.flops_per_token(int(cfg.model.seq_len))))
    return {**out, "warmup_seconds": round(t0 - started, 2), "final_loss": float(loss.detach()),
            "params": sum(p.numel() for p in net.parameters())}


def lm_trainer(strategy: str, compile_model: bool, s: dict[str, Any], dev: torch.device, rates: Any, sync: Any,
               dry_run: bool) -> dict[str, Any]:
    """The LM task (trainers/tasks/language_modeling.py) in a Trainer with the experiment's strategy and precision."""
    from hydra.utils import instantiate
    from lightning.pytorch import Callback, Trainer
    from omegaconf import OmegaConf

    cfg = lm_config(strategy, compile_model, dry_run)
    total = s["warmup"] + s["timed"]
    times: dict[str, float] = {"started": time.perf_counter()}

    class WindowTimer(Callback):
        def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
            if trainer.global_step in (s["warmup"], total):
                sync(trainer.strategy.root_device)
                times["t0" if trainer.global_step == s["warmup"] else "t1"] = time.perf_counter()

    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in ("_target_", "max_time", "val_check_interval", "check_val_every_n_epoch"):
        kwargs.pop(key, None)
    kwargs.update(strategy=instantiate(cfg.strategy), callbacks=[WindowTimer()], logger=False, max_steps=total,
                  max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, accelerator=dev.type if dev.type == "cpu" else "gpu",
                  default_root_dir=tempfile.mkdtemp(prefix="gpu_check_lm_"))
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    trainer = Trainer(**kwargs)
    trainer.fit(module, token_batches(cfg, s["batch"], total, pin_memory=dev.type == "cuda"))
    out = rates(s["batch"] * int(cfg.model.seq_len), s["timed"], times["t1"] - times["t0"], trainer.strategy.root_device,
                module.flops_per_token())
    return {**out, "strategy_class": type(trainer.strategy).__name__, "warmup_seconds": round(times["t0"] - times["started"], 2),
            "targets": TARGETS.get(strategy, {})}
