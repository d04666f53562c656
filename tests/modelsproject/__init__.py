"""A Django project whose functions import its models (tests/test_django.py serves it under
gunicorn): an app of its own (this package, with ``models.py``), settings, functions."""
