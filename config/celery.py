"""
The Celery application (`celery -A config worker -Q <context>`, `celery -A config beat`).

Beat's schedule is built from the periodic jobs registered with
`cleave.periodic`; each runs as the task `cleave.periodic.run` on its
context's queue (or the default queue for platform-wide jobs).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("cleave")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["cleave"], related_name="tasks")


@app.on_after_finalize.connect
def _schedule_periodic_jobs(sender, **kwargs):
    from cleave import periodic

    for job in periodic.jobs():
        sender.add_periodic_task(
            job.every,
            sender.signature(
                "cleave.periodic.run", args=(job.name,), queue=job.context or "celery"
            ),
            name=job.name,
        )
