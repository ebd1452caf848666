"""
MySQL and MariaDB (through PyMySQL), pooled or not, counting their queries
(see cleave.core.backends; the pool: cleave.core.backends.mysql.pool).
"""
