"""SQLite, counting its queries (see cleave.core.backends)."""
