"""`thumbs backfill`: the API's backfill job, run from the command line with a progress bar."""

from __future__ import annotations

from contextlib import AsyncExitStack, aclosing

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from library_api.backfill import JobProgress, run_backfill
from library_api.warm_client import HttpWarmClient
from proxy.app import create_proxy
from proxy.warm_types import WarmClient
from thumbs.settings import Settings


async def backfill_with_progress(settings: Settings, batch_size: int, retry_failed: bool = False) -> JobProgress:
    console = Console()
    async with AsyncExitStack() as stack:
        warm_client: WarmClient
        if settings.warm_url:
            http_warm_client = HttpWarmClient(settings.warm_url, settings.warm_token)
            warm_client = await stack.enter_async_context(aclosing(http_warm_client))
        else:
            # No proxy to call: generate in this process, into the same disk store and Redis.
            proxy = create_proxy(settings, warm_consumer=False)
            await stack.enter_async_context(proxy.component.lifespan())
            warm_client = proxy.warmer
        columns = (TextColumn("backfill"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("backfill", total=None, failed=0)

            def show(job: JobProgress) -> None:
                progress.update(task, total=job.total, completed=job.done + job.failed, failed=job.failed)

            result = await run_backfill(
                settings, warm_client, batch_size=batch_size, on_progress=show, retry_failed=retry_failed
            )
    console.print(
        f"job {result.id}: {result.status}, {result.done} done, {result.failed} failed, {result.remaining} remaining"
    )
    return result
