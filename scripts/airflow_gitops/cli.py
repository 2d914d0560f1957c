"""Command-line entry point. Each subcommand lives in its own module with `configure(parser)` and `run(args)`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from airflow_gitops.model import escaped

# Imported lazily so that `render` does not pay for importing Airflow, and `dev` not for the Helm SDK.
SUBCOMMANDS = {
    "render": "Every object Flux would apply for a cluster, chart objects included.",
    "values": "The composed values a HelmRelease's chart receives.",
    "validate": "Schemas and policies for one cluster or all; every error at once.",
    "diff": "Unified diff of a cluster's rendered objects between a git ref and the working tree.",
    "bench": "Timings of render/validate, DAG parse times and the push-to-live latencies the manifests imply.",
    "dev": "Run Airflow 3.3 locally on dags/ (LocalExecutor) at http://localhost:8080.",
    "postgres": "Start or stop a throwaway PostgreSQL 15 on 127.0.0.1 for tests and `dev`.",
    "flux-build": "The tool's build of one Flux Kustomization in `flux build`'s shape, to compare with the Flux CLI.",
    "flux-components": "Each cluster's gotk-components.yaml against `flux install --export` of the pinned Flux CLI.",
    "eks": "Stand up (idempotent) or tear down the AWS side of clusters/eks and bootstrap Flux; --dry-run calls nothing.",
    "status": "Live cluster: Flux objects, Airflow pods, the release's last Helm revisions.",
    "reconcile": "Live cluster: reconcile every Flux Kustomization with its source, in dependsOn order.",
    "rollback": "Roll back a deploy commit by revert; an Airflow downgrade in two steps (schema first).",
    "backup-rearm": "Re-arm a failed backup gate through Git: the gate's Backup under a new name.",
    "live": "The local Kubernetes and Flux cluster: build its parts from Go modules, start it, stop it.",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Only the chosen subcommand's module is imported and configured; all of them for --help."""
    parser = argparse.ArgumentParser(prog="airflow-gitops", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=summary, description=summary)
        if command in (None, name):
            module = importlib.import_module(f"airflow_gitops.commands.{name.replace('-', '_')}")
            module.configure(sub)
            sub.set_defaults(handler=module.run)
    return parser


# Exit codes, the same in every subcommand: 0 same/valid, 1 differs/findings, 2 the command could not do its job.
EXIT_ERROR = 2
DEBUG_ENV = "AIRFLOW_GITOPS_DEBUG"


class _StderrHandler(logging.Handler):
    """The engine's warnings (logger `airflow_gitops`) as `WARNING: text` on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(escaped(self.format(record)) + "\n")
        except Exception:  # logging's own contract: a failing handler reports, never raises
            self.handleError(record)


def configure_logging() -> None:
    logger = logging.getLogger("airflow_gitops")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)


# Commands that start a Go runtime (the Helm SDK, kubectl): they run with go_runtime's collector settings.
GO_COMMANDS = {"render", "values", "validate", "diff", "bench", "flux-build", "eks", "rollback"}


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
        if argv and argv[0] in GO_COMMANDS:
            from airflow_gitops import go_runtime

            go_runtime.reexec_with_settings()
    configure_logging()
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit as stop:
        # `raise SystemExit("message")` would exit 1, which reads as "differs" or "findings".
        if isinstance(stop.code, str):
            print(f"airflow-gitops {args.command}: error: {stop.code}", file=sys.stderr)
            return EXIT_ERROR
        raise
    except Exception as error:  # the one guard (RecursionError, MemoryError included): a crash never exits 0 or 1
        return _crashed(args.command, error)


def _crashed(command: str, error: BaseException) -> int:
    """One line naming what failed, exit 2; the traceback only with AIRFLOW_GITOPS_DEBUG=1."""
    import os

    import yaml

    from airflow_gitops.model import RenderError

    if os.environ.get(DEBUG_ENV):
        import traceback

        traceback.print_exception(error)
    if isinstance(error, (RenderError, yaml.YAMLError)):
        print(f"airflow-gitops {command}: error: {escaped(str(error))}", file=sys.stderr)
    else:
        text = str(error).strip().splitlines()
        print(f"airflow-gitops {command}: internal error, nothing was decided: {type(error).__name__}: "
              f"{escaped(text[0]) if text else ''} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
