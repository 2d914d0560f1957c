"""kustomize-controller offline: each Flux Kustomization built (build.py), substituted (postbuild.py) and applied
in dependsOn order (reconcile.py)."""
