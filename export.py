"""Export a trained run for serving: python export.py run_dir=PATH [checkpoint=best|last|PATH] [version=1.0]."""
from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig

from core.rundir import RunDir
from trainers.resolvers import register

register()
FORMATS = ("torchserve", "hf")


def typed_version(cfg: DictConfig) -> str:
    """The version exactly as typed: Hydra reads `version=1.10` as the float 1.1, which is another version."""
    from hydra.core.hydra_config import HydraConfig

    for override in HydraConfig.get().overrides.task:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "version":
            return value.strip().strip("'\"")
    return str(cfg.version)


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    """Export, check parity, package; exit 1 with the reason on any failure."""
    from serving.export.exporter import export_run
    from serving.export.parity import ParityError, Tolerance
    from serving.export.run_loading import ExportError

    if str(cfg.format) not in FORMATS:
        print(f"export.py: format={cfg.format!r} is not known: use one of {', '.join(FORMATS)}", file=sys.stderr)
        raise SystemExit(2)
    if cfg.format == "hf":
        from serving.export.hf_format import export_hf

        try:
            done = export_hf(cfg.run_dir, checkpoint=str(cfg.checkpoint), parity_batches=int(cfg.parity.batches),
                             tolerance=Tolerance(float(cfg.parity.max_abs_diff), float(cfg.parity.min_argmax_agreement)))
        except (ExportError, ParityError, FileNotFoundError, ValueError) as err:
            print(f"export.py: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        print(json.dumps(done))
        return
    try:
        report = export_run(
            cfg.run_dir, checkpoint=str(cfg.checkpoint), version=typed_version(cfg), model_name=cfg.model_name,
            overwrite=bool(cfg.overwrite), parity_batches=int(cfg.parity.batches),
            tolerance=Tolerance(float(cfg.parity.max_abs_diff), float(cfg.parity.min_argmax_agreement)),
            wanted=list(cfg.targets), build_archive=bool(cfg.package),
        )
    except (ExportError, ParityError, FileNotFoundError, ValueError) as err:
        print(f"export.py: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    for target, info in report["targets"].items():
        parity = info.get("parity") or {}
        print(f"{target}: {info['status']}" + (f" (max abs diff {parity['max_abs_diff']:.3g}, argmax agreement "
                                              f"{parity['argmax_agreement']:.4f} on {parity['samples']} samples)"
                                              if parity else f" ({info.get('reason', '')})"))
    export = RunDir(report["run_dir"]).export
    if "path" in report.get("archive", {}):
        print(f"archive: {export.path / report['archive']['path']}")
    print(json.dumps({"status": report["status"], "export_json": str(export.export_json_path)}))


if __name__ == "__main__":
    main()
