# A minimal Django project (Debian python3-django), unchanged for FC:
# handler mysite.wsgi.application.
SECRET_KEY = "fc-gateway-test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": False,
              "OPTIONS": {"context_processors": ["django.template.context_processors.csrf"]}}]
DATABASES = {}
USE_TZ = True
WSGI_APPLICATION = "mysite.wsgi.application"
