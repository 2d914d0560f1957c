"""Where things are: the repository, the schemas, local charts and the cache. Options beat environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SCHEMAS_ENV = "AIRFLOW_GITOPS_SCHEMAS"
CHARTS_ENV = "AIRFLOW_GITOPS_CHARTS"
CACHE_ENV = "AIRFLOW_GITOPS_CACHE"
RENDER_CACHE_ENV = "AIRFLOW_GITOPS_RENDER_CACHE"
RENDER_TIMEOUT_ENV = "AIRFLOW_GITOPS_RENDER_TIMEOUT"
RENDER_MEMORY_ENV = "AIRFLOW_GITOPS_RENDER_MEMORY"
# Bounds of one Helm chart render (helm_controller/render_process.py). The official Airflow chart renders in ~0.45 s,
# its render process holding ~165 MiB of data mappings (what the cap counts; ~90 MiB resident): 130x and 12x
# margins, which a slow, shared CI machine does not eat, while a runaway template is stopped within a minute.
DEFAULT_RENDER_TIMEOUT_S = 60.0
DEFAULT_RENDER_MEMORY_MIB = 2048


def find_repo_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "clusters").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise SystemExit(f"no repository with clusters/ and pyproject.toml at or above {here}")


def parse_chart_overrides(text: str) -> dict[str, Path]:
    """`airflow=/path/to/chart,cloudnative-pg=/x.tgz` -> {name: path}."""
    overrides: dict[str, Path] = {}
    for item in filter(None, (part.strip() for part in text.replace(";", ",").split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"{CHARTS_ENV} / --chart: expected NAME=PATH, got {item!r}")
        overrides[name.strip()] = Path(path.strip()).expanduser().resolve()
    return overrides


@dataclass
class Settings:
    repo: Path
    schemas_dir: Path | None = None
    local_charts: dict[str, Path] = field(default_factory=dict)
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    # Chart renders reused from cache_dir/renders when nothing they read has changed (helm_controller.render_cache).
    render_cache: bool = field(default_factory=lambda: render_cache_by_env())
    # Wall time and memory of one chart render (its child process is stopped past either).
    render_timeout_s: float = field(default_factory=lambda: render_timeout_setting())
    render_memory_mib: int = field(default_factory=lambda: render_memory_setting())

    @classmethod
    def from_args(cls, args) -> Settings:
        repo = Path(getattr(args, "repo", None) or find_repo_root()).resolve()
        schemas = getattr(args, "schemas", None) or os.environ.get(SCHEMAS_ENV)
        charts = parse_chart_overrides(os.environ.get(CHARTS_ENV, ""))
        for item in getattr(args, "chart", None) or []:
            charts.update(parse_chart_overrides(item))
        cache = getattr(args, "cache_dir", None) or os.environ.get(CACHE_ENV)
        return cls(
            repo=repo,
            schemas_dir=Path(schemas).expanduser().resolve() if schemas else None,
            local_charts=charts,
            cache_dir=Path(cache).expanduser().resolve() if cache else default_cache_dir(),
            render_cache=render_cache_by_env() and not getattr(args, "no_render_cache", False),
            render_timeout_s=render_timeout_setting(getattr(args, "render_timeout", None)),
            render_memory_mib=render_memory_setting(getattr(args, "render_memory", None)),
        )

    def rel(self, path: Path | str) -> str:
        """A path as the user sees it in the repository."""
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.repo))
        except ValueError:
            return str(path)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "airflow-gitops"


def render_cache_by_env() -> bool:
    return os.environ.get(RENDER_CACHE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _positive(text: str | None, name: str, kind: type) -> float | int | None:
    """A positive number from an option or variable; None when not given; a clear error (exit 2) otherwise."""
    if text is None or not str(text).strip():
        return None
    try:
        value = kind(str(text).strip())
    except ValueError:
        value = 0
    if not 0 < value < float("inf"):
        unit = "seconds" if kind is float else "MiB, a whole number"
        raise SystemExit(f"{name}: expected a positive number of {unit}, got {text!r}")
    return value


def render_timeout_setting(option: str | None = None) -> float:
    """--render-timeout if given, else the variable, else the default."""
    return (_positive(option, "--render-timeout", float) or _positive(os.environ.get(RENDER_TIMEOUT_ENV),
                                                                       RENDER_TIMEOUT_ENV, float)
            or DEFAULT_RENDER_TIMEOUT_S)


def render_memory_setting(option: str | None = None) -> int:
    """--render-memory if given, else the variable, else the default."""
    return int(_positive(option, "--render-memory", int) or _positive(os.environ.get(RENDER_MEMORY_ENV),
                                                                        RENDER_MEMORY_ENV, int)
               or DEFAULT_RENDER_MEMORY_MIB)


def add_common_options(parser) -> None:
    parser.add_argument("--repo", help="repository root (default: found from the current directory)")
    parser.add_argument(
        "--schemas",
        help=f"folder with airflow-chart-*/values.schema.json and CRD folders (env {SCHEMAS_ENV}; "
        "default: fetched into the cache on a networked machine)",
    )
    parser.add_argument(
        "--chart",
        action="append",
        metavar="NAME=PATH",
        help=f"render chart NAME from a local folder or .tgz instead of its repository (env {CHARTS_ENV})",
    )
    parser.add_argument("--cache-dir", help=f"chart, schema and render cache (env {CACHE_ENV})")
    parser.add_argument("--no-render-cache", action="store_true",
                        help=f"render every chart afresh, neither reading nor writing cached renders "
                             f"(env {RENDER_CACHE_ENV}=0)")
    parser.add_argument("--render-timeout", metavar="SECONDS",
                        help=f"stop a chart render after this wall time (env {RENDER_TIMEOUT_ENV}; "
                             f"default {DEFAULT_RENDER_TIMEOUT_S:g})")
    parser.add_argument("--render-memory", metavar="MIB",
                        help=f"stop a chart render that needs more memory than this (env {RENDER_MEMORY_ENV}; "
                             f"default {DEFAULT_RENDER_MEMORY_MIB})")
