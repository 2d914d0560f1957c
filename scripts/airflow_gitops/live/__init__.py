"""A local Kubernetes and Flux cluster for the live tests and `make live-up`: the parts built from Go modules
(`tools`), run as processes on 127.0.0.1 (`cluster`), with a local Git server and chart repository (`sources`)."""
