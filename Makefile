# Every target does its own set-up on a fresh machine: it creates .venv and installs dabin.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test demo bench rehearsal rehearsal-benchmarks clean

# The install's seconds go to .venv/.install_seconds, which `make demo` reports (and then removes).
$(STAMP): pyproject.toml
	@date +%s > .install_started
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev,slurm]'
	touch $(STAMP)
	@echo $$(( $$(date +%s) - $$(cat .install_started) )) > $(VENV)/.install_seconds; rm -f .install_started

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 tests

demo: $(STAMP)
	$(BIN)/python -m dabin.demo

bench: $(STAMP)
	$(BIN)/python experiments/bench_bin.py
	$(BIN)/python experiments/bench_norms.py

# The paper's Office-Home path end to end at full scale on a replica (17 runs, every test image;
# about 38 min on a 2-core CPU; not part of `make test`): see experiments/rehearsal.py. Exits
# non-zero if a check fails.
rehearsal: $(STAMP)
	$(BIN)/python experiments/rehearsal.py

# The benchmark presets end to end on release-size replicas: one DANN task each of Office-31, VisDA-2017,
# DomainNet and the digits through their real configs and sweep specs, every test image, the split sizes
# checked against the official ones (about 4 minutes on a 2-core CPU; not part of `make test`):
# see experiments/rehearsal_benchmarks.py. Exits non-zero if a check fails.
rehearsal-benchmarks: $(STAMP)
	$(BIN)/python experiments/rehearsal_benchmarks.py

clean:
	rm -rf $(VENV) build *.egg-info
