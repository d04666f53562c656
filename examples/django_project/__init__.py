"""A minimal Django project hosting the greeter functions beside its own views."""
