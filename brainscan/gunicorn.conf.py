"""gunicorn settings for `make run`, docker-compose and the image: threaded workers, so a slow
upload holds one thread while the others keep serving pages (`gunicorn -c brainscan/gunicorn.conf.py`).

Decoding and re-encoding an upload (Pillow) releases the GIL, so an upload's thread and the page
threads of the same process run on different cores. With gthread workers gunicorn's `timeout` no
longer ends a slow request (each worker's main loop keeps reporting alive); it restarts a worker
whose process is stuck. Slow uploads are bounded by the application instead (UPLOAD_MAX_SECONDS:
a 503 in the API's JSON), so no request ends in gunicorn's own HTML error page.
"""

from brainscan.settings.env import env_int

worker_class = "gthread"
# One process per core (the GIL); threads for requests that wait (uploads, the database, clients).
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
threads = env_int("WEB_THREADS", 8, minimum=1)
timeout = env_int("WEB_TIMEOUT_S", 30, minimum=1)
graceful_timeout = timeout
keepalive = 5
accesslog = "-"
# gunicorn 27 opens a control socket at one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl), which a second instance on the machine takes over. Nothing uses it.
control_socket_disable = True
