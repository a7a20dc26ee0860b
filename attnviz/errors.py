"""Errors that the CLI turns into one red line and an exit code (DESIGN.md section 5)."""


class AttnvizError(Exception):
    """Base class; anything that is not a more specific error is an internal one."""

    exit_code = 5


class BadInput(AttnvizError):
    """Empty text, unreadable image, option out of range, unwritable output."""

    exit_code = 2


class ModelNotFound(AttnvizError):
    """A model name or path that cannot be found or loaded."""

    exit_code = 3


class BaselineError(AttnvizError):
    """A snapshot baseline (or its manifest) is missing or corrupt; the message says how to regenerate it."""

    exit_code = 3


class Unsafe(AttnvizError):
    """Refused as unsafe: pickle checkpoints, remote code without a pinned revision."""

    exit_code = 4


class Drift(AttnvizError):
    """A snapshot check found attention or attribution outside its tolerance."""

    exit_code = 1
