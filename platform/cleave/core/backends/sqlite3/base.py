from django.db.backends.sqlite3 import base
from django_prometheus.db.common import DatabaseWrapperMixin

from cleave.core.backends import FollowsMoves, counting_cursor


class DatabaseWrapper(FollowsMoves, DatabaseWrapperMixin, base.DatabaseWrapper):
    def create_cursor(self, name=None):
        cursor_class = counting_cursor(base.SQLiteCursorWrapper, self.alias, self.vendor)
        return self.connection.cursor(factory=cursor_class)
