"""gunicorn settings for every way BrainScan starts it (make run, docker-compose.yml, the
Dockerfile): gunicorn reads ./gunicorn.conf.py from its working directory, the repository root.
Command-line flags override these."""

# gunicorn 27 opens a control socket at one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl), which a second instance on the machine takes over. Nothing uses it.
control_socket_disable = True
