"""
What a process runs besides its requests: the bootstrap of each process role,
the periodic jobs and their scheduler, the Celery tasks, and the probes
(`/health`, `/ready`, `/metrics`, which read the outbox, the sagas and the
circuits, so they sit above them).
"""
