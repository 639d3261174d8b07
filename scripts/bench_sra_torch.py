#!/usr/bin/env python3
"""PyTorch side of the SRA benchmark: SmolLM2-135M-Instruct (teacher, its own tokenizer) into the
10-layer GPT-2-vocabulary student (vocabulary transplant, exported by `mrl`), one SRA training
step as `mrl distill --config configs/sra-smollm2-gpt2.toml` takes it, to run in the same session
as, alternating with, the Rust loop (scripts/bench_distill.sh, SRA=1).

    MRL_SHARED=../shared python3 scripts/bench_sra_torch.py --student DIR --teacher live
    MRL_SHARED=../shared python3 scripts/bench_sra_torch.py --student DIR --teacher cache

DIR is the untrained transplanted student in the Hugging Face layout:
    cargo run --release -p models --example export_student -- \\
        $MRL_SHARED/models/SmolLM2-135M-Instruct-Q4_1 10 DIR \\
        --vocab $MRL_SHARED/models/gpt2-tokenizer/tokenizer.json
(needs torch, transformers, tokenizers and `pip install gguf`.)

The step, written here from the formulas of docs/ and the loss's documentation, not from the
Rust code:
- data: the first N Dolly records, "### Instruction:\\n{instruction}\\n\\n### Response:\\n" +
  response, each tokenizer's own tokens (character offsets), its EOS appended, truncated to 128;
  response tokens are those after the prompt's tokens; batches of 4 in file order, right-padded
  (teacher with id 2, student with 50256);
- spans: the end offsets of the response tokens (EOS excluded) present on both sides are the
  shared boundaries; a span is the tokens between consecutive boundaries, on each side;
- centres of mass at teacher hidden state 30 and student hidden state 10 (after the final norm),
  weighted by the attention of the last decoder layer from the last real token's query row,
  summed over heads, normalised over the real keys (eager attention, no gradient);
- L_SRA = COM + 50 GEO + LOGIT (τ = 2, over the 36,961 exact-string shared tokens), each summed
  over the spans of an example and averaged over the batch; loss = 0.5 CE + 0.5 L_SRA;
- AdamW: the student at lr 5e-5, weight decay 0.01; the 576 x 576 projector at 5e-4 without
  weight decay; 2 threads.

`--teacher cache` precomputes (in a child process, like the Rust span cache) the teacher's
state 30 and centre-of-mass weights at every response token; the step then runs the student
only (the teacher's head rows over the shared vocabulary are kept in memory).

Output: one JSON line per round, as scripts/bench_distill_torch.py's, with "objective": "sra".
`--check --teacher live` instead prints the untrained student's breakdown {"com", "geo", "logit",
"ce", "total", "spans"} with the projector at the identity over the first --examples records in
one batch, to compare with `mrl distill --eval-only ... --set objective.sra.projector_init=
'"identity"'` on the same records; `--fixture` writes it for the test
`distill_smollm2::smollm2_sra_matches_pytorch`:
    MRL_SHARED=../shared python3 scripts/bench_sra_torch.py --student DIR --teacher live \
        --check --examples 8 --fixture crates/training/tests/fixtures/sra_smollm2_reference.json
"""
import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_distill_torch import PROMPT, load_teacher, log, model_dir, shared  # noqa: E402

EPS_COS = 1e-8
EPS_MASS = 1e-5


def tokenizers_pair():
    from tokenizers import Tokenizer
    teacher = Tokenizer.from_file(os.path.join(model_dir(), "tokenizer.json"))
    student = Tokenizer.from_file(os.path.join(shared(), "models/gpt2-tokenizer/tokenizer.json"))
    return teacher, student


def encode(tok, eos, prompt, response, max_length):
    """(ids, response mask, end offsets) with EOS appended (its end offset None)."""
    text = prompt + response
    enc = tok.encode(text, add_special_tokens=False)
    n_prompt = len(tok.encode(prompt, add_special_tokens=False).ids)
    ids = list(enc.ids) + [eos]
    ends = [e for _, e in enc.offsets] + [None]
    resp = [i >= n_prompt for i in range(len(ids))]
    return ids[:max_length], resp[:max_length], ends[:max_length]


