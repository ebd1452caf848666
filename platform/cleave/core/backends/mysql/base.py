from functools import partial

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.mysql import base, creation
from django_prometheus.db.common import DatabaseWrapperMixin

from cleave.core.backends import FollowsMoves, counting_cursor
from cleave.core.backends.mysql import pool as pools

# On a pooled connection: the isolation level its session was set to.
_SESSION_SET = "_cleave_session_isolation"


class DatabaseCreation(creation.DatabaseCreation):
    def _destroy_test_db(self, test_database_name, verbosity):
        # nothing of the pool outlives the test database
        self.connection.close_pool()
        return super()._destroy_test_db(test_database_name, verbosity)


class PooledDatabaseWrapper(base.DatabaseWrapper):
    """
    Django's MySQL backend, its connections taken from a pool of this process
    when the alias has `OPTIONS["pool"]` (cleave.core.backends.mysql.pool), as
    Django's PostgreSQL backend does with the psycopg pool: a connection goes
    back to the pool when Django closes it.
    """

    creation_class = DatabaseCreation

    def connection_pool(self, conn_params: dict | None = None) -> pools.Pool | None:
        """The pool of this alias and its connection parameters; None when it has none."""
        options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not options:
            return None
        if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
            raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
        params = self.get_connection_params() if conn_params is None else conn_params
        # one pool per database, not per alias: the test runner, for one, points
        # an alias at another database once it has connected to the first
        key = (self.alias, tuple(sorted((k, repr(v)) for k, v in params.items() if k != "conv")))
        return pools.pool_for(key, lambda: pools.Pool(partial(_connect, dict(params)), **options))

    def close_pool(self) -> None:
        pools.close(self.alias)

    def get_connection_params(self):
        params = super().get_connection_params()
        params.pop("pool", None)  # for the pool, not PyMySQL
        return params

    def get_new_connection(self, conn_params):
        pool = self.connection_pool(conn_params)
        if pool is None:
            return super().get_new_connection(conn_params)
        return pool.getconn()

    def init_connection_state(self):
        # a connection the pool hands out again keeps its session's settings
        # (isolation level, sql_auto_is_null): set them once, not at each checkout
        if getattr(self.connection, _SESSION_SET, None) == self.isolation_level:
            return
        super().init_connection_state()
        if pools.owner(self.connection) is not None:
            setattr(self.connection, _SESSION_SET, self.isolation_level)

    def _close(self):
        pool = pools.owner(self.connection)
        if pool is None:
            return super()._close()
        with self.wrap_database_errors:
            pool.putconn(self.connection)
        # unusable from now on, even inside an atomic block (which Django then refuses)
        self.connection = None
        return None

    def close_if_health_check_failed(self):
        if pools.owner(self.connection) is not None:
            return  # the pool checked it when it handed it out
        super().close_if_health_check_failed()


def _connect(params: dict):
    """A new connection, as Django's MySQL backend opens one."""
    connection = base.Database.connect(**params)
    # Django drops PyMySQL's bytes encoder (see its get_new_connection)
    if connection.encoders.get(bytes) is bytes:
        connection.encoders.pop(bytes)
    return connection


class DatabaseWrapper(FollowsMoves, DatabaseWrapperMixin, PooledDatabaseWrapper):
    def create_cursor(self, name=None):
        cursor_class = counting_cursor(base.CursorWrapper, self.alias, self.vendor)
        return cursor_class(self.connection.cursor())
