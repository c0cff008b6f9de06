from __future__ import annotations

import pytest
import torch

from dabin import DabinError
from dabin.analysis import gate_summary, gate_table, plot_gate_histogram, read_gate_csv, write_gate_csv
from dabin.models import resnet18


def test_table_levels_follow_resnet_stages_and_round_trip(tmp_path):
    model = resnet18(norm="bin", width=4)
    with torch.no_grad():
        model.layer4[1].bn2.gate.fill_(0.0)
    rows = gate_table(model)
    levels = {(r["stage"], r["level"]) for r in rows}
    assert levels == {("stem", "lower"), ("layer1", "lower"), ("layer2", "middle"), ("layer3", "middle"),
                      ("layer4", "upper")}
    assert len(rows) == sum(m.num_features for m in model.modules() if hasattr(m, "gate"))
    path = tmp_path / "gates.csv"
    assert write_gate_csv(model, path) == len(rows)
    again = read_gate_csv(path)
    assert [r["gate"] for r in again] == [r["gate"] for r in rows]
    summary = gate_summary(again)
    assert summary[0]["layer"] == "bn1" and summary[-1]["layer"] == "layer4.1.bn2"
    assert summary[-1]["near_in"] == 1.0 and summary[0]["near_bn"] == 1.0


def test_wrapped_backbone_and_histogram(tmp_path):
    wrapper = torch.nn.Module()
    wrapper.backbone = resnet18(norm="bin", width=4)
    rows = gate_table(wrapper)
    assert rows[0]["layer"] == "backbone.bn1" and rows[0]["stage"] == "stem"
    out = plot_gate_histogram(rows, tmp_path / "hist.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors(tmp_path):
    with pytest.raises(DabinError, match="no BIN gates"):
        plot_gate_histogram(resnet18(norm="bn", width=4), tmp_path / "x.png")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DabinError, match="not a gate table"):
        read_gate_csv(bad)
