"""What one ``lusynth serve`` process accepts: every field is a ``lusynth serve`` option.

The limits keep a server on a shared research machine up under careless or hostile clients:
memory is bounded by ``max_connections x spool_bytes`` for uploads in flight plus
``max_concurrent_predictions x 2 x max_upload_bytes`` for requests being decoded, and no client
holds a connection longer than ``header_timeout_s + body_timeout_s`` without being answered.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lusynth.errors import InputError


@dataclass(frozen=True)
class ServeLimits:
    """Request, connection and time limits of the HTTP service (defaults suit one CPU server)."""

    max_upload_bytes: int = 8 << 20  # largest request body in bytes; a larger Content-Length is refused with 413 before reading it
    max_batch: int = 64  # most images in one request (413 above)
    max_image_pixels: int = 0  # most pixels (width x height) an image header may declare, checked before decoding (413 above); 0 = 16 x the model's frame
    max_connections: int = 32  # connections served at once; requests on further connections get 503 at once, holding no memory
    header_timeout_s: float = 10.0  # seconds a client has to send a request's headers; the connection is closed after that
    body_timeout_s: float = 60.0  # seconds a client has to send a whole request body; slower or stalled uploads get 408 and are closed
    keep_alive_s: int = 5  # seconds an idle keep-alive connection stays open between requests
    spool_bytes: int = 1 << 20  # bytes of one upload held in memory while it arrives; the rest goes to an unlinked file in the server's temp dir
    max_concurrent_predictions: int = 2  # requests decoded and predicted at once in worker threads, off the event loop that answers /healthz

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            low = 0 if f.name == "max_image_pixels" else 1 if isinstance(value, int) else 0.001
            if value < low:
                raise InputError(f"--{f.name.replace('_', '-')}={value}: must be >= {low}")

    def pixel_limit(self, image_size: int) -> int:
        """The largest pixel count an image header may declare for a model of ``image_size``."""
        return self.max_image_pixels or 16 * image_size * image_size
