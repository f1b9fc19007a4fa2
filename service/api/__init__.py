"""The HTTP face: the app factory and lifespan, routes, schemas, middleware, the dashboard.

Turns requests into calls on :mod:`tbptt_service.host` and answers back; owns no model state.
"""
