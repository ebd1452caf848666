"""
The published contracts of Cleave's bounded contexts: one module per context.

`contracts/<label>.py` declares everything context `<label>` promises the
others: the event types it publishes (type, version, JSON Schema) and the
service operations they may call (`cleave.contracts.Operation`: method, path,
permission, request and answer schemas, notable problems), and it lists the
operations of other contexts it calls. `contexts/<label>/events.py` re-exports
the event types, so the platform registers them as before.

Why a shared-kernel package and not contract files read at start-up: a caller
imports the operation it calls (`from contracts import inventory`,
`client.call(inventory.RESERVATION_CREATE, ...)`), so a typo is an
ImportError or AttributeError at import time, an editor finds every caller of
an operation, and the declarations are plain Python values checked when the
module loads, with no loader, file format or search path of their own. The
price is discipline, kept by import-linter: this package imports `cleave` and
nothing else of the project, never a context and never `config`; so importing
it couples a caller to what a context publishes, never to how it is built.

Change a contract together with its callee (tests/architecture/test_contracts.py
compares every operation with the view serving it) and regenerate
docs/context-map.md (`manage.py contracts map`); an event's schema changes
under the rules of docs/events.md ("Changing an event's schema"), which
`manage.py contracts lock --check` enforces against contracts/events.lock.json.
"""
