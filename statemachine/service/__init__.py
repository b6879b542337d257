"""``statemachine serve``: the engine as an HTTP service (Starlette on uvicorn).

``app.py`` the routes, ``writer.py`` the one thread that commits requests by group,
``intake.py`` bodies to events, ``webhooks.py`` signed provider callbacks, ``auth.py`` who may
call, ``privacy.py`` contact details masked, ``views.py`` the JSON answers, ``run.py`` the
server and its graceful stop; ``page.py`` the operator's page.
"""

from .app import create_app
from .writer import Writer

__all__ = ["Writer", "create_app"]
