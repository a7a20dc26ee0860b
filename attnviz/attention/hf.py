"""Registration of the kernel with transformers, and the preflight that decides kernel vs eager.

A custom attention function gets ``attention_mask=None`` unless a mask function is registered
under the same name, so the kernel is registered together with transformers' eager mask (a full
float mask, never skipped for causal models).
"""

from __future__ import annotations

import sys

from attnviz.attention.kernel import attention

NAME = "attnviz"


def register() -> str:
    """Register the kernel and its mask function under ``attnviz``; safe to call again."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, eager_mask)
    return NAME


def supports_kernel(model_class) -> bool:
    """Whether ``model_class`` dispatches attention through the interface (GPT-J, BLOOM, DeBERTa-v2 do not)."""
    flag = "_supports_attention_backend"  # what is_backend_compatible() returns
    owner = next((c for c in getattr(model_class, "__mro__", ()) if flag in vars(c)), None)
    if owner is not None and owner.__name__ != "PreTrainedModel":
        return bool(getattr(model_class, flag))
    # T5, BART and Whisper keep the default (False) although they dispatch through the interface;
    # their modeling module imports the interface's table, which BLOOM's, GPT-J's and DeBERTa's do not.
    return hasattr(sys.modules.get(getattr(model_class, "__module__", "")), "ALL_ATTENTION_FUNCTIONS")


def backend_for(model_class) -> str:
    """The attn_implementation to load ``model_class`` with: ``attnviz``, or ``eager`` as the fallback."""
    if supports_kernel(model_class):
        return register()
    return "eager"
