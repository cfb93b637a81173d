# The README's commands. Each installs what it needs first (.ci/setup: apt packages, .venv, dockerd).
#   make demo    the main job: builds svinit and shows it booting and shutting down cleanly
#   make test    lint, then every test (real PID namespaces, dockerd, QEMU)
#   make bench   the benchmarks, with their peers, in one run

VENV := .venv/bin

demo: setup
	$(VENV)/svinit demo

test: setup
	$(VENV)/tox -e lint,test

bench: setup
	$(VENV)/python bench/supervision.py
	$(VENV)/python bench/container.py
	$(VENV)/python bench/vm.py
	$(VENV)/python bench/faults.py
	$(VENV)/python bench/harness.py

setup:
	.ci/setup

.PHONY: demo test bench setup
