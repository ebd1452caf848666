"""
Resilience at the wire: what a failed call to another context is, the circuit
breaker per target, retries inside a time budget, and discovery of a target's
instances (a list of URLs, Kubernetes DNS, or Consul).

This layer sits below the service client and the saga engine, which use it;
it knows no transport and no context.
"""
