"""Stand-in for ``python -m dabin fit``: takes the sweep's arguments and writes what the trainer writes.

Behaviour is steered by environment variables so one script covers every test:
``FAKE_FIT_FAIL`` (substring of the run's place, e.g. ``Bb`` or ``fold1``) makes matching runs fail;
``FAKE_FIT_SLEEP_ON`` makes matching runs write ``pid`` and sleep ``FAKE_FIT_SLEEP`` seconds first;
``FAKE_FIT_NAN`` makes matching runs report a NaN accuracy;
``FAKE_FIT_PREEMPT`` makes matching runs exit as a pre-empted trainer does (status 75, checkpoint kept);
``FAKE_FIT_DISK_FULL`` makes matching runs die as a trainer does whose write met a full disk;
``FAKE_FIT_CKPT_BYTES`` sets the size of the checkpoint it writes (to fill a small disk);
``FAKE_FIT_NO_POINTS`` leaves out the evaluation points.

A transfer run records three evaluation points with made-up validator scores, the last one at the
end (its oracle is the tested accuracy). ``--model.*`` arguments beyond the sweep's own (a
hyper-parameter axis) change the accuracies, as a real setting would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import zipfile
import zlib
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("-c", "--config", required=True)
parser.add_argument("--model.norm", dest="norm", required=True)
parser.add_argument("--model.method", dest="method", default="dann")
parser.add_argument("--data.source", dest="source")
parser.add_argument("--data.target", dest="target")
parser.add_argument("--data.fold", dest="fold", type=int)
parser.add_argument("--data.domains", dest="domains", default="Aa,Bb,Cc")
parser.add_argument("--seed_everything", dest="seed", type=int, required=True)
parser.add_argument("--trainer.default_root_dir", dest="root", required=True)
parser.add_argument("--ckpt_path")
args, unknown = parser.parse_known_args()

run = Path(args.root)
place = f"{args.source}->{args.target}" if args.source else f"fold{args.fold}"
with open(run / "attempts", "a") as handle:
    handle.write(f"{os.getpid()} ckpt={args.ckpt_path} extra={' '.join(unknown)}\n")
(run / "checkpoints").mkdir(exist_ok=True)
# A zip archive with a data.pkl, as torch writes: what the sweep checks before resuming from it.
payload = b"fake checkpoint" + bytes(int(os.environ.get("FAKE_FIT_CKPT_BYTES", "0")))
with zipfile.ZipFile(run / "checkpoints" / "last.ckpt", "w") as archive:
    archive.writestr("last/data.pkl", payload)
if os.environ.get("FAKE_FIT_DISK_FULL", "\0") in place:
    print("Traceback (most recent call last):\n  File 'torch/serialization.py', line 1\n"
          "OSError: [Errno 28] No space left on device")
    sys.exit(1)
if os.environ.get("FAKE_FIT_PREEMPT", "\0") in place:
    print(f"dabin: pre-empted at step 2; checkpoint saved to {run / 'checkpoints' / 'last.ckpt'}", file=sys.stderr)
    sys.exit(75)

if os.environ.get("FAKE_FIT_SLEEP_ON", "\0") in place:
    # As the real trainer: SIGUSR1 (a requeue warning) saves the checkpoint and exits as pre-empted.
    signal.signal(signal.SIGUSR1, lambda *_: sys.exit(75))
    (run / "pid").write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("FAKE_FIT_SLEEP", "60")))
if os.environ.get("FAKE_FIT_FAIL", "\0") in place:
    print("Traceback (most recent call last):\n  File 'x.py', line 1\nRuntimeError: fake failure in " + place)
    print("Epoch 0: 100%|##########| 3/3")
    sys.exit(1)


hyper = " ".join(arg for arg in unknown if arg.startswith("--model.") or not arg.startswith("--"))
hyper = hyper if any(arg.startswith("--model.") for arg in unknown) else ""


def accuracy(domain: str, salt: str = "") -> float:
    """Deterministic per run, BIN a little better than BN."""
    key = f"{args.norm}-{args.source}-{args.target}-{args.fold}-{args.seed}-{domain}{hyper}{salt}"
    return round(40 + zlib.crc32(key.encode()) % 4000 / 100 + (3 if args.norm == "bin" else 0), 2)


def score(name: str, step: int) -> float:
    """A made-up validator score, deterministic per run, point and validator."""
    key = f"{args.norm}-{args.source}-{args.target}-{args.seed}{hyper}-{name}-{step}"
    return round(zlib.crc32(key.encode()) % 1000 / 10 - 50, 2)


domains = [args.target] if args.source else args.domains.split(",")
test = {d: {"accuracy": accuracy(d), "n": 50} for d in domains}
if os.environ.get("FAKE_FIT_NAN", "\0") in place:
    test[domains[0]]["accuracy"] = float("nan")
method = "mixed" if args.fold is not None else args.method
metrics = {"test": test, "average": sum(v["accuracy"] for v in test.values()) / len(test),
           "model_selection": "last checkpoint (no target labels)", "method": method, "norm": args.norm,
           "source": args.source, "target": args.target, "fold": args.fold, "seed": args.seed, "steps": 3,
           "time_s": 0.1, "config": {}}
if args.source and not os.environ.get("FAKE_FIT_NO_POINTS"):
    oracle = [accuracy(args.target, f"@{step}") for step in (1, 2)] + [test[args.target]["accuracy"]]
    metrics["evaluation_points"] = [
        {"step": step, "scores": {name: score(name, step)
                                  for name in ("source_val", "entropy", "snd", "mixval_intra", "mixval_inter")},
         "oracle": {"target_test_accuracy": value},
         "target_predictions": {"max_class_share": score("share", step) + 50}}
        for step, value in zip((1, 2, 3), oracle)]
(run / "metrics.json").write_text(json.dumps(metrics))
if args.norm == "bin":
    rows = ["layer,stage,level,depth,channel,gate"]
    for depth, (layer, stage, level) in enumerate([("bn1", "stem", "lower"), ("layer2.0.bn1", "layer2", "middle"),
                                                   ("layer4.0.bn1", "layer4", "upper")]):
        rows += [f"{layer},{stage},{level},{depth},{c},{(c + depth) / 10 % 1:.2f}" for c in range(8)]
    (run / "gates.csv").write_text("\n".join(rows) + "\n")
