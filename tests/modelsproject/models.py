"""A model, which can be imported only once Django is set up (AppRegistryNotReady before)."""

from __future__ import annotations

from django.db import models


class Greeting(models.Model):
    text = models.CharField(max_length=100)

    class Meta:
        app_label = "modelsproject"
        verbose_name = "greeting"
