"""What each live panel shows, as the dict its partial renders: the same dicts the JSON routes
answer with (``api.admin``), so the dashboard and ``/_/`` never disagree. One function per
panel; ``live`` calls them for the stream, the pages for their first render."""

from __future__ import annotations

from typing import Any

from diststorage.gateway.api.admin import health_status
from diststorage.gateway.services import Services


def health_panel(services: Services) -> dict[str, Any]:
    return health_status(services)
