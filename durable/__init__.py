"""durable: Cloudflare Durable Objects, embeddable in Python (skeleton; filled in by the core)."""

from __future__ import annotations
