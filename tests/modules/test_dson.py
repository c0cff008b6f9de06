"""Domain-specific BIN under domain generalization (DSON's branches): one branch per training domain.

The reference is written here independently: ``k`` deep copies of the model, copy ``d`` holding
domain ``d``'s statistics and gates under the layers' own names (no swapping), evaluated in float64;
an unseen domain's prediction is ``log(1/k Σ_d softmax(z_d))``, as the DSON paper (Seo et al., ECCV
2020) describes its inference for a domain never seen.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from dabin.analysis import read_gate_csv
from dabin.errors import DabinError
from dabin.modules import GeneralizationModule
from dabin.nn.bin import _BatchInstanceNorm
from dabin.nn.domain_stats import domain_slots
from dabin.nn.gates import gate_parameters
from dabin.record import GATES, RunRecord
from tests.modules.conftest import DEMO, TINY, run

K = 3
_STATS = ("running_mean", "running_var", "num_batches_tracked")


def _model() -> GeneralizationModule:
    torch.manual_seed(0)
    return GeneralizationModule(num_classes=5, num_domains=K, norm="dsbin", small_input=True, width=8)


def _reference_branch(model: GeneralizationModule, index: int) -> torch.nn.Module:
    """Domain ``index``'s network, its statistics and gates copied under the layers' own names."""
    twin = copy.deepcopy(model).double().eval()
    if index:
        for layer in twin.modules():
            if isinstance(layer, _BatchInstanceNorm):
                for name in _STATS:
                    layer._buffers[name] = layer._buffers[f"domain{index}_{name}"].clone()
                layer._parameters["gate"] = torch.nn.Parameter(layer._parameters[f"domain{index}_gate"].detach().clone())
    return twin


def _distinct_branches(model: GeneralizationModule) -> None:
    """Give every branch different statistics and gates (after init they are copies of each other)."""
    generator = torch.Generator().manual_seed(1)
    for layer in model.modules():
        if isinstance(layer, _BatchInstanceNorm):
            for slot in ("", *(f"{s}_" for s in domain_slots(K))):
                mean, var = layer._buffers[f"{slot}running_mean"], layer._buffers[f"{slot}running_var"]
                mean.copy_(torch.randn(mean.shape, generator=generator) * 0.3)
                var.copy_(torch.rand(var.shape, generator=generator) + 0.5)
                layer._parameters[f"{slot}gate"].data.copy_(torch.rand(var.shape, generator=generator))


def test_every_layer_has_a_branch_per_training_domain_and_its_gates_train() -> None:
    model = _model()
    layers = [m for m in model.modules() if isinstance(m, _BatchInstanceNorm)]
    assert layers and all(f"domain{i}_{name}" in layer._buffers
                          for layer in layers for i in (1, 2) for name in _STATS)
    # Every branch's gate is a gate: the gates' learning rate, no decay, clipped to [0, 1].
    assert len(gate_parameters(model)) == K * len(layers)


def test_evaluation_routes_training_domains_and_averages_the_branches_for_an_unseen_one() -> None:
    model = _model()
    _distinct_branches(model)
    model.hparams["branch_domains"] = [0, 2, 3]  # dataset domains 0, 2, 3 trained on; 1 never seen
    images = torch.randn(8, 3, 16, 16)
    domains = torch.tensor([0, 1, 2, 3, 1, 0, 3, 2])
    model.eval()
    with torch.no_grad():
        got = model.evaluation_logits(images, domains).double()
        reference = [_reference_branch(model, d)(images.double()).log_softmax(1) for d in range(K)]
    expected = torch.empty_like(got)
    for row, domain in enumerate(domains.tolist()):
        if domain == 1:  # never seen: the branches' mean probabilities
            expected[row] = torch.stack([r[row].exp() for r in reference]).mean(0).log()
        else:
            expected[row] = reference[[0, 2, 3].index(domain)][row]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # The branches really differ (else routing would be untested).
    assert (reference[0] - reference[1]).abs().max() > 1e-2
    # A batch of training domains only (a held-out 20 % part) goes through each image's branch alone.
    seen = domains != 1
    with torch.no_grad():
        only_seen = model.evaluation_logits(images[seen], domains[seen]).double()
    torch.testing.assert_close(only_seen, expected[seen], rtol=1e-4, atol=1e-5)


def test_a_training_step_updates_each_domains_statistics_from_its_own_batch_only() -> None:
    model = _model().train()
    torch.manual_seed(2)
    batch = {f"d{i}": (torch.randn(4, 3, 16, 16) + 3 * i, torch.randint(0, 5, (4,)), torch.full((4,), i))
             for i in range(K)}
    stem = next(m for m in model.modules() if isinstance(m, _BatchInstanceNorm))
    before = {slot: stem._buffers[f"{slot}running_mean"].clone() for slot in ("", "domain1_", "domain2_")}
    model.objective.train()
    model.trainer = None  # noqa: no trainer: progress and logging
    features = torch.cat([model._branch_features(images, i) for i, (images, _, _) in enumerate(batch.values())])
    loss = torch.nn.functional.cross_entropy(model.classifier(features), torch.cat([y for _, y, _ in batch.values()]))
    loss.backward()
    # Reference: domain i's stem input mean over its batch, momentum 0.1 into its own buffer only.
    stem_conv = model.backbone.conv1
    for i, slot in enumerate(("", "domain1_", "domain2_")):
        with torch.no_grad():
            mean = stem_conv(batch[f"d{i}"][0].double().float()).mean(dim=(0, 2, 3))
        expected = 0.9 * before[slot] + 0.1 * mean
        torch.testing.assert_close(stem._buffers[f"{slot}running_mean"], expected, rtol=1e-4, atol=1e-5)
    # Every branch's gate got a gradient from its own domain's pass.
    for slot in ("", "domain1_", "domain2_"):
        grad = stem._parameters[f"{slot}gate"].grad
        assert grad is not None and grad.abs().sum() > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"norm": "transnorm"}, "norm transnorm compares a source's statistics with a target's"),
    ({"norm": "dsbin", "domain_passes": "joint"}, "domain_passes joint would pass them together"),
    ({"norm": "dsbin", "mixstyle": "crossdomain"}, "mixstyle crossdomain mixes two domains in one pass"),
    ({"norm": "dsbin", "num_domains": 3, "branch_domains": [0, 1]}, r"branch_domains \[0, 1\] names 2 domains"),
])
def test_what_cannot_branch_is_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DabinError, match=message):
        GeneralizationModule(num_classes=10, small_input=True, width=8, **kwargs)


def test_fit_resume_and_reload_keep_every_branch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "run"
    args = ["fit", "-c", str(DEMO / "dg_erm.yaml"), *TINY, "--model.norm", "dsbin", "--data.test_domain", "Ph",
            "--trainer.default_root_dir", str(root)]
    status, err = run([*args, "--trainer.max_steps", "6"], capsys)
    assert status == 0, err
    record = RunRecord.read(root)
    assert record.norm == "dsbin" and record.target == "Photo" and record.test["Photo"].n > 0
    checkpoint = torch.load(root / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["hyper_parameters"]["branch_domains"] == [0, 1, 3]  # Ink, Neon, Sketch
    state = checkpoint["state_dict"]
    assert {"domain1_gate", "domain2_gate", "domain2_running_var"} <= {key.rsplit(".", 1)[-1] for key in state}
    # The three branches learned apart: their statistics differ after 6 steps on their own domains.
    key = next(k for k in state if k.endswith(".running_mean"))
    assert not torch.equal(state[key], state[key.replace("running_mean", "domain1_running_mean")])
    # gates.csv holds every branch's gate, as the checkpoint has them.
    gates = read_gate_csv(root / GATES)
    first = next(k for k in state if k.endswith(".domain2_gate"))
    layer = first.removesuffix(".domain2_gate")
    assert [r["domain2_gate"] for r in gates if r["layer"] == layer] == pytest.approx(state[first].tolist())
    # A checkpoint rebuilds the same branches (and routing) without the data module.
    reloaded = GeneralizationModule.load_from_checkpoint(root / "checkpoints" / "last.ckpt")
    assert reloaded.hparams.branch_domains == [0, 1, 3] and set(reloaded.state_dict()) == set(state)
    # Resumed to 10 steps from the 6-step checkpoint: the run goes on with every branch.
    status, err = run([*args, "--trainer.max_steps", "10", "--ckpt_path", str(root / "checkpoints" / "last.ckpt")],
                      capsys)
    assert status == 0, err
    assert torch.load(root / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 10
