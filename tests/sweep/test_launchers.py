"""The local launcher's share of the machine per worker slot: threads and GPUs."""

from __future__ import annotations

import pytest

from dabin.sweep.launchers import slot_environment


@pytest.mark.parametrize(("workers", "gpus", "expected"), [
    (2, 4, ["0,1", "2,3"]),  # each worker its own block of 2
    (4, 4, ["0", "1", "2", "3"]),
    (3, 8, ["0,1", "2,3", "4,5"]),  # 8 // 3 = 2 each; GPUs 6-7 stay idle rather than be shared
    (4, 2, ["0", "1", "0", "1"]),  # more workers than GPUs: round-robin, one each
])
def test_each_worker_gets_its_own_gpus(workers: int, gpus: int, expected: list[str]) -> None:
    visible = [slot_environment(slot, workers, cpus=16, gpus=gpus)["CUDA_VISIBLE_DEVICES"] for slot in range(workers)]
    assert visible == expected


def test_threads_split_and_single_worker_sees_every_gpu() -> None:
    env = slot_environment(0, 1, cpus=16, gpus=4)
    assert env["OMP_NUM_THREADS"] == "16" and "CUDA_VISIBLE_DEVICES" not in env
    assert slot_environment(1, 4, cpus=2, gpus=0) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
