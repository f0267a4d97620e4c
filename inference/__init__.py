"""Model registry, runtime bridge to ml/, and the Celery tasks that classify scans."""
