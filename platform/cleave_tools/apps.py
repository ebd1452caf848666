from django.apps import AppConfig


class CleaveToolsConfig(AppConfig):
    """
    The deployment and contract tools: their management commands (`deploy`,
    `gateway`, `run_split`, `contracts`). Installed for `manage.py` and the
    tests; a web, worker or relay process never imports this package.
    """

    name = "cleave_tools"
    label = "cleave_tools"
    verbose_name = "Cleave tools"
