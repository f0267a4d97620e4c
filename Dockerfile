# One image for web, worker and beat; docker-compose.yml picks the command. It installs only
# requirements.txt: no TensorFlow or Keras (the worker serves the models' LiteRT export; training,
# evaluation and export run outside it with requirements-ml.txt).
FROM python:3.11-slim
# STATIC_ROOT: collected here at build time, read there at run time (BRAINSCAN_VAR_DIR is the /data volume).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=brainscan.settings.base \
    STATIC_ROOT=/app/staticfiles
WORKDIR /app
# Debian's tesseract: uploads are read for burnt-in text (cases/burnedin.py) before they are stored.
RUN apt-get update && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic runs as brainscan: it writes STATIC_ROOT, and settings create the broker folder under var/.
RUN useradd --create-home --uid 1000 brainscan && mkdir -p /data /app/var /app/staticfiles \
    && chown brainscan /data /app/var /app/staticfiles
USER brainscan
# collectstatic needs settings to import; these build-time secrets are never used at run time.
RUN SECRET_KEY=build PATIENT_REF_KEY=build BRAINSCAN_VAR_DIR=/app/var python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "brainscan.wsgi", "-c", "brainscan/gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
