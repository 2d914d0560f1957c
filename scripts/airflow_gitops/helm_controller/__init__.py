"""helm-controller offline: a HelmRelease's values composed (values.py), its chart found (chart.py), rendered and
post-rendered (render.py)."""
