"""Settings shared by every environment, read from environment variables (see README)."""

import ipaddress
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("BRAINSCAN_VAR_DIR", str(BASE_DIR / "var")))

# No defaults for secrets: a missing one fails at start-up. Without NAME or NAME_FILE they are
# read from the files `make run` generates under var/, so manage.py works as the README shows.
SECRET_KEY = env_secret("SECRET_KEY", fallback_file=VAR_DIR / "secret_key")
# Keys the HMAC of external patient references. Changing it breaks "find earlier cases".
PATIENT_REF_KEY = env_secret("PATIENT_REF_KEY", fallback_file=VAR_DIR / "patient_ref_key")

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "brainscan.admin.BrainScanAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "cases",
    "inference",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "brainscan.middleware.content_security_policy",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything that may record an audit event (login, axes, views): names the client.
    "cases.audit.AuditRequestMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Times in the signed-in user's time zone (cases.preferences).
    "cases.preferences.TimeZoneMiddleware",
    "brainscan.middleware.refuse_nul_in_query",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "brainscan.urls"
WSGI_APPLICATION = "brainscan.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cases.context_processors.roles",
            ],
        },
    },
]

try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60
        )
    }
except ValueError as error:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {error}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Web and worker write concurrently: take the write lock up front and wait for it.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "cases:list"
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "brainscan.clientip.client_ip"
# The site's page (or the API's JSON) with the lock's duration and Retry-After, not a bare text.
AXES_LOCKOUT_CALLABLE = "brainscan.lockout.lockout_response"

# Reverse proxies whose X-Forwarded-For is believed (addresses or networks); none by default, so
# a client cannot choose the address that audit, lock-out and throttles record.
TRUSTED_PROXIES = []
for _proxy in env_list("TRUSTED_PROXIES", []):
    try:
        TRUSTED_PROXIES.append(ipaddress.ip_network(_proxy, strict=False))
    except ValueError:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network.") from None

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # vendor/plotly.min.js: the copy the pinned plotly package ships.
    "analytics.staticfiles.PlotlyFinder",
]
# Built once by collectstatic (`make run`, the image's build): the Docker image sets it, so the files
# collected at build time are found whatever BRAINSCAN_VAR_DIR the containers run with.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Scan images are patient data: no URL route serves MEDIA_URL; files go out only through
# access-checked views (cases:scan_image).
MEDIA_URL = "/media/"

_s3_bucket = env_str("S3_BUCKET", "")
if _s3_bucket:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _s3_bucket,
            "endpoint_url": env_str("S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("S3_REGION", "") or None,
            "access_key": env_secret("S3_ACCESS_KEY_ID"),
            "secret_key": env_secret("S3_SECRET_ACCESS_KEY"),
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "file_permissions_mode": 0o640},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Upload limits (per file). MRI slices are small; anything far larger is not what we read.
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024, minimum=1)
UPLOAD_MAX_PIXELS = env_int("UPLOAD_MAX_PIXELS", 25_000_000, minimum=1)
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 50, minimum=1)
# Per upload: the pixels of all its files together, summed from their headers before anything is
# decoded (decoding and re-encoding 100 Mpx costs about 1.5 s of one core), and the seconds its
# checks may take before it is answered 503, nothing stored (busy server).
UPLOAD_MAX_TOTAL_PIXELS = env_int("UPLOAD_MAX_TOTAL_PIXELS", 100_000_000, minimum=1)
UPLOAD_MAX_SECONDS = env_int("UPLOAD_MAX_SECONDS", 20, minimum=1)
# Per picture: the seconds the burned-in text check (cases.burnedin, tesseract) may take; past
# them the picture is held for a steward ("text check unavailable"), never passed unread.
UPLOAD_TEXT_CHECK_SECONDS = env_int("UPLOAD_TEXT_CHECK_SECONDS", 5, minimum=1)
# A series in one upload: its slices all together (files, archive members, frames of multi-frame
# objects), and the zip archives of the upload together: members, bytes once unpacked, and how
# far one member may be compressed (a zip bomb's ratio runs to thousands).
UPLOAD_MAX_SLICES = env_int("UPLOAD_MAX_SLICES", 500, minimum=1)
UPLOAD_ZIP_MAX_MEMBERS = env_int("UPLOAD_ZIP_MAX_MEMBERS", 500, minimum=1)
UPLOAD_ZIP_MAX_BYTES = env_int("UPLOAD_ZIP_MAX_BYTES", 200 * 1024 * 1024, minimum=1)
UPLOAD_ZIP_MAX_RATIO = env_int("UPLOAD_ZIP_MAX_RATIO", 100, minimum=1)
# Room above our own limit so a slightly-too-large upload gets our clear message, not a bare 400.
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES * 2
FILE_UPLOAD_PERMISSIONS = 0o640

