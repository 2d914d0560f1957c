"""`flux-components [--write]`: each cluster's clusters/<cluster>/flux-system/gotk-components.yaml against
`flux install --export` of the Flux CLI (--flux, else $FLUX, else `flux` on PATH; `make live-tools` builds the pinned
one and `airflow-gitops live tools --path flux` prints where).

Exit 0 when every file is what the CLI exports, 1 when one differs (a unified diff is printed), 2 without a CLI.
`--write` rewrites the files: upgrading Flux is `make live-tools` with the new pin, this, and a pull request."""

from __future__ import annotations

import sys

from airflow_gitops.operate import flux_install
from airflow_gitops.settings import Settings

DIFF_LINES = 60


def configure(parser) -> None:
    parser.add_argument("--repo", help="repository root (default: found from the current directory)")
    parser.add_argument("--flux", help="the Flux CLI to run (default: $FLUX, else flux on PATH)")
    parser.add_argument("--write", action="store_true", help="rewrite every cluster's gotk-components.yaml")


def run(args) -> int:
    settings = Settings.from_args(args)
    flux = flux_install.find_flux(args.flux)
    if flux is None:
        print("flux-components: no Flux CLI: build the pinned one with `make live-tools` and pass it with --flux "
              "\"$(airflow-gitops live tools --path flux)\"",
              file=sys.stderr)
        return 2
    try:
        version = flux_install.cli_version(flux)
        exported = flux_install.export(flux)
    except flux_install.FluxCLIError as error:
        print(f"flux-components: {error}", file=sys.stderr)
        return 2
    files = flux_install.component_files(settings.repo)
    if not files:
        print("flux-components: no clusters/<cluster>/flux-system/ folder", file=sys.stderr)
        return 2
    if args.write:
        for changed in flux_install.write(settings.repo, exported):
            print(f"wrote {changed} (flux {version} {' '.join(flux_install.EXPORT)})")
        return 0
    differences = flux_install.differences(settings.repo, exported)
    for cluster, file in files.items():
        rel = file.relative_to(settings.repo)
        if cluster not in differences:
            print(f"{rel}: what flux {version} {' '.join(flux_install.EXPORT)} writes")
            continue
        committed = flux_install.version_in(file.read_text()) if file.is_file() else None
        print(f"{rel}: DIFFERS from what flux {version} {' '.join(flux_install.EXPORT)} writes "
              f"(the file says Flux {committed or 'no version'}); regenerate it with "
              f"`airflow-gitops flux-components --write` and the pinned CLI")
        lines = differences[cluster].splitlines()
        print("\n".join(lines[:DIFF_LINES]) + (f"\n... {len(lines) - DIFF_LINES} more lines" if len(lines) > DIFF_LINES
                                                 else ""))
    return 1 if differences else 0
