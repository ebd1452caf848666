"""
The operators' admin: the site itself (`site`: titles, readable times, no
filter on a secret), the platform's own tables across every context alias
(`tables`, on `aliases`), and what the contexts' admins use: actions on a
record's page and actions that ask first (`actions`), links to the records
of any context, built from ids (`links`), an admin for rows only the domain
writes (`readonly`); the "needs attention" page (`attention`). Django's admin
autodiscovery imports this package; the registrations are in its modules.
"""

from cleave.admin import site, tables  # noqa: F401 - registrations
