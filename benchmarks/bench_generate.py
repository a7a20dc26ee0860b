"""attnviz generate on a tiny Llama-shaped model (seeded, built in code), every figure a ratio in one run:

1. the attention matrix of a 64-token answer (one teacher-forced pass, last layer recorded) vs one plain
   forward pass over prompt + answer (target <= 1.3x): the whole call (tokenizing, step scores, token names and
   step entries included) vs a forward that tokenizes, and the matrix alone (the recorded pass and the rows read
   from it) vs a forward on the same ids; the statistics path (--keep stats) beside;
2. saliency for every step (one forward pass, the steps' backward passes batched), vs one forward + backward per
   step, and vs one row per step in passes of 32 rows (the path attn-grad and occlusion still take);
3. integrated gradients of every step vs inseq's (`pip install inseq`; it installs beside transformers 5), the
   same model, answer and quadrature steps, and vs captum's IntegratedGradients run step by step on the same
   target, steps and baseline (captum is what inseq calls). Without inseq installed, the captum figure alone.

Times come from interleaved runs; each ratio is the median of per-round ratios with their range
(benchmarks/common.py). The attention comparison, a few milliseconds a call on the smallest model, warms each side up
once and times runs of --calls calls.

    python3 benchmarks/bench_generate.py [--device cpu] [--repeat 5] [--prompt 64] [--answer 64] [--calls 20]
        [--hidden 64] [--layers 2] [--parts attention,saliency,ig]

A long prompt's attention: --prompt 4000 --hidden 256 --layers 4 --parts attention --calls 2.
"""

from __future__ import annotations

import argparse

import torch

from common import Ratio, interleaved, median_ms

from attnviz.attribution.forced import attention_scores, forced_batch, forward
from attnviz.attribution.generation import attribute_generation
from attnviz.attribution.steprows import gradient_scores
from attnviz.attribution.tokens import method_options
from attnviz.models import load_model
from attnviz.models.generate import encode_answer, encode_prompts, pad_id

IG_STEPS = 16


def tiny_llama(folder: str, prompt_len: int, answer_len: int, device: str, hidden: int = 64, layers: int = 2):
    """A seeded Llama (4 heads, 2 KV heads) with a word-level tokenizer, saved and loaded by attnviz."""
    import transformers as tf

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=2 * hidden, vocab_size=len(words), pad_token_id=0,
                         max_position_embeddings=prompt_len + answer_len + 8)
    tf.LlamaForCausalLM(cfg).save_pretrained(folder)
    tf.BertTokenizer(vocab={w: i for i, w in enumerate(words)}, model_input_names=["input_ids", "attention_mask"],
                     model_max_length=prompt_len + answer_len + 8).save_pretrained(folder)
    loaded = load_model(folder, device=device)
    rng = torch.Generator().manual_seed(1)
    prompt = " ".join(f"w{int(i)}" for i in torch.randint(0, 95, (prompt_len - 2,), generator=rng))
    answer = " ".join(f"w{int(i)}" for i in torch.randint(0, 95, (answer_len,), generator=rng))
    return loaded, prompt, answer


def plain_forward(loaded, prompt: str, answer: str):
    ids = loaded.tokenizer(prompt + " " + answer, return_tensors="pt")["input_ids"][:, :-1].to(loaded.device)
    with torch.inference_mode():
        return loaded.model(input_ids=ids, use_cache=False).logits


def matrix_alone(loaded, forced):
    """The recorded pass over a prepared batch and the attention rows read from it: no tokenizing, no step entries."""
    _, _, weights, q0 = forward(loaded, forced, [loaded.num_layers - 1], "full", answer_rows=True)
    return attention_scores("attention", None, forced, weights, q0)


def forward_alone(loaded, forced):
    with torch.inference_mode():
        return loaded.model(input_ids=forced.ids[:, :-1], use_cache=False).logits


