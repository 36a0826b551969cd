"""datamodule=tabular: roles, preprocessing fitted on the training split only, bad rows, NA strings, nets export."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from datamodules.records import TooManyBadRecords
from datamodules.tabular import TabularDataModule
from runtime.tabular import TabularSpec, encode_rows
from trainers.nets.tabular import FTTransformer, TabularMLP

HEADER = "id,age,city,note,y\n"


def write_table(path, rows):
    path.write_text(HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def small_rows(n=60):
    cities = ["Oslo", "Rome", "NA", "None"]  # "NA"/"None" are real categories, not missing values
    return [[f"r{i}", 20 + i if i % 7 else "", cities[i % 4], f"free text {i}", 1.5 * i + (i % 3)] for i in range(n)]


def make_dm(path, **kw):
    return TabularDataModule(train_file=str(path), target="y", val_fraction=0.2, test_fraction=0.2, seed=0,
                             batch_size=16, **kw)


def test_roles_inferred_and_spec_fitted_on_train_only(tmp_path, capsys):
    dm = make_dm(write_table(tmp_path / "t.csv", small_rows()))
    dm.setup()
    assert "datamodule.task inferred: regression" in capsys.readouterr().out
    roles = dm.artifacts()["data/tabular_roles.json"]
    assert roles["numeric"] == ["age"] and roles["categorical"] == ["city"] and roles["id_column"] == "id"
    assert roles["drop"] == ["note"] and "free text" in roles["inferred"]["note"]
    spec = dm.spec
    train = dm.split_rows("train")
    ages = [float(r["age"]) for r in train if r["age"] is not None]
    assert spec.numeric[0].median == pytest.approx(float(np.median(ages)))  # train split only, not all rows
    assert spec.numeric[0].indicator  # missing ages in train → a missing-indicator input
    assert set(spec.categorical[0].vocab) == {"Oslo", "Rome", "NA", "None"}
    y = dm.split_targets("train")
    assert spec.target_mean == pytest.approx(y.mean()) and spec.target_std == pytest.approx(y.std())
    batch = next(iter(dm.train_dataloader()))
    assert batch["x_num"].shape[1] == spec.num_numeric_inputs == 2 and batch["x_cat"].shape[1] == 1
    # the spec round-trips as plain data and encodes the same rows identically
    again = TabularSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    a, b = encode_rows(train, spec, nan_is_missing=True), encode_rows(train, again, nan_is_missing=True)
    assert np.array_equal(a.x_num, b.x_num) and np.array_equal(a.x_cat, b.x_cat)


def test_bad_rows_reported_with_row_and_reason(tmp_path):
    rows = small_rows()
    rows[3][1] = "abc"        # unparsable number
    rows[5][4] = ""           # missing target
    path = write_table(tmp_path / "t.csv", rows)
    with pytest.raises(TooManyBadRecords, match="max_bad_fraction"):
        make_dm(path).setup()
    dm = make_dm(path, max_bad_fraction=0.1)
    dm.setup()
    bad = {b.where: b.reason for b in dm.bad_records}
    assert "cannot parse 'abc'" in bad["t.csv:r3"] and "'age'" in bad["t.csv:r3"]
    assert "target is missing" in bad["t.csv:r5"]
    assert dm.artifacts()["data/bad_records.json"]["bad_count"] == 2


def test_min_frequency_sends_rare_categories_to_the_unknown_bucket(tmp_path):
    rows = small_rows()
    rows[0][2] = "Tromso"
    dm = make_dm(write_table(tmp_path / "t.csv", rows), min_frequency=2, task="regression", categorical=["city"],
                 numeric=["age"], drop=["note"])
    dm.setup()
    assert "Tromso" not in dm.spec.categorical[0].vocab and "task" not in dm.roles.inferred
    enc = encode_rows([{"age": 30, "city": "Tromso", "note": None}], dm.spec)
    assert enc.x_cat[0, 0] == 0 and enc.unknown_categories == {"city": 1}


@pytest.mark.parametrize("net_cls", [TabularMLP, FTTransformer])
def test_nets_export_to_torchscript_and_torch_export(net_cls):
    torch.manual_seed(0)
    net = net_cls(num_numeric=5, cardinalities=[4, 3], num_classes=3).eval()
    x_num, x_cat = torch.randn(7, 5), torch.randint(0, 3, (7, 2))
    eager = net(x_num, x_cat)
    scripted = torch.jit.script(net)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(net, (x_num, x_cat), dynamic_shapes={"x_num": {0: batch}, "x_cat": {0: batch}},
                                  strict=False)
    assert (scripted(x_num, x_cat) - eager).abs().max() <= 1e-5
    assert (program.module()(x_num[:2], x_cat[:2]) - eager[:2]).abs().max() <= 1e-5  # another batch size
    no_cats = net_cls(num_numeric=5, cardinalities=[], num_classes=1).eval()
    assert torch.jit.script(no_cats)(x_num, torch.zeros(7, 0, dtype=torch.long)).shape == (7, 1)


def test_validate_runs_the_table_checks(tmp_path):
    """python -m datamodules.validate on a table: schema/ranges, missing, duplicates, leakage, target, PII."""
    import subprocess
    import sys

    rows = small_rows()
    rows[4][3] = "mail me at jane.doe@example.com"
    rows[9] = rows[8][:]  # an exact duplicate row
    rows[9][0] = "r9"
    path = write_table(tmp_path / "t.csv", rows)
    proc = subprocess.run([sys.executable, "-m", "datamodules.validate", "datamodule=tabular",
                           f"datamodule.train_file={path}", "datamodule.target=y", "name=t",
                           f"paths.output_root={tmp_path}", "datamodule.data_checks.max_missing_fraction=0.2",
                           "datamodule.data_checks.max_leaked_fraction=null",
                           "datamodule.data_checks.max_duplicate_fraction=null"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "t" / "data_checks" / "data_report.json").read_text())
    checks = report["checks"]
    assert set(checks) == {"schema", "missing_values", "exact_duplicates", "leakage", "target", "cardinality", "pii"}
    assert checks["schema"]["columns"]["age"]["range"][0] >= 21 and checks["schema"]["columns"]["city"]["role"] == "categorical"
    assert checks["missing_values"]["columns"]["age"]["fraction"] > 0
    assert checks["pii"]["columns"] == {"note": 1} and "[EMAIL]" in checks["pii"]["examples"][0]["redacted"]
    assert sum(s["extra_copies"] for s in checks["exact_duplicates"]["per_split"].values()) + \
        sum(checks["leakage"]["counts"].values()) >= 1
