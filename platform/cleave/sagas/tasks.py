"""
The Celery task that drives a saga (CLEAVE_SAGA_RUNNER=celery).

`CeleryRunner` sends it to the owning context's queue; a worker consuming that
queue (`celery -A config worker -Q orders`) runs the same definition the
in-process runner would. Delivery is at least once (`acks_late`): a second
delivery finds the lease taken or the saga final, and does nothing.
"""

from uuid import UUID

from celery import shared_task

from .driver import run
from .runners import TASK_NAME


@shared_task(name=TASK_NAME, ignore_result=True, acks_late=True)
def run_saga(alias: str, saga_id: str) -> str:
    return run(alias, UUID(saga_id)).state