def naive_saliency(loaded, prompt: str, answer: str):
    """One forward and one backward per generated token: the loop that batching the steps replaces."""
    p = loaded.tokenizer(prompt, return_tensors=None)["input_ids"]
    a = loaded.tokenizer(answer, add_special_tokens=False, return_tensors=None)["input_ids"]
    seq = torch.tensor([p + a], device=loaded.device)
    out = []
    for t in range(len(a)):
        x = loaded.model.get_input_embeddings()(seq[:, : len(p) + t]).detach().requires_grad_(True)
        score = loaded.model(inputs_embeds=x, use_cache=False).logits[0, -1, a[t]]
        (grad,) = torch.autograd.grad(score, x)
        out.append(grad.norm(dim=-1)[0])
    return out


def per_row(loaded, prompt: str, answer: str, method: str, **options):
    """One row per step, 32 rows a pass (steprows): the path the input-gradient methods took before."""
    a = encode_answer(loaded, answer)
    forced = forced_batch(loaded, encode_prompts(loaded, [prompt]).ids, [a], [[(t, t) for t in range(len(a))]],
                          pad_id(loaded))
    return gradient_scores(loaded, forced, method, method_options([method], **options)[method], pad_id(loaded), 32)


def captum_steps(loaded, prompt: str, answer: str):
    """captum's IntegratedGradients for each generated token, each its own call (the baseline: [PAD] on text)."""
    from captum.attr import IntegratedGradients

    p = loaded.tokenizer(prompt, return_tensors=None)["input_ids"]
    a = loaded.tokenizer(answer, add_special_tokens=False, return_tensors=None)["input_ids"]
    embed = loaded.model.get_input_embeddings()
    seq = torch.tensor([p + a], device=loaded.device)
    special = torch.tensor(loaded.tokenizer.all_special_ids, device=loaded.device)
    pad = embed(torch.tensor([loaded.tokenizer.pad_token_id], device=loaded.device))[0].detach()
    out = []
    for t in range(len(a)):
        ids = seq[:, : len(p) + t]
        x = embed(ids).detach()
        x0 = torch.where(torch.isin(ids, special)[..., None], x, pad)
        ig = IntegratedGradients(lambda e, tok=a[t]: loaded.model(inputs_embeds=e, use_cache=False).logits[:, -1, tok])
        out.append(ig.attribute(x, baselines=x0, n_steps=IG_STEPS, internal_batch_size=32).sum(-1))
    return out


def inseq_steps(loaded, prompt: str, answer: str):
    """inseq's integrated gradients over the same forced answer: one call, every generated token a step."""
    import inseq

    model = inseq.load_model(loaded.model, "integrated_gradients", tokenizer=loaded.tokenizer)
    return model.attribute(prompt, generated_texts=f"{prompt} {answer}", n_steps=IG_STEPS, internal_batch_size=32,
                           show_progress=False, device=str(loaded.device))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--answer", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64, help="model width (64: fixed costs dominate; 512: they do not)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--ig-answer", type=int, default=16, help="answer tokens for the IG comparison")
    ap.add_argument("--calls", type=int, default=20, help="calls per timed run of the attention comparison")
    ap.add_argument("--parts", default="attention,saliency,ig", help="which comparisons to run (comma-separated)")
    args = ap.parse_args()
    import tempfile

    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as folder:
        loaded, prompt, answer = tiny_llama(folder, args.prompt, args.answer, args.device, args.hidden, args.layers)
        print(f"Llama ({args.layers} layers, 4 heads, hidden {args.hidden}) on {loaded.device}; prompt {args.prompt} "
              f"tokens, answer {args.answer}, {args.repeat} interleaved rounds")
        if "attention" in parts:
            attention(loaded, prompt, answer, args)
        if "saliency" in parts:
            saliency(loaded, prompt, answer, args)
        if "ig" in parts:
            integrated(loaded, prompt, answer, args)


