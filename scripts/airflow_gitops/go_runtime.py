"""Garbage-collector settings for the Go runtimes the tool runs: the Helm SDK (helm_python, a Go shared library
loaded into this process) and kubectl's kustomize (a child process).

A chart render allocates fast and briefly, so Go's default collector (GOGC=100) spends about a fifth of a render's CPU
collecting: measured here, 0.52 s of CPU for a render of the official chart with the defaults, 0.40 s with
GOGC=400 (GOGC=off is slower again: the heap grows into page faults). GOMEMLIMIT keeps the larger heap target from
growing without end: near the limit Go collects as often as it must, whatever GOGC says.

A Go runtime reads GOGC and GOMEMLIMIT once, when it starts, from the environment the process was *started* with:
a library loaded later (dlopen) does not see os.environ changes. So the command line re-executes itself once with
the settings in its environment, before anything is imported (about 30 ms), and every child inherits them. A
setting the user gave wins, and no setting is made twice (the variable is then present).
"""

from __future__ import annotations

import os
import sys

SETTINGS = {"GOGC": "400", "GOMEMLIMIT": "1GiB"}


def missing() -> dict[str, str]:
    """The settings this process was not started with and the user did not set."""
    return {name: value for name, value in SETTINGS.items() if name not in os.environ}


def reexec_with_settings() -> None:
    """Replace this process with itself, started with the settings; returns (and does nothing) when they are
    already in place or the re-execution cannot happen."""
    settings = missing()
    if not settings:
        return
    # sys.orig_argv keeps the interpreter's own options (-X, -W, -m ...) as the user gave them.
    argv = [sys.executable, *sys.orig_argv[1:]]
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, argv, {**os.environ, **settings})
    except OSError:
        return  # slower, never wrong: the defaults render the same output
