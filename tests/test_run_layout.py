"""One run-directory API: no project module outside core/ names a run-directory file or folder (a file scan).

The names are core/run_layout.py's. A module asks core.rundir.RunDir for paths instead, so the layout can
change in one place. runtime/ is the exception the layering forces: it ships alone inside a .mar (no project
imports) and reads the archive's model-dir files (the export folder's files) by its own constants, which
must equal core's.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import core.run_layout as layout

REPO = Path(__file__).resolve().parent.parent
SKIP = {"core", "tests", "runtime", ".venv", "data", ".git"}  # core is the API; tests observe; runtime: see above
NAMES = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)}
# tokenizer.json is also the file a prepared token-data folder holds (datamodules/token_shards.py), not only ours
FILE_NAMES = sorted({n.rsplit("/", 1)[-1] for n in NAMES if "." in n} - {"tokenizer.json"})
# folder names count only as a path step (`x / "checkpoints"`, `join(x, "report")`): as words they are everywhere.
# "data" and "monitoring" are also folders of the repository itself (data/digits_samples, serving/monitoring).
DIR_NAMES = sorted({n for n in NAMES if "." not in n and "/" not in n} - {"data", "monitoring"})
FILE_RE = re.compile(r"(^|/)(" + "|".join(map(re.escape, FILE_NAMES)) + r")($|/)")
DIR_RE = re.compile(r"^/?(" + "|".join(map(re.escape, DIR_NAMES)) + r")/")  # "/export/..." after an f-string field


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}


def _offences(path: Path, root: Path = REPO) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip, found = _docstrings(tree), []
    for node in ast.walk(tree):
        operands = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            operands = [node.left, node.right]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {"join", "Path"}:
            operands = node.args
        for op in operands:
            if isinstance(op, ast.Constant) and op.value in DIR_NAMES:
                found.append(f"{path.relative_to(root)}:{op.lineno}: {op.value!r} as a path step")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if FILE_RE.search(node.value) or DIR_RE.search(node.value):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_outside_core_names_a_run_directory_file():
    modules = [p for p in REPO.rglob("*.py") if p.relative_to(REPO).parts[0] not in SKIP]
    assert len(modules) > 100, "the scan found too few modules to mean anything"
    offences = [o for p in modules for o in _offences(p)]
    assert not offences, "ask core.rundir.RunDir (or core.run_layout) instead:\n" + "\n".join(offences)


def test_the_scan_catches_each_way_of_naming_a_file(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""run.json in a docstring is prose."""\nx = run_dir / "checkpoints" / "last.ckpt"\n'
                       'y = f"{run_dir}/export/export.json"\nz = os.path.join(d, "report")\nw = {"report": 1}\n')
    hits = sorted(o.split(": ", 1)[1] for o in _offences(planted, tmp_path))
    assert hits == ["'/export/export.json'", "'checkpoints' as a path step", "'last.ckpt'",
                    "'report' as a path step"], hits


def test_runtime_names_the_archive_files_as_core_does():
    from runtime import model_loading, preprocessing

    assert preprocessing.SPEC_FILENAME == layout.PREPROCESS
    assert model_loading.MODEL_FILE == layout.SCRIPTED_MODEL
