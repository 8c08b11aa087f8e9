"""The bridge's routes, one blueprint per kind of client (see :func:`..app.create_app`)."""
from . import health, pickers, rest, series, simplejson

BLUEPRINTS = (health.bp, pickers.bp, series.bp, simplejson.bp, rest.bp)
