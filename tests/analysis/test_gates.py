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


def test_domain_specific_bin_tables_carry_the_target_gate(tmp_path):
    from dabin.analysis import TARGET_GATE_COLUMN
    from dabin.nn.domain_stats import TARGET_GATE, add_domain_stats

    model = resnet18(norm="bin", width=4)
    add_domain_stats(model, gates=True)
    with torch.no_grad():
        model.layer1[0].bn1._parameters[TARGET_GATE].fill_(0.25)  # the target's gate moved, the source's not
    rows = gate_table(model)
    assert all(TARGET_GATE_COLUMN in r for r in rows)
    moved = [r for r in rows if r["layer"] == "layer1.0.bn1"]
    assert {r[TARGET_GATE_COLUMN] for r in moved} == {0.25} and {r["gate"] for r in moved} == {1.0}
    path = tmp_path / "gates.csv"
    write_gate_csv(model, path)
    assert path.read_text().splitlines()[0] == "layer,stage,level,depth,channel,gate,target_gate"
    assert [r[TARGET_GATE_COLUMN] for r in read_gate_csv(path)] == [r[TARGET_GATE_COLUMN] for r in rows]
    plain = tmp_path / "plain.csv"
    write_gate_csv(resnet18(norm="bin", width=4), plain)  # BIN alone: the columns as before
    assert plain.read_text().splitlines()[0] == "layer,stage,level,depth,channel,gate"
    assert all(TARGET_GATE_COLUMN not in r for r in read_gate_csv(plain))

def test_dson_branches_each_get_a_gate_column(tmp_path):
    """Domain generalization with dsbin: every training domain's branch gate is in the table."""
    from dabin.nn.domain_stats import add_domain_stats, domain_slots

    model = resnet18(norm="bin", width=4)
    add_domain_stats(model, gates=True, slots=domain_slots(3))
    layer = model.layer2[1].bn2
    with torch.no_grad():  # each branch's gate moved to its own value: a swapped column would show
        layer.gate.fill_(0.1)
        layer._parameters["domain1_gate"].fill_(0.4)
        layer._parameters["domain2_gate"].copy_(torch.linspace(0.0, 1.0, layer.num_features))
    rows = gate_table(model)
    moved = [r for r in rows if r["layer"] == "layer2.1.bn2"]
    assert [r["gate"] for r in moved] == pytest.approx([0.1] * len(moved))
    assert [r["domain1_gate"] for r in moved] == pytest.approx([0.4] * len(moved))
    assert [r["domain2_gate"] for r in moved] == pytest.approx(torch.linspace(0.0, 1.0, layer.num_features).tolist())
    path = tmp_path / "gates.csv"
    write_gate_csv(model, path)
    assert path.read_text().splitlines()[0] == "layer,stage,level,depth,channel,gate,domain1_gate,domain2_gate"
    again = read_gate_csv(path)
    assert [(r["gate"], r["domain1_gate"], r["domain2_gate"]) for r in again] == \
        [(r["gate"], r["domain1_gate"], r["domain2_gate"]) for r in rows]



def test_switch_table_is_the_softmax_of_each_layers_weights(tmp_path):
    import math

    from dabin.analysis import read_switch_csv, switch_table, write_switch_csv

    model = resnet18(norm="switchable", width=4)
    raw = {"layer2.0.bn1": ([0.5, -1.0, 2.0], [0.0, 0.0, 3.0])}
    with torch.no_grad():
        layer = model.layer2[0].bn1
        layer.mean_weight.copy_(torch.tensor(raw["layer2.0.bn1"][0]))
        layer.var_weight.copy_(torch.tensor(raw["layer2.0.bn1"][1]))
    rows = switch_table(model)
    assert len(rows) == 2 * sum(1 for m in model.modules() if type(m).__name__ == "SwitchNorm2d")
    for statistic, logits in zip(("mean", "var"), raw["layer2.0.bn1"]):
        (row,) = [r for r in rows if r["layer"] == "layer2.0.bn1" and r["statistic"] == statistic]
        total = sum(math.exp(v) for v in logits)  # float64 softmax, order IN, LN, BN (the official code's)
        assert [row["in"], row["ln"], row["bn"]] == pytest.approx([math.exp(v) / total for v in logits], rel=1e-6)
        assert (row["stage"], row["level"]) == ("layer2", "middle")
    untouched = [r for r in rows if r["layer"] == "bn1"]
    assert all(r["in"] == r["ln"] == r["bn"] == pytest.approx(1 / 3) for r in untouched)  # equal weights at the start
    path = tmp_path / "switch_weights.csv"
    assert write_switch_csv(model, path) == len(rows)
    again = read_switch_csv(path)
    assert [(r["layer"], r["statistic"], r["bn"]) for r in again] == [(r["layer"], r["statistic"], r["bn"]) for r in rows]
    assert switch_table(resnet18(norm="bin", width=4)) == []
    bad = tmp_path / "bad.csv"
    bad.write_text("layer,gate\nx,1\n")
    with pytest.raises(DabinError, match="not a Switchable Norm weight table"):
        read_switch_csv(bad)
