"""
The operators' admin for the platform's own tables: outbox, deliveries, inbox,
dead letters and sagas (with their step log), one table per context alias.
Django's admin autodiscovery imports this package; the registrations are in
its modules.
"""

from cleave.admin import tables  # noqa: F401 - registrations
