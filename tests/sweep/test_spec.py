"""Sweep specs: parsing, defaults, jobs, filters, and one clear error line for each bad value."""

from __future__ import annotations

import dataclasses

import pytest

from dabin import DabinError
from dabin.cli import main
from dabin.sweep import Job, expand_jobs, job_command, load_spec, narrow
from tests.sweep.conftest import TINY_JOBS, TINY_SPEC, write_spec


def test_tiny_spec_parsed(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    assert spec.name == "tiny" and spec.dataset == "custom" and spec.domains == ("Aa", "Bb", "Cc")
    assert spec.methods == ("dann", "source_only", "mixed") and spec.norms == ("bn", "bin")
    assert spec.tasks == (("Aa", "Bb"), ("Bb", "Cc")) and spec.seeds == (0, 1) and spec.folds == (0, 1)
    # Source-only borrows the DANN config: the two differ only by the method (no adaptation loss).
    assert spec.configs == {"dann": "dann.yaml", "source_only": "dann.yaml", "mixed": "mixed.yaml"}
    assert spec.out == tmp_path / "out"
    jobs = expand_jobs(spec)
    assert len(jobs) == TINY_JOBS and len({job.name for job in jobs}) == TINY_JOBS
    assert [j.label for j in jobs[:3]] == ["dann bn Aa→Bb seed 0", "dann bn Aa→Bb seed 1",
                                           "dann bin Aa→Bb seed 0"]
    source_only = next(j for j in jobs if j.method == "source_only")
    command = job_command(source_only, tmp_path / "run", base=["fit"])
    assert command[:2] == ["fit", "-c"] and command[command.index("--model.method") + 1] == "source_only"
    assert command[command.index("--data.source") + 1] == "Aa" and "--data.fold" not in command
    mixed = next(j for j in jobs if j.method == "mixed")
    assert job_command(mixed, tmp_path / "run", base=["fit"])[-6:] == [
        "--data.fold", "0", "--seed_everything", "0", "--trainer.default_root_dir", str(tmp_path / "run")]


def test_a_method_with_its_own_config_is_not_renamed_on_the_command_line(tmp_path):
    # experiments/officehome/mdd.yaml gives MDD its published margin by class path; a bare
    # `--model.method mdd` after it would replace that with the defaults.
    text = TINY_SPEC.replace("configs: {{dann: dann.yaml, mixed: mixed.yaml}}",
                             "configs: {{dann: dann.yaml, mixed: mixed.yaml, mdd: mdd.yaml, cdan: dann.yaml}}")
    text = text.replace("methods: [dann, source_only, mixed]", "methods: [source_only, mdd, cdan]")
    spec_path = write_spec(tmp_path, text)
    (tmp_path / "mdd.yaml").write_text("model: {}\n")
    spec = load_spec(spec_path)
    assert spec.own_configs == {"mdd"}
    commands = {job.method: job_command(job, tmp_path / "run", base=["fit"]) for job in expand_jobs(spec)}
    assert "--model.method" not in commands["mdd"] and commands["mdd"][2].endswith("mdd.yaml")
    for method in ("source_only", "cdan"):  # in DANN's config: named on the command line
        assert commands[method][commands[method].index("--model.method") + 1] == method


def test_all_tasks_and_fingerprint(tmp_path):
    spec = load_spec(write_spec(tmp_path, TINY_SPEC.replace('tasks: ["Aa->Bb", "Bb→Cc"]', "tasks: all")))
    assert len(spec.tasks) == 6 and spec.tasks[0] == ("Aa", "Bb")
    # Narrowing the axes keeps the sweep; a config's contents or the extra arguments change it.
    narrowed = narrow(spec, norms=["bin"], tasks=["Aa->Cc"], seeds=[1])
    assert narrowed.norms == ("bin",) and narrowed.tasks == (("Aa", "Cc"),) and narrowed.seeds == (1,)
    before = spec.fingerprint()
    assert narrowed.fingerprint() == before
    (tmp_path / "dann.yaml").write_text("model: {lr: 0.1}\n")
    assert load_spec(spec.path).fingerprint() != before


@pytest.mark.parametrize(("change", "message"), [
    (("axes:", "colors: [red]\naxes:"), "unknown key 'colors'"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  lrs: [1]"), "unknown axis 'lrs'; expected one of methods, norms"),
    (("norms: [bn, bin]", "norms: [bn, gn]"), "unknown norm 'gn'; expected one of bn, in, bnin, bin"),
    (("methods: [dann, source_only, mixed]", "methods: [dann, irm]"), "unknown method 'irm'"),
    (('"Aa->Bb"', '"Aa->Dd"'), "unknown domain 'Dd' in task 'Aa->Dd'; domains: Aa, Bb, Cc"),
    (('"Aa->Bb"', '"Aa->Aa"'), "task 'Aa->Aa' has the same source and target"),
    (('"Aa->Bb"', '"AaBb"'), "unknown task 'AaBb'"),
    (("seeds: [0, 1]", "seeds: [-1]"), "seeds must be non-negative integers"),
    (("mixed: mixed.yaml", "mixed: gone.yaml"), "config of 'mixed' not found"),
    (("domains: [Aa, Bb, Cc]", "dataset: mnist"), "unknown dataset 'mnist'"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.: [1]"), "axis 'model.' is not a dotted config key"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.norm: [bn]"), "axis 'model.norm' is set by every job; use the 'norms'"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: [[0.1]]"), "axis model.lr must list scalar values"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: []"), "axis model.lr must list scalar values"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: [0.1, 0.1]"), "axis model.lr repeats a value"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: {{values: [1], methods: [mdd]}}"),
     "axis model.lr: method 'mdd' is not on the methods axis"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: {{value: [1]}}"), "axis model.lr: expected {values"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: [{{values: [1], tasks: [Aa->Bb]}}, {{values: [2]}}]"),
     "axis model.lr: each of its 2 parts must name its `tasks`"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: [{{values: [1], tasks: [Aa->Bb]}}, "
      "{{values: [2], tasks: [Bb->Cc, Aa->Bb]}}]"), "axis model.lr: task Aa→Bb has values in two parts"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: {{values: [1], tasks: [Cc->Aa]}}"),
     "axis model.lr: task Cc→Aa is not on the tasks axis"),
    (("  seeds: [0, 1]", "  seeds: [0, 1]\n  model.lr: {{values: [1], tasks: [Aa->Dd]}}"),
     "axis model.lr: unknown domain 'Dd'"),
])
def test_bad_spec_is_one_error_line(tmp_path, capsys, change, message):
    spec = write_spec(tmp_path, TINY_SPEC.replace(*change))
    with pytest.raises(DabinError, match=message):
        load_spec(spec)
    assert main(["sweep", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"dabin: error: {spec}: ") and message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--tasks", "Aa->Cc"], "--tasks: Aa→Cc is not in the sweep; it has Aa→Bb, Bb→Cc"),
    (["--tasks", "Aa->Zz"], "unknown domain 'Zz'"),
    (["--norms", "in"], "--norms: in is not in the sweep; it has bn, bin"),
    (["--methods", "coral"], "--methods: coral is not in the sweep"),
    (["--seeds", "x"], "--seeds: 'x' is not a non-negative integer"),
])
def test_bad_filter_is_one_error_line(tiny_spec, capsys, flags, message):
    assert main(["sweep", str(tiny_spec), "--dry-run", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_missing_spec(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err == f"dabin: error: sweep spec not found: {tmp_path / 'none.yaml'}\n"


HYPER_SPEC = TINY_SPEC.replace("  folds: [0, 1]", """  folds: [0, 1]
  model.lambda_max: {{values: [0.1, 1.0], methods: [dann]}}
  model.lr: [0.01, 0.1]""")


def test_hyper_parameter_axes_multiply_the_runs_of_their_methods(tmp_path):
    spec = load_spec(write_spec(tmp_path, HYPER_SPEC))
    assert [(a.key, a.values, a.methods) for a in spec.hyper] == [("model.lambda_max", (0.1, 1.0), ("dann",)),
                                                                  ("model.lr", (0.01, 0.1), None)]
    jobs = expand_jobs(spec)
    by_method = {m: [j for j in jobs if j.method == m] for m in spec.methods}
    # dann: 2 tasks x 2 lambda x 2 lr x 2 norms x 2 seeds; the others sweep only the lr.
    assert (len(by_method["dann"]), len(by_method["source_only"]), len(by_method["mixed"])) == (32, 16, 16)
    assert len({j.name for j in jobs}) == len(jobs)
    job = by_method["dann"][0]
    assert job.hparams == (("model.lambda_max", 0.1), ("model.lr", 0.01))
    assert job.label == "dann bn Aa→Bb seed 0 model.lambda_max=0.1 model.lr=0.01"
    assert job.name.startswith("dann_bn_Aa-Bb_s0_lambda_max0.1_lr0.01_")
    command = job_command(job, tmp_path / "run", base=["fit"])
    assert command[-4:] == ["--model.lambda_max", "0.1", "--model.lr", "0.01"]  # after extra: nothing overrides
    # The record of a job keeps its values; a job without axes keeps the name it always had.
    assert Job.from_json(job.to_json()) == job
    plain = dataclasses.replace(job, hparams=())
    assert "hparams" not in plain.identity() and plain.name.startswith("dann_bn_Aa-Bb_s0_")
    assert spec.fingerprint() == load_spec(write_spec(tmp_path / "b", TINY_SPEC)).fingerprint()


def test_a_task_may_have_its_own_values_of_an_axis(tmp_path):
    # selection_length.yaml: each task at its own best lr, every task at every run length.
    text = TINY_SPEC.replace("  folds: [0, 1]", """  folds: [0, 1]
  model.lr:
    - {{values: [0.01, 0.02], tasks: [Aa->Bb]}}
    - {{values: [0.3], tasks: ["Bb→Cc"]}}
  trainer.max_steps: [10, 20]""").replace("methods: [dann, source_only, mixed]", "methods: [dann, mixed]")
    spec = load_spec(write_spec(tmp_path, text))
    jobs = [job for job in expand_jobs(spec) if job.norm == "bn" and job.seed == 0]
    settings = {(job.task, job.hparams) for job in jobs if job.method == "dann"}
    assert settings == {("Aa→Bb", (("model.lr", lr), ("trainer.max_steps", steps)))
                        for lr in (0.01, 0.02) for steps in (10, 20)} | {
                        ("Bb→Cc", (("model.lr", 0.3), ("trainer.max_steps", steps))) for steps in (10, 20)}
    # A run without tasks (the mixed-domain folds) sweeps only the unrestricted axes.
    assert {job.hparams for job in jobs if job.method == "mixed"} == {(("trainer.max_steps", 10),),
                                                                       (("trainer.max_steps", 20),)}
    # The same (task, values) names the same run folder as a plain axis would: runs are shared.
    plain = load_spec(write_spec(tmp_path / "b", TINY_SPEC.replace("  folds: [0, 1]", """  folds: [0, 1]
  model.lr: [0.3]
  trainer.max_steps: [10, 20]""")))
    names = {job.name for job in expand_jobs(plain) if job.method == "dann"}
    assert {job.name for job in jobs if job.task == "Bb→Cc"} <= names


def test_per_domain_norms_run_only_with_methods_that_train_on_target_batches(tmp_path):
    spec = load_spec(write_spec(tmp_path, TINY_SPEC.replace("norms: [bn, bin]", "norms: [bn, transnorm, dsbin]")))
    pairs = {(job.method, job.norm) for job in expand_jobs(spec)}
    assert pairs == {("dann", "bn"), ("dann", "transnorm"), ("dann", "dsbin"), ("source_only", "bn"), ("mixed", "bn")}
