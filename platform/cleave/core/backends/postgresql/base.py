from django.db.backends.postgresql import base
from django_prometheus.db.common import DatabaseWrapperMixin

from cleave.core.backends import FollowsMoves, counting_cursor


class DatabaseWrapper(FollowsMoves, DatabaseWrapperMixin, base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        # counted by the mixin; taken from the pool when the alias has one
        connection = super().get_new_connection(conn_params)
        # Django's own cursor class, wrapped anew at every checkout: a pooled
        # connection still carries the class its last checkout set
        connection.cursor_factory = counting_cursor(
            conn_params["cursor_factory"], self.alias, self.vendor
        )
        return connection

    # psycopg takes the cursor class from the connection, as Django's backend expects
    create_cursor = base.DatabaseWrapper.create_cursor
