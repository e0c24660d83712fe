"""Trainings off the event loop: ``runner`` (the pool, the slots) and ``job`` (the child's work).
No web framework here."""
