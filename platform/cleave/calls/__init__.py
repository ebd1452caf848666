"""
Calls to another context's published API: the service client (in process or
over HTTP), each call checked against the callee's contract before it leaves
(`operations`), and the resilience around it: retries inside a time budget,
a circuit breaker per target, and discovery of a target's instances (a list of
URLs, Kubernetes DNS, or Consul).
"""
