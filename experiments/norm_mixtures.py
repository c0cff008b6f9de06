"""What the normalization lab's learned mixtures look like per ResNet stage, from a sweep's checkpoints.

For every finished run of a sweep folder whose norm learns a mixture, reads its ``last.ckpt`` and
averages per stage (stem, layer1..layer4) over channels, runs and seeds:

* ``switchable``: the softmaxed weights of IN, LN and BN, for the means and for the variances
  (:class:`dabin.nn.SwitchNorm2d`; they start at 1/3 each);
* ``bin`` and ``dsbin``: the gate ρ (1 = BN, 0 = IN), and for dsbin the target's gate beside the
  source's (:mod:`dabin.nn.domain_stats`).

Usage::

    python experiments/norm_mixtures.py runs/demo-norms [--method dann]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
from pathlib import Path

import torch

from dabin.record import JOB, run_state

_STAGE = re.compile(r"backbone\.(layer\d)\.")


def _stage(key: str) -> str | None:
    if not key.startswith("backbone."):
        return None
    match = _STAGE.match(key)
    return match.group(1) if match else "stem"


def _mixtures(state: dict[str, torch.Tensor], norm: str) -> dict[tuple[str, str], list[float]]:
    """(stage, quantity) -> per-layer mean values of one checkpoint's state dict."""
    found: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for key, value in state.items():
        stage = _stage(key)
        if stage is None:
            continue
        if norm == "switchable" and key.endswith((".mean_weight", ".var_weight")):
            kind = "mean" if key.endswith(".mean_weight") else "var"
            for name, weight in zip(("IN", "LN", "BN"), torch.softmax(value.float().flatten(), 0).tolist()):
                found[stage, f"{kind} {name}"].append(weight)
        elif norm in ("bin", "dsbin") and key.endswith((".gate", ".target_gate")):
            found[stage, "ρ target" if key.endswith(".target_gate") else "ρ source"].append(value.float().mean().item())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--method", default="dann")
    args = parser.parse_args()
    table: dict[str, dict[tuple[str, str], list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    runs: collections.Counter[str] = collections.Counter()
    for job_file in sorted(args.folder.glob(f"*/{JOB}")):
        job = json.loads(job_file.read_text())
        norm = job["norm"]
        if job["method"] != args.method or norm not in ("switchable", "bin", "dsbin"):
            continue
        if run_state(job_file.parent) != "done":
            continue
        checkpoints = sorted(job_file.parent.rglob("last.ckpt"))
        if not checkpoints:
            continue
        state = torch.load(checkpoints[-1], map_location="cpu", weights_only=False)["state_dict"]
        runs[norm] += 1
        for key, values in _mixtures(state, norm).items():
            table[norm][key].append(sum(values) / len(values))
    stages = ("stem", "layer1", "layer2", "layer3", "layer4")
    for norm, quantities in table.items():
        names = list(dict.fromkeys(q for _, q in quantities))
        print(f"\n{norm} under {args.method}: {runs[norm]} runs, mean over layers and runs per stage\n")
        print("| quantity | " + " | ".join(stages) + " |")
        print("| --- | " + " | ".join("---" for _ in stages) + " |")
        for name in names:
            cells = [quantities.get((stage, name)) for stage in stages]
            print(f"| {name} | " + " | ".join("—" if not c else f"{sum(c) / len(c):.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
