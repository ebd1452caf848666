"""MySQL and MariaDB (through PyMySQL), counting their queries (see cleave.core.backends)."""
