"""Export a trained run for serving: python export.py run_dir=PATH [checkpoint=best|last|PATH] [version=1.0]."""
from __future__ import annotations

import json
import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from core.rundir import RunDir
from core.schema import defaults
from serving.export.config import ExportConfig
from trainers.override_errors import reports_user_errors, run_with_config_errors
from trainers.resolvers import register

register()
# the one place export.py's keys and defaults live is ExportConfig; conf/export.yaml composes onto this node
ConfigStore.instance().store(name="export_options", node=defaults(ExportConfig))


def typed_version(cfg: DictConfig) -> str:
    """The version exactly as typed: Hydra reads `version=1.10` as the float 1.1, which is another version."""
    from hydra.core.hydra_config import HydraConfig

    for override in HydraConfig.get().overrides.task:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "version":
            return value.strip().strip("'\"")
    return str(cfg.version)


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@reports_user_errors("export.py")  # what the handlers below do not name (e.g. a net config refused when built)
def main(cfg: DictConfig) -> None:
    """Export, check parity, package; exit 2 on a config error, 1 with the reason on any other failure."""
    from serving.export.config import export_config
    from serving.export.exporter import export_run
    from serving.export.parity import ParityError, Tolerance
    from serving.export.run_loading import ExportError

    opts = export_config(cfg)  # a config error exits 2 (reports_user_errors)
    if opts.format == "hf":
        from serving.export.hf_format import export_hf

        try:
            done = export_hf(opts.run_dir, checkpoint=opts.checkpoint, parity_batches=opts.parity.batches,
                             tolerance=Tolerance(opts.parity.max_abs_diff, opts.parity.min_argmax_agreement))
        except (ExportError, ParityError, FileNotFoundError, ValueError) as err:
            print(f"export.py: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        print(json.dumps(done))
        return
    try:
        report = export_run(
            opts.run_dir, checkpoint=opts.checkpoint, version=typed_version(cfg), model_name=opts.model_name,
            overwrite=opts.overwrite, parity_batches=opts.parity.batches,
            tolerance=Tolerance(opts.parity.max_abs_diff, opts.parity.min_argmax_agreement),
            wanted=list(opts.targets), build_archive=opts.package,
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
    run_with_config_errors(main, "export.py", "export")
