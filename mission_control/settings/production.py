"""Production: refuse to start insecure; hashed, compressed static files."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import EMAIL_URL, LOGGING, STORAGES, env

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set in production.")
DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
STORAGES = {
    **STORAGES,
    # WhiteNoise's CompressedManifestStaticFilesStorage, rewriting ES module imports too.
    "staticfiles": {"BACKEND": "mission_control.static_storage.ModuleManifestStaticFilesStorage"},
}
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True

# HTTPS. TLS terminates in front of nginx (or in it); nginx passes the scheme on in
# X-Forwarded-Proto. SECURE_SSL_REDIRECT=false only for plain HTTP on a trusted
# host (a local `make serve` on 127.0.0.1). Health probes come over plain HTTP.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

# nginx writes the access log. base.LOGGING hands uvicorn.access to the root logger
# (to redact ?token=), which also undid uvicorn's --no-access-log: one line per
# request on every worker's stdout. Warnings and errors still pass.
LOGGING["loggers"]["uvicorn.access"]["level"] = "WARNING"

# Without EMAIL_URL there is nowhere to send a reset link: the form says so instead of
# promising a mail (and the console backend would write the links into the logs).
if not EMAIL_URL:
    EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
    PASSWORD_RESET_BY_EMAIL = False
