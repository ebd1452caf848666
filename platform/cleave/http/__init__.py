"""
What every context's REST API shares: problem details and the exception
handler (`problems`), field types (`fields`), pagination, the JSON parser,
throttles, idempotency keys, the OpenAPI hooks and the `/api/<prefix>/` mounts.
"""
