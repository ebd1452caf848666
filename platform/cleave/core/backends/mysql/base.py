from django.db.backends.mysql import base
from django_prometheus.db.common import DatabaseWrapperMixin

from cleave.core.backends import counting_cursor


class DatabaseWrapper(DatabaseWrapperMixin, base.DatabaseWrapper):
    def create_cursor(self, name=None):
        cursor_class = counting_cursor(base.CursorWrapper, self.alias, self.vendor)
        return cursor_class(self.connection.cursor())