def spans_of(t_side, s_side):
    """Shared spans: per side, the span index of each token (-1 outside spans)."""
    def ends(side):
        _, resp, e = side
        return [(i, e[i]) for i in range(len(e)) if resp[i] and e[i] is not None]
    t_ends, s_ends = ends(t_side), ends(s_side)
    bounds = sorted({e for _, e in t_ends} & {e for _, e in s_ends})
    index = {b: k for k, b in enumerate(bounds)}

    def assign(side_ends, n):
        out = [-1] * n
        k = 0
        for i, e in side_ends:
            while k < len(bounds) and bounds[k] < e:
                k += 1
            if k < len(bounds):
                out[i] = index[bounds[k]]
        return out
    return assign(t_ends, len(t_side[0])), assign(s_ends, len(s_side[0])), len(bounds)


def make_examples(n, max_length):
    t_tok, s_tok = tokenizers_pair()
    out = []
    with open(os.path.join(shared(), "data/dolly_2k.jsonl"), encoding="utf-8") as f:
        for line in f:
            if len(out) == n:
                break
            rec = json.loads(line)
            prompt = PROMPT.format(instruction=rec["instruction"])
            t = encode(t_tok, 2, prompt, rec["response"], max_length)
            s = encode(s_tok, 50256, prompt, rec["response"], max_length)
            t_span, s_span, k = spans_of(t, s)
            out.append({"t_ids": t[0], "s_ids": s[0], "s_resp": s[1], "t_resp": t[1],
                        "t_span": t_span, "s_span": s_span, "spans": k})
    return out


def batches(examples, batch_size):
    out = []
    for i in range(0, len(examples) - batch_size + 1, batch_size):
        chunk = examples[i:i + batch_size]
        k = max(max(e["spans"] for e in chunk), 1)

        def side(ids_key, span_key, pad):
            seq = max(len(e[ids_key]) for e in chunk)
            ids = torch.full((len(chunk), seq), pad, dtype=torch.long)
            attn = torch.zeros((len(chunk), seq), dtype=torch.long)
            member = torch.zeros((len(chunk), k, seq))
            for b, e in enumerate(chunk):
                ids[b, :len(e[ids_key])] = torch.tensor(e[ids_key])
                attn[b, :len(e[ids_key])] = 1
                for j, s in enumerate(e[span_key]):
                    if s >= 0:
                        member[b, s, j] = 1.0
            return ids, attn, member
        s_ids, s_attn, s_member = side("s_ids", "s_span", 50256)
        t_ids, t_attn, t_member = side("t_ids", "t_span", 2)
        counted = torch.zeros_like(s_attn, dtype=torch.bool)
        for b, e in enumerate(chunk):
            counted[b, :len(e["s_resp"])] = torch.tensor(e["s_resp"])
        out.append({"s": (s_ids, s_attn, s_member), "t": (t_ids, t_attn, t_member),
                    "counted": counted[:, 1:]})
    return out


def com_weights(attention, attn_mask):
    """attention [B, H, S, S] of the layer producing the state; the last real query row."""
    last = attn_mask.sum(1) - 1
    rows = attention[torch.arange(attention.shape[0]), :, last, :].sum(1)  # [B, S]
    rows = rows * attn_mask
    return rows / rows.sum(1, keepdim=True)


def centres(member, weights, hidden):
    mass = member @ weights.unsqueeze(-1)  # [B, K, 1]
    c = (member * weights.unsqueeze(1)) @ hidden / mass.clamp(min=EPS_MASS)
    return mass.squeeze(-1), c


def unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp(min=EPS_COS)


def teacher_side(teacher, t_ids, t_attn):
    with torch.no_grad():
        out = teacher(input_ids=t_ids, attention_mask=t_attn, output_hidden_states=True,
                      output_attentions=True)
        return out.hidden_states[30], com_weights(out.attentions[29], t_attn)


