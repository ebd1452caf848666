"""
Deployment shapes rendered from the route table: Kubernetes and compose
(`manifests`), the nginx gateway (`gateway`) and the local split runner
(`split`, `make run-split`).
"""
