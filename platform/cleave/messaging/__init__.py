"""
Domain events, written by hand where no library fits (an outbox and an inbox in
every context's own alias, the transport switch): the envelope, the registered
event types and subscriptions, publishing into the outbox, the inbox that
applies a handler once, the failure policy of a delivery (retries, dead
letters), the transports (in process, or Celery over a broker), the relay and
its sweep, and replay.

    from cleave.messaging.publish import publish
    from cleave.messaging.subscriptions import subscriber
"""