def sra_loss(student, projector, heads, batch, teacher_states, tau=2.0, gamma=50.0,
             parts=False):
    s_ids, s_attn, s_member = batch["s"]
    _, t_attn, t_member = batch["t"]
    h_t, a_t = teacher_states
    out = student(input_ids=s_ids, attention_mask=s_attn, output_hidden_states=True,
                  output_attentions=True)
    logits = out.logits[:, :-1][batch["counted"]]
    ce = F.cross_entropy(logits, s_ids[:, 1:][batch["counted"]])
    a_s = com_weights(out.attentions[-1].detach(), s_attn)
    mass_t, c_t = centres(t_member, a_t, h_t)
    _, c_s = centres(s_member, a_s, out.hidden_states[-1])
    present = (t_member.sum(-1) > 0).float()
    beta = mass_t / mass_t.sum(1, keepdim=True).clamp(min=1e-30)
    cos = (unit(projector(c_s)) * unit(c_t)).sum(-1)
    com = (beta * (1 - cos)).sum(1)
    pi = beta.unsqueeze(2) * beta.unsqueeze(1) * (1 - torch.eye(beta.shape[1]))
    total = pi.sum((1, 2))
    total = torch.where(total == 0, torch.ones_like(total), total)
    g_s, g_t = unit(c_s) @ unit(c_s).transpose(1, 2), unit(c_t) @ unit(c_t).transpose(1, 2)
    geo = gamma * (pi * (g_s - g_t) ** 2).sum((1, 2)) / total
    e_s = student.get_output_embeddings().weight[heads["student"]]
    log_p = torch.log_softmax(c_t @ heads["teacher"].T / tau, -1)
    log_q = torch.log_softmax(c_s @ e_s.T / tau, -1)
    logit = ((log_p.exp() * (log_p - log_q)).sum(-1) * present).sum(1)
    l_sra = (com + geo + logit).mean()
    total = 0.5 * ce + 0.5 * l_sra
    if parts:
        return {"com": float(com.mean()), "geo": float(geo.mean()),
                "logit": float(logit.mean()), "ce": float(ce), "total": float(total),
                "spans_per_example": [int(v) for v in present.sum(1)],
                "examples": [{"com": float(c), "geo": float(g), "logit": float(lg)}
                             for c, g, lg in zip(com, geo, logit)],
                "teacher_ids_0": batch["t"][0][0, :int(t_attn[0].sum())].tolist(),
                "student_ids_0": s_ids[0, :int(s_attn[0].sum())].tolist()}
    return total


def shared_vocab(t_tok, s_tok):
    """(student ids, teacher ids) of the exact-string shared tokens, in student id order."""
    t_vocab, s_vocab = t_tok.get_vocab(True), s_tok.get_vocab(True)
    pairs = sorted((sid, t_vocab[s]) for s, sid in s_vocab.items() if s in t_vocab)
    return [p[0] for p in pairs], [p[1] for p in pairs]


def prepare(args, path):
    """Child process: the teacher's head rows over the shared vocabulary and its span inputs."""
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    teacher = eager(load_teacher())
    examples = make_examples(args.examples, args.max_length)
    s_ids, t_ids = shared_vocab(*tokenizers_pair())
    head = teacher.get_output_embeddings().weight[t_ids].detach().clone()
    states = [teacher_side(teacher, *b["t"][:2]) for b in batches(examples, args.batch_size)]
    torch.save({"examples": examples, "states": states, "teacher_head": head,
                "student_ids": s_ids}, path)
    log(f"cache: teacher state 30 and weights for {len(states)} batches in "
        f"{time.perf_counter() - start:.1f} s")


