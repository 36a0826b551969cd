"""The tabular handler: per-row validation (>= 12 malformed kinds), unknown bucket, intervals, transform parity
between training, the exported model, the handler in TorchServe's worker code and a real TorchServe."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from datamodules.tabular import TabularDataModule  # noqa: F401 (the run's datamodule class)
from evaluation.predictions import load_evaluation_data
from runtime.tabular_io import destandardise
from tests.serving.servers import running_server
from serving.torchserve.inprocess import InProcessWorker

GOOD = {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215,
        "body_mass_g": 5000, "sex": "female", "year": 2008}
MALFORMED = {  # kind → (row, column the answer must name)
    "missing numeric column": ({k: v for k, v in GOOD.items() if k != "body_mass_g"}, "body_mass_g"),
    "missing categorical column": ({k: v for k, v in GOOD.items() if k != "island"}, "island"),
    "unparsable number": ({**GOOD, "bill_length_mm": "long"}, "bill_length_mm"),
    "boolean for a number": ({**GOOD, "bill_depth_mm": True}, "bill_depth_mm"),
    "list for a number": ({**GOOD, "flipper_length_mm": [215]}, "flipper_length_mm"),
    "object for a number": ({**GOOD, "body_mass_g": {"g": 5000}}, "body_mass_g"),
    "NaN": ({**GOOD, "bill_length_mm": float("nan")}, "bill_length_mm"),
    "Infinity": ({**GOOD, "body_mass_g": float("inf")}, "body_mass_g"),
    "-Infinity string": ({**GOOD, "year": "-Infinity"}, "year"),
    "number too large": ({**GOOD, "bill_depth_mm": "1e999"}, "bill_depth_mm"),
    "unknown column": ({**GOOD, "wingspan": 3}, "wingspan"),
    "list for a category": ({**GOOD, "island": ["Biscoe"]}, "island"),
    "NaN for a category": ({**GOOD, "sex": float("nan")}, "sex"),
    "overlong category": ({**GOOD, "island": "x" * 5000}, "island"),
    "row not an object": ([1, 2, 3], "row"),
}


def body(payload) -> tuple[bytes, str]:
    return json.dumps(payload).encode(), "application/json"  # json.dumps writes NaN / Infinity literals


def test_malformed_rows_are_refused_naming_the_column_while_the_batch_is_answered(exported_tabular, tmp_path):
    worker = InProcessWorker(exported_tabular("tabular_penguins_mlp"), tmp_path)
    kinds = list(MALFORMED)
    requests = [body({"rows": [GOOD]})] + [body({"rows": [MALFORMED[k][0]]}) for k in kinds]
    requests.append(body({**GOOD, "island": "Atlantis", "sex": None}))  # unseen category + a missing value
    requests.append(body({"rows": [GOOD, MALFORMED["NaN"][0]]}))  # one bad row inside a good request
    code, answers = worker.predict(requests)
    assert code == 200 and len(answers) == len(requests)
    assert answers[0].status == 200 and answers[0].json[0]["label"] in ("Adelie", "Chinstrap", "Gentoo")
    assert len(answers[0].json[0]["top_k"]) == 3
    for kind, answer in zip(kinds, answers[1:1 + len(kinds)]):
        assert 400 <= answer.status < 500, kind
        assert answer.json["column"] == MALFORMED[kind][1], (kind, answer.json)
    assert len(kinds) >= 12
    unseen = answers[1 + len(kinds)]
    assert unseen.status == 200 and "label" in unseen.json[0]
    assert worker.handler.unknown_categories == {"island": 1}
    mixed = answers[-1]
    assert mixed.status == 200 and "label" in mixed.json[0] and mixed.json[1]["column"] == "bill_length_mm"


def test_transform_parity_training_export_handler_torchserve(exported_tabular, tabular_run, tmp_path):
    mar = exported_tabular("tabular_diabetes_mlp")
    run_dir = tabular_run("tabular_diabetes_mlp")
    data = load_evaluation_data(run_dir, ("test",))
    spec = data.datamodule.spec
    rows = data.datamodule.split_rows("test")[:100]
    features = [{k: r[k] for k in spec.feature_names} for r in rows]
    # training: the datamodule's tensors through the checkpoint's eager net
    trained = destandardise(data.outputs["test"].logits.numpy()[:100], spec)
    # exported TorchScript on the training tensors
    exported = torch.jit.load(str(run_dir / "export" / "model.pt"))
    batch = data.datamodule.encode(data.datamodule.splits["test"][:100])
    scripted = destandardise(exported(batch["x_num"], batch["x_cat"]).detach().numpy(), spec)
    worker = InProcessWorker(mar, tmp_path)
    started = time.perf_counter()
    code, answers = worker.predict([body({"rows": features})])
    in_process_100 = time.perf_counter() - started
    handled = np.array([a["prediction"] for a in answers[0].json])
    assert code == 200 and np.abs(trained - scripted).max() <= 1e-5 and np.abs(trained - handled).max() <= 1e-5
    q = json.loads((run_dir / "calibration.json").read_text())["conformal"]["q"]
    lo, hi = answers[0].json[0]["interval"]
    assert lo == pytest.approx(handled[0] - q) and hi == pytest.approx(handled[0] + q)
    started = time.perf_counter()
    worker.predict([body(features[0])])
    in_process_1 = time.perf_counter() - started
    with running_server(tmp_path / "ts", [mar]) as server:
        client = server.client()
        name = mar.stem
        resp = client.predict(name, json.dumps({"rows": features}).encode(), content_type="application/json")
        assert resp.status_code == 200, resp.text
        served = np.array([a["prediction"] for a in resp.json()])
        assert np.abs(trained - served).max() <= 1e-5
        bad = client.predict(name, json.dumps({"rows": [{**features[0], "bmi": "fat"}]}).encode(),
                             content_type="application/json")
        assert bad.status_code == 400 and bad.json()["column"] == "bmi"
        timings = {}
        for label, payload in (("1 row", features[0]), ("100 rows", {"rows": features})):
            data_bytes = json.dumps(payload).encode()
            samples = []
            for _ in range(5):
                started = time.perf_counter()
                assert client.predict(name, data_bytes, content_type="application/json").status_code == 200
                samples.append(time.perf_counter() - started)
            timings[label] = sorted(samples)[2] * 1000
    print(f"LATENCY in-process 1 row {in_process_1 * 1000:.1f} ms, 100 rows {in_process_100 * 1000:.1f} ms; "
          f"HTTP p50 1 row {timings['1 row']:.1f} ms, 100 rows {timings['100 rows']:.1f} ms")


def test_batch_scoring_matches_the_handler_and_rejects_bad_rows(exported_tabular, tabular_run, tmp_path):
    """score.py on a CSV of test rows (+ bad rows): predictions + intervals joined to the id, rejects named."""
    import csv

    from serving.scoring.writer import read_output, read_rejects
    from tests.conftest import run_entry

    mar = exported_tabular("tabular_diabetes_mlp")
    data = load_evaluation_data(tabular_run("tabular_diabetes_mlp"), ("test",))
    spec = data.datamodule.spec
    rows = data.datamodule.split_rows("test")
    expected = destandardise(data.outputs["test"].logits.numpy(), spec)
    columns = ["id", *spec.feature_names]
    bad = [{**rows[0], "id": "bad-number", "bmi": "fat"}, {**rows[1], "id": "bad-inf", "s1": "inf"}]
    with (tmp_path / "in.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows([*rows, *bad])
    out = tmp_path / "out"
    args = [f"model={mar}", f"input={tmp_path / 'in.csv'}", f"output={out}", "num_workers=0", "chunk_size=32",
            "batch_size=16", "progress=false"]
    run_entry("score.py", *args)
    scored = {r["id"]: r for r in read_output(out)}
    ids = [r["id"] for r in rows]
    assert sorted(scored) == sorted(ids)
    got = np.array([scored[i]["prediction"] for i in ids])
    assert np.abs(got - expected).max() <= 1e-5  # the same numbers as training (and so the handler)
    q = json.loads((tabular_run("tabular_diabetes_mlp") / "calibration.json").read_text())["conformal"]["q"]
    assert scored[ids[0]]["interval_hi"] - scored[ids[0]]["interval_lo"] == pytest.approx(2 * q)
    rejects = {r["id"]: r for r in read_rejects(out)}
    assert "'bmi'" in rejects["bad-number"]["reason"] and "'s1'" in rejects["bad-inf"]["reason"]
    run_entry("score.py", *args)  # resume: every chunk is complete, nothing is scored twice
    assert len(read_output(out)) == len(rows)
