"""The Flask app: Grafana JSON (simpod), legacy SimpleJSON and a small REST API.

:func:`create_app` is the factory: the hooks every request goes through
(:mod:`.hooks`) and one blueprint per kind of client (:mod:`.routes`).
Everything that touches WAMP goes through ``backend`` (:class:`.web.Backend`),
so the routes only parse, check and shape; they run in the WSGI thread pool and
never on the reactor.
"""
from __future__ import annotations

from flask import Flask

from . import hooks
from .config import HttpSettings
from .routes import BLUEPRINTS, page
from .web import EXTENSION, Backend, Context

__all__ = ["Backend", "create_app"]


def create_app(backend: Backend, settings: HttpSettings) -> Flask:
    app = Flask("datasock.http_bridge")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.extensions[EXTENSION] = Context(backend, settings)
    page.install(app)        # the page's files need no credentials: before the auth hook
    hooks.install(app, settings)
    app.register_blueprint(page.bp)     # first: its GET / answers browsers, then defers to health
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