def eager(model):
    """The model with eager attention (the only one that returns attention probabilities)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:
        model.config._attn_implementation = "eager"
    return model


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", required=True, help="the exported transplanted student")
    parser.add_argument("--teacher", choices=["live", "cache"], required=True)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="/tmp")
    parser.add_argument("--check", action="store_true",
                        help="instead of timing: the untrained student's SRA breakdown with the "
                             "projector at the identity, every --examples record in one batch "
                             "(to compare with `mrl distill --eval-only`)")
    parser.add_argument("--fixture", help="with --check: also write the breakdown to this JSON "
                        "file (crates/training/tests/fixtures/sra_smollm2_reference.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from transformers import LlamaForCausalLM
    start = time.perf_counter()
    student = LlamaForCausalLM.from_pretrained(args.student, dtype=torch.float32,
                                               attn_implementation="eager").train()
    projector = torch.nn.Linear(student.config.hidden_size, student.config.hidden_size)
    teacher = None
    if args.teacher == "cache":
        path = os.path.join(args.cache_dir, f"bench_sra_torch-n{args.examples}-b{args.batch_size}"
                            f"-l{args.max_length}.pt")
        if not os.path.exists(path):
            child = mp.get_context("spawn").Process(target=prepare, args=(args, path))
            child.start()
            child.join()
            if child.exitcode != 0:
                sys.exit(f"preparing the cache failed (exit code {child.exitcode})")
        prepared = torch.load(path)
        examples, cached = prepared["examples"], prepared["states"]
        heads = {"teacher": prepared["teacher_head"], "student": prepared["student_ids"]}
    else:
        teacher = eager(load_teacher())
        examples = make_examples(args.examples, args.max_length)
        s_ids, t_ids = shared_vocab(*tokenizers_pair())
        heads = {"teacher": teacher.get_output_embeddings().weight[t_ids].detach(),
                 "student": s_ids}
        cached = None
    if len(heads["student"]) != 36961:
        sys.exit(f"{len(heads['student'])} shared tokens, expected 36,961")
    if args.check:
        with torch.no_grad():
            projector.weight.copy_(torch.eye(student.config.hidden_size))
            projector.bias.zero_()
            student.eval()
            batch = batches(examples, len(examples))[0]
            out = sra_loss(student, projector, heads, batch,
                           teacher_side(teacher, *batch["t"][:2]), parts=True)
        out = {"records": f"0..{args.examples}", "max_length": args.max_length,
               "projector": "identity", "student": "untrained transplanted (export_student "
               "--vocab gpt2-tokenizer)", **out}
        print(json.dumps({k: v for k, v in out.items() if "ids" not in k}))
        if args.fixture:
            with open(args.fixture, "w") as f:
                json.dump(out, f, indent=1)
                f.write("\n")
        return
    data = batches(examples, args.batch_size)
    log(f"setup ({args.teacher}): {time.perf_counter() - start:.1f} s, {len(data)} batches of "
        f"{args.batch_size}, {sum(e['spans'] for e in examples)} spans, "
        f"peak RSS {peak_rss_mb():.0f} MB")
    optim = torch.optim.AdamW([
        {"params": student.parameters(), "lr": 5e-5, "weight_decay": 0.01},
        {"params": projector.parameters(), "lr": 5e-4, "weight_decay": 0.0},
    ])
    step = 0

    def train_step():
        nonlocal step
        i = step % len(data)
        batch = data[i]
        states = cached[i] if cached is not None else teacher_side(teacher, *batch["t"][:2])
        loss = sra_loss(student, projector, heads, batch, states)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        step += 1
        return loss.item(), int(batch["s"][1].sum())

    for _ in range(args.warmup):
        train_step()
    for r in range(args.rounds):
        losses, tokens = [], 0
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss, real = train_step()
            losses.append(loss)
            tokens += real
        secs = time.perf_counter() - t0
        print(json.dumps({
            "impl": "torch", "objective": "sra", "teacher": args.teacher, "round": r,
            "steps": args.steps, "batch_size": args.batch_size, "threads": args.threads,
            "seconds": round(secs, 4), "steps_per_s": round(args.steps / secs, 4),
            "tokens_per_s": round(tokens / secs, 2), "real_tokens": tokens,
            "loss_first": round(losses[0], 5), "loss_last": round(losses[-1], 5),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }), flush=True)


if __name__ == "__main__":
    main()
