"""The SDK's ``workers.workflows`` module: ``NonRetryableError``.

Workflows themselves are not emulated (``WorkflowEntrypoint`` raises when instantiated), but a
module that defines a Workflow next to its Worker and Durable Objects imports this name at its
top (``from workers.workflows import NonRetryableError``), so it must exist for the rest of the
module to load.
"""

from __future__ import annotations

__all__ = ["NonRetryableError"]


class NonRetryableError(Exception):
    """Raised in a Workflow step to fail it without the retries its config allows (the SDK's name)."""
