"""The pure ASGI layers in front of FastAPI, one module each (``app.main`` stacks them)."""
