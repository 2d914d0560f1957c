"""kustomize-controller offline: each Flux Kustomization built (build.py), substituted (postbuild.py, over
envsubst.py and ../yamltext.py) and applied in dependsOn order (reconcile.py)."""
