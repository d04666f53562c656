"""No views: the functions are the point."""

from __future__ import annotations

urlpatterns: list = []
