"""Celery tasks of the platform (discovered by config/celery.py)."""

from celery import shared_task

from cleave import periodic


@shared_task(name="cleave.periodic.run", ignore_result=True)
def run_periodic_job(name: str) -> None:
    periodic.get(name).run()
