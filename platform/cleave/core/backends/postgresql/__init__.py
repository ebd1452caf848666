"""PostgreSQL, pooled or not, counting its queries (see cleave.core.backends)."""
