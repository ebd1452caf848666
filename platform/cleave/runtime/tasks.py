"""
The platform's Celery tasks, in one module (config/celery.py discovers it):
a periodic job (beat sends it), an event or a batch of events for the
subscribers of this worker's contexts, and a drive of a saga
(CLEAVE_SAGA_RUNNER=celery). Their names are part of the messages in the
broker's queues, and never change with the modules.
"""

from uuid import UUID

from celery import shared_task

from cleave.messaging.broker import receiver
from cleave.runtime import periodic
from cleave.sagas.driver import run
from cleave.sagas.runners import TASK_NAME


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
    receiver.handle(self.app, envelope, context=context, handlers=handlers)


@shared_task(name=TASK_NAME, ignore_result=True, acks_late=True)
def run_saga(alias: str, saga_id: str) -> str:
    """
    Drive a saga (`CeleryRunner` sends this to the owning context's queue). A
    second delivery finds the lease taken or the saga final, and does nothing.
    """
    return run(alias, UUID(saga_id)).state
