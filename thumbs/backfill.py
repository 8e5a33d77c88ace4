"""`thumbs backfill`: the API's backfill job, run from the command line with a progress bar."""

from __future__ import annotations

from contextlib import AsyncExitStack

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from library_api.backfill import JobProgress, run_backfill
from library_api.db import create_database
from proxy.app import create_proxy
from proxy.warm_types import WarmClient
from thumbs.configs import proxy_config
from thumbs.settings import Settings
from thumbs.warm_consumer import consuming
from thumbs.warm_paths import warm_paths


async def backfill_with_progress(settings: Settings, batch_size: int, retry_failed: bool = False) -> JobProgress:
    console = Console()
    async with AsyncExitStack() as stack:
        proxy = create_proxy(proxy_config(settings), warm_consumer=False)
        await stack.enter_async_context(proxy.component.lifespan())
        paths = warm_paths(settings, proxy.warmer)
        await stack.enter_async_context(paths.open())
        if settings.redis_url:
            # Waiting on the stream: this process consumes it too, so the command works alone
            # and any running `thumbs worker` shares the work.
            database = create_database(settings)
            await database.connect()
            stack.push_async_callback(database.disconnect)
            await stack.enter_async_context(consuming(proxy.warmer, database, settings))
        warm_client: WarmClient = paths.backfill
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
