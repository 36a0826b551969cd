"""The `.mar` files work in a stock TorchServe: plain `torchserve --start`, no project code on the path
(no PYTHONPATH, cwd outside the repository), only the archives and the installed packages."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import REPO
from tests.serving.expected import assert_same_prediction, predict_in_process, text_bodies
from tests.serving.stock_server import stock_torchserve

pytestmark = [pytest.mark.torchserve, pytest.mark.slow]


def test_mar_served_by_plain_torchserve(tmp_path, exported_digits, exported_text):
    with stock_torchserve(tmp_path / "stock", [exported_digits.mar, exported_text.mar]) as ts:  # outside the repo
        infer = ts.auth("inference")
        pngs = sorted((REPO / "data" / "digits_samples").glob("*.png"))[:5]
        expected = predict_in_process(exported_digits.export_dir, [p.read_bytes() for p in pngs], "image")
        for path, want in zip(pngs, expected):
            resp = requests.post(ts.url("inference", f"predictions/{exported_digits.name}"), data=path.read_bytes(),
                                 headers=infer, timeout=30)
            assert resp.status_code == 200, resp.text
            assert_same_prediction(resp.json(), want)
        bodies = text_bodies(REPO / "data" / "support_tickets" / "test.csv", 3)
        expected = predict_in_process(exported_text.export_dir, bodies, "text")
        for body, want in zip(bodies, expected):
            resp = requests.post(ts.url("inference", f"predictions/{exported_text.name}"), data=body,
                                 headers={**infer, "Content-Type": "application/json"}, timeout=30)
            assert resp.status_code == 200, resp.text
            assert_same_prediction(resp.json(), want)
        # the workers really run without the repository on their path
        for name in (exported_digits.name, exported_text.name):
            ts.assert_worker_outside_repository(name)

