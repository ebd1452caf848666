"""
The Celery application (`celery -A config worker -Q <context>`, `celery -A config beat`).

Queues: one durable queue per context, named after its label (after
`CLEAVE_EVENT_QUEUE_PREFIX`), plus the default queue for platform-wide jobs.
Their declaration arguments are known from settings and set here at import,
so any process sending a task to a context's queue declares it identically;
the bindings to the events exchange need the subscription registry and are
added once Django is set up (`cleave.events.topology.install`): a worker does
it before it selects the queues named by `-Q`, other processes before their
first publish. See docs/events.md.

Beat's schedule is built from the periodic jobs registered with
`cleave.periodic`; each runs as the task `cleave.periodic.run` on its
context's queue (or the default queue for platform-wide jobs).
"""

import os

from celery import Celery, signals
from kombu import Exchange, Queue

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


app.conf.task_queues = _static_queues()


@signals.celeryd_init.connect
def _install_event_queues(sender=None, instance=None, **kwargs):
    """Bind each context queue to its event types before the worker selects `-Q` queues."""
    from cleave.messaging.broker import topology

    topology.install(app)


@signals.worker_init.connect
def _check_worker_queues(sender=None, **kwargs):
    from cleave.messaging.broker import receiver

    receiver.check_queues(app)


@signals.worker_ready.connect
def _declare_and_relay(sender=None, **kwargs):
    """Declare the dead-letter queues; start the relay loop here if so configured."""
    import logging

    from django.conf import settings

    from cleave.messaging import relay
    from cleave.messaging.broker import topology

    try:
        with app.connection_for_write() as conn:
            topology.declare(conn)
    except Exception:  # the relay declares them too, before it publishes
        logging.getLogger("cleave.events").exception("Could not declare the event topology")
    if settings.CLEAVE_EVENT_RELAY_IN_WORKER:
        relay.start_thread()
    from cleave.observability.metrics import serve_port

    serve_port()


@signals.beat_init.connect
def _install_for_beat(sender=None, **kwargs):
    from cleave.messaging.broker import topology

    topology.install(app)


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
