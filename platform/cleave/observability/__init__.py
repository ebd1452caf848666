"""
Observability, low so that every layer reports: OpenTelemetry tracing
(`tracing`), the request ids and log context of JSON logs (`logs`), and the
Prometheus metrics with the seed's names (`metrics`).
"""
