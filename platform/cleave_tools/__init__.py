"""
Deployment and contract tooling, kept apart from the runtime: nothing a web,
worker or relay process imports reaches this package (import-linter's
`runtime-not-tools`). `manage.py` and the tests install it as an app for its
management commands.
"""
