# Every target only calls the project's tooling (scripts/airflow_gitops) or a tool it installs.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
GITOPS := $(BIN)/airflow-gitops
CLUSTER ?= kind
BASE ?= origin/main
NAMESPACE ?= airflow
RELEASE ?= airflow

.PHONY: help setup system-deps test lint render values validate diff bench dev port-forward status reconcile rollback kind-up kind-smoke kind-down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: system-deps $(BIN)/.installed ## Install PostgreSQL 15 (if missing) and the project's venv

system-deps:
	@bash scripts/install-system-deps.sh

test: setup ## Run every test (the README's test command)
	$(BIN)/pytest

lint: setup ## ruff, yamllint and shellcheck over the repository
	$(BIN)/ruff check scripts tests dags
	$(BIN)/yamllint -s clusters infrastructure apps charts-values .github
	$(BIN)/shellcheck .ci/run scripts/*.sh

render: setup ## Print every object Flux applies for CLUSTER (kind|eks)
	$(GITOPS) render $(CLUSTER)

values: setup ## Print the composed values of the Airflow release on CLUSTER
	$(GITOPS) values $(CLUSTER) $(RELEASE)

validate: setup ## Render and validate every cluster: schemas and policies (the main job)
	$(GITOPS) validate all

diff: setup ## Diff CLUSTER's rendered state between BASE and the working tree
	$(GITOPS) diff $(CLUSTER) --base $(BASE)

bench: setup ## Print render/validate timings, DAG parse times and push-to-live latencies
	$(GITOPS) bench

dev: setup ## Run Airflow 3.3 locally on dags/ at http://localhost:8080
	$(GITOPS) dev

port-forward: ## Reach the cluster's Airflow UI at http://localhost:8080
	kubectl port-forward svc/$(RELEASE)-api-server 8080:8080 -n $(NAMESPACE)

# Operate a live cluster (README "Operate"). DRY_RUN=1 prints the exact commands and runs none.
status: setup ## Flux objects, Airflow pods and the release's last Helm revisions
	$(GITOPS) status --namespace $(NAMESPACE) --release $(RELEASE) $(if $(DRY_RUN),--dry-run)

reconcile: setup ## Reconcile CLUSTER's Flux Kustomizations with their source, in dependsOn order
	$(GITOPS) reconcile $(CLUSTER) $(if $(DRY_RUN),--dry-run)

rollback: setup ## Roll back deploy commit SHA (default: the last) on CLUSTER; an Airflow downgrade in two steps
	$(GITOPS) rollback $(SHA) $(if $(filter-out file,$(origin CLUSTER)),--cluster $(CLUSTER)) --namespace $(NAMESPACE) --release $(RELEASE) $(if $(DRY_RUN),--dry-run)

kind-up: ## Create a kind cluster and let Flux deploy clusters/kind from Git
	bash scripts/kind-up.sh

kind-smoke: ## Wait for the release on kind and run a DAG through the KubernetesExecutor
	bash scripts/kind-smoke.sh

kind-down: ## Delete the kind cluster
	kind delete cluster --name airflow-gitops

clean: ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
