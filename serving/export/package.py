"""Build a versioned `.mar` with torch-model-archiver: entry handler, runtime/, spec, labels, tokenizer, card, metadata."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from core.export_dir import ARCHIVE_DATA_FILES, ExportDir
from core.rundir import SCRIPTED_MODEL
from serving.export.run_loading import ExportError

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME_DIR = REPO_ROOT / "runtime"
# the archive's --handler: a top-level module in the model dir that subclasses runtime.handlers.<file>
HANDLERS_DIR = Path(__file__).resolve().parent / "entries"


def runtime_files() -> tuple[Path, ...]:
    """Every source file of the runtime package: shipped whole as `runtime/` (relative imports inside)."""
    return tuple(sorted(p for p in RUNTIME_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                        and p.suffix != ".pyc"))


def archive_name(helper: Path) -> str:
    """Where a runtime file lies inside the archive: `runtime/...`, as in the repository."""
    return helper.relative_to(REPO_ROOT).as_posix()


HELPER_FILES = runtime_files()
VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$")  # torch-model-archiver's own rule
ARCHIVES_DIR = "archives"


def validate_version(version: str) -> str:
    """MAJOR[.MINOR[.PATCH]] digits only: what TorchServe orders and pins versions by."""
    version = str(version).strip()
    if not VERSION_RE.match(version):
        raise ExportError(f"version={version!r} is not a valid model version: use 1 to 3 dot-separated "
                          "numbers, e.g. version=1.0 or version=2.1.3")
    return version


def validate_model_name(name: str) -> str:
    """A name torch-model-archiver and TorchServe's URLs accept."""
    if not NAME_RE.match(name):
        raise ExportError(f"model_name={name!r} is not allowed: use letters, digits, '_', '-', '.', "
                          "starting with a letter or digit")
    return name


def archive_path(export_dir: Path, name: str, version: str) -> Path:
    """RUN_DIR/export/archives/<version>/<name>.mar (one folder per version)."""
    return export_dir / ARCHIVES_DIR / version / f"{name}.mar"


def check_not_existing(path: Path, overwrite: bool) -> None:
    """Never replace an archive of the same name and version unless asked to."""
    if path.exists() and not overwrite:
        raise ExportError(f"{path} already exists: an archive of this model name and version was built before. "
                          "Bump the version (version=...) or pass overwrite=true to replace it")


def stage_extra_files(staging: Path, model_files: Path, tokenizer: bool,
                      data_files: tuple[str, ...] = ARCHIVE_DATA_FILES) -> list[str]:
    """Copy everything the archive carries besides model.pt and the handler into `staging`."""
    staging.mkdir(parents=True, exist_ok=True)
    for helper in runtime_files():  # byte-identical copies: the archive runs exactly the repository's code
        (staging / archive_name(helper)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(helper, staging / archive_name(helper))
    for name in data_files:
        shutil.copy2(model_files / name, staging / name)
    if tokenizer:
        shutil.copytree(ExportDir(model_files).tokenizer_dir, ExportDir(staging).tokenizer_dir)
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())


def archiver_command(name: str, version: str, model_file: Path, handler: Path, extra: Path,
                     out_dir: Path) -> list[str]:
    """The torch-model-archiver command line."""
    exe = Path(sys.executable).parent / "torch-model-archiver"
    cmd = [str(exe) if exe.exists() else "torch-model-archiver", "--model-name", name, "--version", version,
           "--serialized-file", str(model_file), "--handler", str(handler), "--extra-files", str(extra),
           "--export-path", str(out_dir)]
    return cmd


def build_mar(export_dir: Path, kind: str, name: str, version: str, overwrite: bool = False,
              handler_file: str = "", data_files: tuple[str, ...] = ARCHIVE_DATA_FILES,
              tokenizer_dir: bool | None = None) -> tuple[Path, list[str]]:
    """Archive the files of `export_dir` as archives/<version>/<name>.mar; returns it and its extra files.

    `handler_file`: the entry in entries/ for the run's task and input kind (runtime/tasks/ HANDLER_FILES).
    """
    if not handler_file or not (HANDLERS_DIR / handler_file).is_file():
        raise ExportError(f"no TorchServe entry {handler_file!r} in {HANDLERS_DIR} for a {kind} model")
    target = archive_path(export_dir, name, version)
    check_not_existing(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)  # the archiver refuses a missing export path
    with tempfile.TemporaryDirectory(prefix="shipyard-mar-") as tmp:
        extra = Path(tmp) / "extra"
        files = stage_extra_files(extra, export_dir, tokenizer=kind == "text" if tokenizer_dir is None else tokenizer_dir,
                                  data_files=data_files)
        # the archiver stages in $TMPDIR/<model name> and deletes it: keep concurrent builds apart
        env = {**os.environ, "TMPDIR": tmp, "TEMP": tmp, "TMP": tmp}
        # build beside the target, then rename: a failed build never leaves a half-written .mar behind
        building = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=target.parent))
        try:
            proc = subprocess.run(archiver_command(name, version, ExportDir(export_dir).scripted_model_path,
                                                   HANDLERS_DIR / handler_file, extra, building),
                                  capture_output=True, text=True, env=env)
            built = building / f"{name}.mar"
            if proc.returncode != 0 or not built.is_file():
                raise ExportError(f"torch-model-archiver failed ({proc.returncode}): "
                                  f"{(proc.stderr or proc.stdout)[-2000:]}")
            check_not_existing(target, overwrite)  # another export may have finished meanwhile
            os.replace(built, target)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return target, [handler_file, SCRIPTED_MODEL, *files]
