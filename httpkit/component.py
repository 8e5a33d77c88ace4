"""What each part (proxy, library API, frontend) hands to the composed app.

A component is plain data: its routes, a lifespan that opens and closes what it owns, and
its exception handlers. `thumbs.app.create_app` (the composition root) puts components side by side in one
Starlette app; endpoints are bound to their component objects, never to ``app.state``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute


@asynccontextmanager
async def _no_lifespan() -> AsyncIterator[None]:
    yield


@dataclass
class Component:
    routes: Sequence[BaseRoute]
    lifespan: Callable[[], AbstractAsyncContextManager[None]] = _no_lifespan
    exception_handlers: Mapping[Any, Callable[..., Any]] = field(default_factory=dict)
