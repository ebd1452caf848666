"""Celery tasks of the platform (discovered by config/celery.py)."""

from celery import shared_task

from cleave import periodic
from cleave.events import worker


@shared_task(name="cleave.periodic.run", ignore_result=True)
def run_periodic_job(name: str) -> None:
    periodic.get(name).run()


@shared_task(
    bind=True,
    name="cleave.events.handle",
    ignore_result=True,
    # ack only after the handlers' transactions committed: a worker that dies
    # mid-handler leaves the message unacked and the broker redelivers it
    acks_late=True,
    reject_on_worker_lost=True,
)
def handle_event(
    self, envelope: dict | list[dict], context: str | None = None, handlers: list[str] | None = None
) -> None:
    """
    Run an event (an envelope) or a batch of them (a list) for the subscribers
    of the contexts whose queues this worker consumes.
    """
    worker.handle(self.app, envelope, context=context, handlers=handlers)
