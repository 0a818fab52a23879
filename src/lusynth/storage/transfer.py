"""What uploads and downloads share: boto3's transfer manager and a progress bar fed by it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from lusynth.storage.client import TransferOptions


@contextlib.contextmanager
def transfer_manager(s3: Any, opts: TransferOptions) -> Iterator[Any]:
    """boto3's transfer manager; leaving the block on an error cancels the transfers still queued."""
    from boto3.s3.transfer import create_transfer_manager

    with create_transfer_manager(s3, opts.transfer_config()) as tm:
        yield tm


@contextlib.contextmanager
def progress_bar(enabled: bool, label: str, total: int, *, unit: str = "bytes") -> Iterator[Any]:
    """Yield ``advance(n)``; a rich bar when enabled, a no-op otherwise."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)  # rich's Progress is thread-safe


def subscribers(advance: Any, enabled: bool) -> list[Any]:
    """The transfer manager's subscribers that feed ``advance`` with bytes moved (none when disabled)."""
    if not enabled:
        return []
    from s3transfer.subscribers import BaseSubscriber

    class _Progress(BaseSubscriber):
        def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
            advance(bytes_transferred)

    return [_Progress()]