# A clinician sees a class's mean, variability and difference images of case scans only when at
# least this many of its scans come from teams other than theirs, out of two teams or more
# (analytics.disclosure): an average of a few scans shows those scans.
ANALYTICS_MIN_CLASS_SCANS = 10

ML_MODELS_ROOT = Path(env_str("ML_MODELS_ROOT", str(BASE_DIR / "ml" / "models")))
# The task whose active model a worker loads as it starts (ml.tasks); the others load on first use.
CLASSIFICATION_TASK = env_str("CLASSIFICATION_TASK", "tumour-mri")

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport under var/ so a
# machine with only Python runs a real worker without installing a broker.
REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
# A publisher gives up quickly when the broker is down (the scan stays queued for the sweep): an
# upload request must not spend its time retrying a connection. One quick retry covers a pooled
# connection that the broker closed. Each transport reads only the options it knows.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.1,
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis: connecting, and any command (a publish), wait this long at most; not forever on a
    # broker that vanished without closing the connection.
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    # Connection retries inside one publish (kombu's default retries until broker_connection_timeout).
    "max_retries": 1,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env_str("CELERY_BROKER_DIR", str(VAR_DIR / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # The transport polls a folder; the default 1 s would dominate upload-to-result latency.
        "polling_interval": 0.05,
    }
    for _sub in ("queue", "control", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "brainscan")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-scans": {"task": "inference.tasks.sweep_stuck_scans", "schedule": 60.0},
    "sweep-lost-pulls": {"task": "cases.tasks.sweep_lost_pulls", "schedule": 60.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Added to each worker process's nice value (brainscan/celery.py), so the web process wins the CPU.
WORKER_NICE = env_int("WORKER_NICE", 10, minimum=0)

# A scan or a PACS pull (cases.pacs_pull.sweep_lost_pulls) left this long is presumed lost: re-enqueued.
SCAN_QUEUED_TIMEOUT = timedelta(seconds=env_int("SCAN_QUEUED_TIMEOUT_S", 120, minimum=1))
SCAN_PROCESSING_TIMEOUT = timedelta(seconds=env_int("SCAN_PROCESSING_TIMEOUT_S", 300, minimum=1))
SCAN_MAX_ATTEMPTS = env_int("SCAN_MAX_ATTEMPTS", 3, minimum=1)
PACS_PULL_LOST_AFTER = timedelta(seconds=env_int("PACS_PULL_LOST_AFTER_S", 900, minimum=1))

# The hospital's PACS over DICOMweb (cases/pacs.py); no PACS_URL: no PACS, the feature is off.
PACS_URL = env_str("PACS_URL", "").rstrip("/")
PACS_USER = env_str("PACS_USER", "")
PACS_PASSWORD = env_secret("PACS_PASSWORD", None)
PACS_TOKEN = env_secret("PACS_TOKEN", None)
PACS_TIMEOUT = env_int("PACS_TIMEOUT_S", 30, minimum=1)
# STOW-RS (POST /dicomweb/studies, cases/dicomweb.py): one request's body is read whole before its
# objects are checked, like an upload's zip archives; its objects then meet the upload limits.
STOW_MAX_BYTES = env_int("STOW_MAX_BYTES", 200 * 1024 * 1024, minimum=1)
# Report each series verdict back to the PACS (inference/reportback.py): off unless asked for.
PACS_REPORT_BACK = env_bool("PACS_REPORT_BACK", False)
PACS_REPORT_ATTEMPTS = env_int("PACS_REPORT_ATTEMPTS", 4, minimum=1)
PACS_REPORT_BACKOFF_S = env_int("PACS_REPORT_BACKOFF_S", 30, minimum=1)
PACS_REPORT_MAX_BACKOFF_S = env_int("PACS_REPORT_MAX_BACKOFF_S", 600, minimum=1)
if PACS_USER and not PACS_PASSWORD:
    raise ImproperlyConfigured("PACS_USER is set: set PACS_PASSWORD (or PACS_PASSWORD_FILE) too.")

# The REST API (/api/v1/, see README): token auth for scripts, the session for the browser.
REST_FRAMEWORK = {
    # Token first, so an anonymous request is told 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "brainscan.permissions.NotPacsAccount",
        "brainscan.middleware.QueryWithoutNul",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bodies are objects of fields: a bare number or `null` is a 400, in any of the three encodings.
    "DEFAULT_PARSER_CLASSES": [
        "brainscan.parsers.ObjectJSONParser",
        "brainscan.parsers.FieldsFormParser",
        "brainscan.parsers.FieldsMultiPartParser",
    ],
    # No ?format=: the Accept header alone picks JSON, CSV or PNG.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PAGINATION_CLASS": "brainscan.pagination.Pagination",
    "PAGE_SIZE": 25,
    "EXCEPTION_HANDLER": "brainscan.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "brainscan.api.AutoSchema",
}
# Views opt in with brainscan.api.ScopedThrottle and a scope; "<count>/<second|minute|hour|day>".
API_THROTTLE_RATES = {
    "api-token": env_str("API_TOKEN_RATE", "10/minute"),
    "api-upload": env_str("API_UPLOAD_RATE", "60/minute"),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "BrainScan API",
    "DESCRIPTION": "Cases, scan uploads, classification results and reviews. Decision support: "
    "every result is reviewed by a clinician.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Enums as components (drf-spectacular's default), and request bodies that refuse unknown fields.
    "POSTPROCESSING_HOOKS": ["brainscan.schema.postprocess"],
    # Swagger UI's assets come from this server (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "cases.models.Case.Status",
        "ScanStatusEnum": "cases.models.Scan.Status",
    },
}
# A Redis that is down or hung costs a throttled request at most a second before its 503
# (brainscan.api.ScopedThrottle); without timeouts a hung one held the request until gunicorn's.
REDIS_CACHE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
# Throttle counts must be shared by every web process: Redis when configured, else files under var/.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # {% cache %} fragments (the case list's rows), per process; their keys name what they show.
    "template_fragments": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "template-fragments",
        "OPTIONS": {"MAX_ENTRIES": 2000},
    },
    "api-throttle": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "throttle",
            "OPTIONS": REDIS_CACHE_OPTIONS,
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache" / "throttle"),
        }
    ),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Their INFO and DEBUG lines name the study and series UIDs (in DICOMweb URLs) a hospital's
    # PACS assigned: identifiers under PS3.15, which BrainScan keeps only remapped.
    "loggers": {name: {"level": "WARNING"} for name in ("dicomweb_client", "urllib3")},
}

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Everything from this server, nothing inline (templates keep scripts and styles in static/);
# images also as data:/blob: URLs (Plotly's and Swagger UI's icons and downloads).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The analytics pages draw with Plotly, which adds <style> elements and style attributes as it
# draws: there inline styles are allowed; scripts stay this server's files only.
CONTENT_SECURITY_POLICY_CHARTS = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
# HTTPS, behind a reverse proxy that ends TLS (docker-compose.yml turns these on; `make run`
# serves plain HTTP on 127.0.0.1 and leaves them off).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Believe X-Forwarded-Proto: https only when the proxy sets it on every request and the web
# server is reachable through the proxy alone; otherwise a client could claim HTTPS.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SECURE_PROXY_SSL_HEADER", False) else None
)

# Each worker process loads the model before it reports ready (LiteRT: well under a second).
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 120
