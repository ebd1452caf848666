"""
Cleave: a kit for modular monoliths with extractable bounded contexts.

The package knows nothing about any particular business: contexts plug into it
through `cleave.core.registry.ContextConfig`, publish and consume domain events through
`cleave.events`, orchestrate long-running work with `cleave.sagas`, and call each
other's published HTTP APIs with `cleave.calls.client.ServiceClient`.
"""
