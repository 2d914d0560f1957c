"""`backup-rearm <cluster>`: re-arm a failed backup gate through Git. CloudNativePG never retries a failed Backup,
so the gate file's one Backup is written again under a new name (`<name>-rearm-N`, same spec); commit it and open a
pull request as for any change. Flux applies the new Backup, prunes the failed one, and `db-backup` waits again."""

from __future__ import annotations

from airflow_gitops.commands._common import clusters_of, warn
from airflow_gitops.model import escaped
from airflow_gitops.operate.downgrade import BACKUP_FILE, CannotRearm, rearm
from airflow_gitops.settings import Settings, add_common_options


def configure(parser) -> None:
    parser.add_argument("cluster", help="cluster folder under clusters/ whose backup gate to re-arm")
    add_common_options(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the new file, write nothing")


def run(args) -> int:
    settings = Settings.from_args(args)
    [cluster] = clusters_of(settings, args.cluster)
    path = BACKUP_FILE.format(cluster=cluster)
    file = settings.repo / path
    if not file.is_file():
        warn(f"error: {path}: no backup gate file for cluster {escaped(cluster)}")
        return 2
    try:
        text, old, new = rearm(file.read_text(), path)
    except CannotRearm as error:
        warn(f"error: {escaped(str(error))}")
        return 2
    if args.dry_run:
        print(text, end="")
    else:
        file.write_text(text)
    print(f"# {path}: Backup {escaped(old)} -> {escaped(new)}; commit it (\"Re-arm the backup gate\") and open a pull "
          "request: Flux prunes the failed Backup, applies the new one, and `apps` waits for it again")
    return 0
