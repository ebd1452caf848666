"""
The published contracts of Cleave's bounded contexts: one module per context.

`contracts/<label>.py` declares, once, what context `<label>` promises the
others: the event types it publishes (type, version, JSON Schema of the
payload) and the operations of its API other contexts may call
(`cleave.core.declarations.Operation`: method, path, permission, the contexts
that call it, notable problems). Publishers and subscribers name an event by
its constant (`publish(orders.ORDER_PLACED, ...)`,
`@subscriber(users.USER_BLOCKED)`); callers name the operation they call
(`client.call(inventory.RESERVATION_CREATE, ...)`). The closed sets of values
its events and answers carry (`orders.CancellationReason`,
`payments.PaymentStatus`...) are Django `TextChoices` declared here too: the
context's model takes its `choices` from them, the event schema its `enum`,
and a caller compares an answer with them.

Two files beside the modules are generated, never written by hand:

- `openapi/<label>.json`: each context's OpenAPI document, drf-spectacular's
  description of its views' serializers (`manage.py contracts openapi`). An
  operation's request, query and answer are read from it: a caller's body is
  checked against the callee's own serializers before it is sent.
- `events.lock.json`: every released version of every event type, and which
  contexts consume each (derived from their handlers; `manage.py contracts
  lock`). A process learns from it who, served elsewhere, subscribes to what
  it publishes.

Why a shared-kernel package and not contract files read at start-up: a caller
imports the operation it calls, so a typo is an ImportError or AttributeError
at import time, an editor finds every caller of an operation, and the
declarations are plain Python values checked when the module loads. The price
is discipline, kept by import-linter: this package imports `cleave` and
nothing else of the project, never a context and never `config`; so importing
it couples a caller to what a context publishes, never to how it is built.

`make lint` checks all of it (`manage.py contracts openapi|lock|map --check`,
`contracts verify`); an event's schema changes under the rules of
docs/events.md ("Changing an event's schema").
"""
