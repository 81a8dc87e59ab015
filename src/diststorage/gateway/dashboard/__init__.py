"""The web dashboard at ``/_/ui``: server-rendered pages, live panels over Server-Sent Events,
admin actions behind a login and CSRF tokens. See ``app`` and ``context``."""

from diststorage.gateway.dashboard.app import build_dashboard, mount_dashboard

__all__ = ["build_dashboard", "mount_dashboard"]
