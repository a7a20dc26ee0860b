"""Recording attention from the kernel (``recording``) and capturing it for inputs (``capture``)."""

from attnviz.attention.sites import STACKS
from attnviz.recording.capture import capture
from attnviz.recording.sinks import STORE_DTYPES, Recording, recording

__all__ = ["STACKS", "STORE_DTYPES", "Recording", "capture", "recording"]
