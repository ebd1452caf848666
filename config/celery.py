"""
The Celery application (`celery -A config worker -Q <context>`, `celery -A config beat`).

Queues: one durable queue per context, named after its label (after
`CLEAVE_EVENT_QUEUE_PREFIX`), plus the default queue for platform-wide jobs.
Their declaration arguments are known from settings and set when the app's
configuration is first read, so any process sending a task to a context's
queue declares it identically;
the bindings to the events exchange need the subscription registry and are
added once Django is set up (`cleave.messaging.broker.topology.install`): a worker does
it before it selects the queues named by `-Q`, other processes before their
first publish. See docs/events.md.

Beat's schedule is built from the periodic jobs registered with
`cleave.runtime.periodic`; each runs as the task `cleave.periodic.run` on its
context's queue (or the default queue for platform-wide jobs).
"""

import os
import sys
from pathlib import Path

from celery import Celery, signals
from kombu import Exchange, Queue

from cleave.runtime import bootstrap

# A process the `celery` command started (a worker or beat) serves: its role is
# declared before the settings load, so they leave the tools out.
if bootstrap.role() is None and Path(sys.argv[0]).name == "celery":
    bootstrap.declare("beat" if "beat" in sys.argv[1:] else "worker")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("cleave")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["cleave.runtime"], related_name="tasks")


def _static_queues() -> list[Queue]:
    """Every local context's queue without its event bindings, and the default queue."""
    from django.conf import settings

    prefix = settings.CLEAVE_EVENT_QUEUE_PREFIX
    default = app.conf.task_default_queue
    queues = [Queue(default, Exchange(default), routing_key=default)]
    for label in settings.CLEAVE_CONTEXTS:
        name = f"{prefix}{label}"
        queues.append(
            Queue(
                name,
                routing_key=name,
                durable=True,
                queue_arguments={
                    "x-dead-letter-exchange": f"{prefix}cleave.dead",
                    "x-dead-letter-routing-key": f"{name}.dead",
                },
            )
        )
    return queues


@app.on_after_configure.connect
def _declare_static_queues(sender, **kwargs):
    # when the configuration is first read, not at import: importing this
    # module (the processes that send tasks or publish events do) must not
    # load the settings before the process's role is declared
    sender.conf.task_queues = _static_queues()


@signals.celeryd_init.connect
def _worker_init(sender=None, instance=None, **kwargs):
    """Bind each context queue to its event types before the worker selects `-Q` queues."""
    bootstrap.worker_init(app)


@signals.worker_init.connect
def _check_worker_queues(sender=None, **kwargs):
    from cleave.messaging.broker import receiver

    receiver.check_queues(app)


@signals.worker_ready.connect
def _worker_ready(sender=None, **kwargs):
    bootstrap.worker_ready(app)


@signals.beat_init.connect
def _beat_init(sender=None, **kwargs):
    bootstrap.beat_init(app)


@app.on_after_finalize.connect
def _schedule_periodic_jobs(sender, **kwargs):
    from django.conf import settings

    from cleave.messaging.broker import topology
    from cleave.runtime import periodic

    for job in periodic.jobs():
        if job.context:
            targets = [(job.name, topology.queue_name(job.context))]
        else:
            # a platform job (relay sweep, saga recovery) works on the aliases of
            # the process that runs it: in a split, every context's workers run it
            # for their own, so it is sent to every context's queue
            targets = [
                (f"{job.name}@{label}", topology.queue_name(label))
                for label in settings.CLEAVE_ALL_CONTEXTS
            ]
        for name, queue in targets:
            sender.add_periodic_task(
                job.every,
                # a tick nobody ran before the next one is worthless: let it expire
                sender.signature(
                    "cleave.periodic.run", args=(job.name,), queue=queue, expires=job.every
                ),
                name=name,
            )
