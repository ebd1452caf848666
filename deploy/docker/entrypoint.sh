#!/bin/sh
# The one image's roles. Each ends in `exec`, so the role's process becomes the
# container's PID 1 and receives SIGTERM from `docker stop` or Kubernetes itself.
# web, worker and relay first wait until their databases are migrated
# (`manage.py wait_for_migrations`, at most CLEAVE_MIGRATION_WAIT seconds): a
# pod of a new release may start before its migration Job has ended.
set -eu

usage() {
    cat >&2 <<'USAGE'
usage: entrypoint ROLE [ARGS...]

roles:
  web                    gunicorn serving the contexts in CLEAVE_CONTEXTS (all when unset)
                         on port 8000; WEB_CONCURRENCY worker processes (default 2),
                         further gunicorn options in GUNICORN_CMD_ARGS
  worker LABELS [OPTS]   a Celery worker on the queues of LABELS (comma-separated
                         context labels; CLEAVE_CONTEXTS defaults to them); OPTS go to
                         `manage.py worker`, e.g. -- --pool threads -c 8
  relay                  the outbox relay of the served contexts' aliases
  beat                   Celery beat: sends the periodic jobs to their queues (run one)
  migrate [ALIAS]        migrate one database alias, or every alias when none is named

web, worker and relay wait for their databases' migrations first
(CLEAVE_MIGRATION_WAIT seconds at most, default 600; 0 skips the wait).
USAGE
    exit "${1:-2}"
}

# wait_for_migrations: until the served databases are migrated (exits on timeout)
wait_for_migrations() {
    python manage.py wait_for_migrations
}

role="${1:-}"
[ $# -gt 0 ] && shift

case "$role" in
    web)
        wait_for_migrations
        exec gunicorn -c python:config.gunicorn config.wsgi \
            --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-2}" \
            --access-logfile - --timeout 60 "$@"
        ;;
    worker)
        [ $# -gt 0 ] || usage
        labels="$1"
        shift
        CLEAVE_CONTEXTS="${CLEAVE_CONTEXTS:-$labels}"
        export CLEAVE_CONTEXTS
        wait_for_migrations
        exec python manage.py worker --contexts "$labels" "$@"
        ;;
    relay)
        wait_for_migrations
        exec python manage.py events relay "$@"
        ;;
    beat)
        # the schedule's state file lives in the writable data directory
        exec celery -A config beat \
            --schedule "${CLEAVE_DATA_DIR:-var}/celerybeat-schedule" "$@"
        ;;
    migrate)
        if [ $# -gt 0 ]; then
            exec python manage.py migrate --database "$1" --noinput
        fi
        exec python manage.py migrate_all --noinput
        ;;
    help | -h | --help)
        usage 0
        ;;
    *)
        usage
        ;;
esac
