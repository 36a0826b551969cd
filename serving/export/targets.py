"""Export targets of the inner nn.Module: TorchScript (`model.pt`) and torch.export (`model.pt2`)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from core.rundir import EXPORTED_PROGRAM, PREPROCESS, SCRIPTED_MODEL

TORCHSCRIPT = "torchscript"
TORCH_EXPORT = "torch_export"
FILES = {TORCHSCRIPT: SCRIPTED_MODEL, TORCH_EXPORT: EXPORTED_PROGRAM}


def export_torchscript(net: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path,
                       extra_files: dict[str, str]) -> dict[str, Any]:
    """torch.jit.script when the net allows it (shape-independent), else torch.jit.trace on real inputs."""
    method, script_error = "script", None
    try:
        module = torch.jit.script(net)
    except Exception as err:  # noqa: BLE001 - scripting fails with many error types; tracing is the fallback
        method, script_error = "trace", f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            module = torch.jit.trace(net, example, strict=False, check_trace=True)
        tracer_warnings = sorted({str(w.message).splitlines()[0][:200] for w in caught
                                  if issubclass(w.category, torch.jit.TracerWarning)})
    torch.jit.save(module, str(path), _extra_files=extra_files)
    info: dict[str, Any] = {"status": "exported", "method": method, "file": path.name}
    if script_error:
        info["script_error"] = script_error
        info["tracer_warnings"] = tracer_warnings
    return info


def export_program(net: torch.nn.Module, example: tuple[torch.Tensor, ...], shapes: dict[str, Any],
                   path: Path) -> dict[str, Any]:
    """torch.export with the task's dynamic dimensions (the batch); an unsupported model is reported, not fatal."""
    try:
        with torch.no_grad():
            program = torch.export.export(net, example, dynamic_shapes=shapes, strict=False)
        torch.export.save(program, str(path))
    except Exception as err:  # noqa: BLE001 - report why this model does not export
        path.unlink(missing_ok=True)
        return {"status": "unsupported", "reason": f"{type(err).__name__}: {str(err).splitlines()[0][:500]}"}
    return {"status": "exported", "method": "torch.export (strict=False, dynamic batch)", "file": path.name}


def loader(target: str) -> Callable[[Path], Callable[..., torch.Tensor]]:
    """How to load an exported file back into a callable, as a consumer would."""
    if target == TORCHSCRIPT:
        return lambda path: torch.jit.load(str(path), map_location="cpu").eval()
    return lambda path: torch.export.load(str(path)).module()


def spec_extra_file(spec_dict: dict[str, Any]) -> dict[str, str]:
    """The spec embedded in model.pt as well, so the file describes its own inputs."""
    return {PREPROCESS: json.dumps(spec_dict, sort_keys=True)}