def ours(loaded, prompt: str, method: str, answer: str, **kw):
    return lambda: attribute_generation(loaded, prompt, methods=[method], answer=answer, **kw)


def attention(loaded, prompt: str, answer: str, args) -> None:
    """The whole call and the matrix alone; a call takes milliseconds here: each side is run once untimed, then
    timed as runs of --calls calls. The statistics path (--keep stats), which also keeps the answer's rows, beside."""
    a = encode_answer(loaded, answer)
    forced = forced_batch(loaded, encode_prompts(loaded, [prompt]).ids, [a], [[(t, t) for t in range(len(a))]],
                          pad_id(loaded))
    cases = {"forward": lambda: plain_forward(loaded, prompt, answer),
             "attention": ours(loaded, prompt, "attention", answer),
             "stats": ours(loaded, prompt, "attention", answer, keep="stats"),
             "ids forward": lambda: forward_alone(loaded, forced), "matrix": lambda: matrix_alone(loaded, forced)}
    for fn in cases.values():
        fn()
    times, _ = interleaved({n: (lambda fn=fn: [fn() for _ in range(args.calls)]) for n, fn in cases.items()},
                           args.repeat, device=loaded.device)
    print(f"attention matrix vs plain forward (target <= 1.3x): the whole call "
          f"{Ratio.of(times['attention'], times['forward'])}x ({median_ms(times['attention'])} vs "
          f"{median_ms(times['forward'])} for {args.calls} calls)")
    print(f"    the matrix alone vs a forward on the same ids: {Ratio.of(times['matrix'], times['ids forward'])}x "
          f"({median_ms(times['matrix'])} vs {median_ms(times['ids forward'])})")
    print(f"    --keep stats, the whole call: {Ratio.of(times['stats'], times['forward'])}x "
          f"({median_ms(times['stats'])})")


def saliency(loaded, prompt: str, answer: str, args) -> None:
    times, _ = interleaved({"naive": lambda: naive_saliency(loaded, prompt, answer),
                            "rows": lambda: per_row(loaded, prompt, answer, "saliency"),
                            "batched": ours(loaded, prompt, "saliency", answer)}, args.repeat, device=loaded.device)
    print(f"saliency, every step: naive loop / batched steps: {Ratio.of(times['naive'], times['batched'])}x "
          f"faster ({median_ms(times['batched'])} vs {median_ms(times['naive'])})")
    print(f"    one row per step / batched steps: {Ratio.of(times['rows'], times['batched'])}x "
          f"({median_ms(times['rows'])})")


def integrated(loaded, prompt: str, answer: str, args) -> None:
    short = " ".join(answer.split()[: args.ig_answer])
    runs = {"captum": lambda: captum_steps(loaded, prompt, short),
            "rows": lambda: per_row(loaded, prompt, short, "integrated-gradients", steps=IG_STEPS),
            "ours": ours(loaded, prompt, "integrated-gradients", short, steps=IG_STEPS)}
    try:
        import inseq  # noqa: F401

        runs["inseq"] = lambda: inseq_steps(loaded, prompt, short)
    except ImportError:
        pass
    times, _ = interleaved(runs, max(1, args.repeat // 2), device=loaded.device)
    print(f"integrated gradients ({args.ig_answer} steps of the answer, {IG_STEPS} quadrature steps): "
          f"captum / attnviz: {Ratio.of(times['captum'], times['ours'])}x "
          f"({median_ms(times['ours'])} vs {median_ms(times['captum'])})")
    print(f"    one row per step / batched steps: {Ratio.of(times['rows'], times['ours'])}x "
          f"({median_ms(times['rows'])})")
    if "inseq" in times:
        print(f"    inseq / attnviz: {Ratio.of(times['inseq'], times['ours'])}x ({median_ms(times['inseq'])})")
    else:
        print("    inseq: not installed (pip install inseq) and not compared")


if __name__ == "__main__":
    main()
