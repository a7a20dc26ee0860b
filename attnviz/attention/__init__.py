"""attnviz's attention: one kernel, registered with transformers under the name ``attnviz``."""

from attnviz.attention.kernel import MASKS, SCORES, SINK, attention

__all__ = ["attention", "MASKS", "SCORES", "SINK"]
