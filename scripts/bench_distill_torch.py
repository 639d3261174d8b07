#!/usr/bin/env python3
"""PyTorch side of the distillation benchmark: SmolLM2-135M-Instruct (teacher, 30 layers) into
its first 10 layers (student), to run in the same session as, alternating with, the Rust loop.

    MRL_SHARED=../shared python3 scripts/bench_distill_torch.py --teacher live  [--rounds 3]
    MRL_SHARED=../shared python3 scripts/bench_distill_torch.py --teacher cache [--rounds 3]

(needs torch, transformers and `pip install gguf`: transformers dequantises the Q4_1 GGUF to f32.)

Setup, as `$MRL_SHARED/fixtures/smollm2_dolly64_kd_reference.json` describes it:
- data: the first N records of `$MRL_SHARED/data/dolly_2k.jsonl`, rendered
  "### Instruction:\\n{instruction}\\n\\n### Response:\\n" + response + eos, no BOS,
  add_special_tokens=False, truncated to 128 tokens; the prompt tokens are masked out of the
  loss (a position t counts when token t+1 is a response token). With N <= 64 the ids and masks
  are checked against the fixture's;
- teacher: all 30 layers, f32, eval mode; student: a `LlamaForCausalLM` of 10 layers holding the
  teacher's embedding, first 10 layers and final norm, head tied to the embedding;
- batches of 4 examples in file order (cycling), right-padded to the longest in the batch;
- loss = 0.5 CE + 0.5 FKL(tau = 1) averaged over the counted positions, with
  FKL = sum_v p_T(v) (log p_T(v) - log p_S(v)); AdamW lr 5e-5 (torch defaults otherwise:
  betas (0.9, 0.999), eps 1e-8, weight decay 0.01); torch.set_num_threads(2).

`--teacher live` runs the teacher forward (no grad) in every step. `--teacher cache` precomputes,
once, the teacher's top-64 log-probs per counted position and the tail log-mass
log(1 - sum of the top-64 probabilities); the step then uses
FKL ~= sum_{v in top-64} p_T(v) (log p_T(v) - log p_S(v)) + p_tail (log p_tail - log q_tail),
q_tail = 1 - sum_{v in top-64} p_S(v) (the student's mass outside the teacher's top 64).
The cache and the student's initial weights are prepared in a child process, so the training
process never holds the teacher: its peak RSS is the student's.

Output: one JSON line per round (flushed), e.g.
{"impl": "torch", "teacher": "live", "round": 0, "steps": 4, "seconds": .., "steps_per_s": ..,
 "tokens_per_s": .., "real_tokens": .., "loss_first": .., "loss_last": .., "peak_rss_mb": ..}
tokens_per_s counts real (unpadded) tokens; peak_rss_mb is this process's peak so far
(`getrusage`), teacher included in live mode. Round 0 follows `--warmup` untimed steps. Setup
times (loading, caching) go to stderr. `--check-reference` first checks the losses themselves:
the untrained student's CE and exact FKL over the fixture's 64 examples must match the fixture
(0.1 %), and it prints how far the top-64 + tail FKL of the cache mode lands from the exact one.
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

PROMPT = "### Instruction:\n{instruction}\n\n### Response:\n"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def shared():
    return os.environ.get("MRL_SHARED", "../shared")


def model_dir():
    return os.path.join(shared(), "models/SmolLM2-135M-Instruct-Q4_1")


def load_teacher():
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(model_dir(), gguf_file=GGUF,
                                                dtype=torch.float32).eval()


def make_examples(n, max_length):
    """(input_ids, response_mask) of the first n Dolly records."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir())
    examples = []
    with open(os.path.join(shared(), "data/dolly_2k.jsonl"), encoding="utf-8") as f:
        for line in f:
            if len(examples) == n:
                break
            rec = json.loads(line)
            prompt = PROMPT.format(instruction=rec["instruction"])
            ids = tok(prompt + rec["response"] + tok.eos_token, add_special_tokens=False)["input_ids"]
            n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
            assert ids[:n_prompt] == tok(prompt, add_special_tokens=False)["input_ids"]
            ids = ids[:max_length]
            mask = [0] * min(n_prompt, len(ids)) + [1] * max(0, len(ids) - n_prompt)
            examples.append((ids, mask))
    if len(examples) < n:
        sys.exit(f"dolly_2k.jsonl has only {len(examples)} records, {n} requested")
    ref_path = os.path.join(shared(), "fixtures/smollm2_dolly64_kd_reference.json")
    if max_length == 128 and os.path.exists(ref_path):
        ref = json.load(open(ref_path))["examples"]
        for i, (ids, mask) in enumerate(examples[:len(ref)]):
            if ids != ref[i]["input_ids"] or mask != ref[i]["response_mask"]:
                sys.exit(f"example {i}: ids or response mask differ from {ref_path}")
        log(f"the first {min(n, len(ref))} examples match the fixture's ids and masks")
    return examples


def batches(examples, batch_size, pad_id):
    """Right-padded batches in file order: (ids, attention_mask, counted) with counted[b, t] =
    whether position t predicts a response token (shape [B, S-1])."""
    out = []
    for i in range(0, len(examples) - batch_size + 1, batch_size):
        chunk = examples[i:i + batch_size]
        seq = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), seq), pad_id, dtype=torch.long)
        attn = torch.zeros((len(chunk), seq), dtype=torch.long)
        resp = torch.zeros((len(chunk), seq), dtype=torch.bool)
        for b, (e_ids, e_mask) in enumerate(chunk):
            ids[b, :len(e_ids)] = torch.tensor(e_ids)
            attn[b, :len(e_ids)] = 1
            resp[b, :len(e_ids)] = torch.tensor(e_mask, dtype=torch.bool)
        out.append((ids, attn, resp[:, 1:]))
    if not out:
        sys.exit(f"fewer examples ({len(examples)}) than one batch ({batch_size})")
    return out


def student_from(teacher, layers):
    from transformers import LlamaForCausalLM
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = layers
    config.tie_word_embeddings = True
    student = LlamaForCausalLM(config)
    state = {k: v for k, v in teacher.state_dict().items()
             if not k.startswith("model.layers.") or int(k.split(".")[2]) < layers}
    missing, unexpected = student.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    student.tie_weights()
    assert student.lm_head.weight.data_ptr() == student.model.embed_tokens.weight.data_ptr()
    return student.float().train()


def prepare(args, path):
    """Child process: the student's initial weights and the teacher's top-k cache."""
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    teacher = load_teacher()
    examples = make_examples(args.examples, args.max_length)
    torch.save(student_from(teacher, args.student_layers).state_dict(), path + ".student.pt")
    cache = []
    with torch.no_grad():
        for ids, attn, counted in batches(examples, args.batch_size, teacher.config.eos_token_id):
            logp = torch.log_softmax(teacher(input_ids=ids, attention_mask=attn).logits[:, :-1], -1)
            top_logp, top_idx = logp[counted].topk(args.top_k, dim=-1)
            tail = torch.log1p(-top_logp.exp().sum(-1).clamp(max=1 - 1e-7))
            cache.append((top_idx.to(torch.int32), top_logp, tail))
    torch.save({"examples": examples, "cache": cache}, path + ".cache.pt")
    log(f"cache: teacher top-{args.top_k} over {sum(c[0].shape[0] for c in cache)} positions "
        f"in {time.perf_counter() - start:.1f} s")


def loss_live(student, teacher, ids, attn, counted):
    logits = student(input_ids=ids, attention_mask=attn).logits[:, :-1][counted]
    with torch.no_grad():
        t_logp = torch.log_softmax(
            teacher(input_ids=ids, attention_mask=attn).logits[:, :-1][counted], -1)
    s_logp = torch.log_softmax(logits, -1)
    ce = F.nll_loss(s_logp, ids[:, 1:][counted])
    fkl = (t_logp.exp() * (t_logp - s_logp)).sum(-1).mean()
    return 0.5 * ce + 0.5 * fkl


def loss_cached(student, cached, ids, attn, counted):
    top_idx, top_logp, tail = cached
    logits = student(input_ids=ids, attention_mask=attn).logits[:, :-1][counted]
    s_logp = torch.log_softmax(logits, -1)
    ce = F.nll_loss(s_logp, ids[:, 1:][counted])
    s_top = s_logp.gather(-1, top_idx.long())
    q_tail = torch.log1p(-s_top.exp().sum(-1).clamp(max=1 - 1e-7))
    fkl = ((top_logp.exp() * (top_logp - s_top)).sum(-1)
           + tail.exp() * (tail - q_tail)).mean()
    return 0.5 * ce + 0.5 * fkl


def check_reference(args):
    """The untrained student's CE and exact FKL over the fixture's 64 examples against the
    fixture's numbers (and how far the top-k + tail FKL lands from the exact one)."""
    ref = json.load(open(os.path.join(shared(), "fixtures/smollm2_dolly64_kd_reference.json")))
    teacher = load_teacher()
    student = student_from(teacher, ref["student_layers"]).eval()
    examples = make_examples(ref["n_examples"], ref["max_len"])
    ce = fkl = fkl_topk = 0.0
    n = 0
    with torch.no_grad():
        for ids, attn, counted in batches(examples, 8, teacher.config.eos_token_id):
            s_logp = torch.log_softmax(
                student(input_ids=ids, attention_mask=attn).logits[:, :-1][counted].double(), -1)
            t_logp = torch.log_softmax(
                teacher(input_ids=ids, attention_mask=attn).logits[:, :-1][counted].double(), -1)
            ce -= float(s_logp.gather(-1, ids[:, 1:][counted][:, None]).sum())
            fkl += float((t_logp.exp() * (t_logp - s_logp)).sum())
            top_logp, top_idx = t_logp.topk(args.top_k, dim=-1)
            tail = torch.log1p(-top_logp.exp().sum(-1))
            s_top = s_logp.gather(-1, top_idx)
            q_tail = torch.log1p(-s_top.exp().sum(-1))
            fkl_topk += float(((top_logp.exp() * (top_logp - s_top)).sum(-1)
                               + tail.exp() * (tail - q_tail)).sum())
            n += int(counted.sum())
    ce, fkl, fkl_topk = ce / n, fkl / n, fkl_topk / n
    print(json.dumps({"check": "reference", "positions": n, "ce": ce, "ce_ref": ref["ce_s"],
                      "fkl": fkl, "fkl_ref": ref["fkl"], f"fkl_top{args.top_k}_tail": fkl_topk}))
    if n != ref["n_response_tokens"] or abs(ce - ref["ce_s"]) > 1e-3 * ref["ce_s"] \
            or abs(fkl - ref["fkl"]) > 1e-3 * ref["fkl"]:
        sys.exit("MISMATCH with the fixture")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", choices=["live", "cache"], required=True)
    parser.add_argument("--check-reference", action="store_true",
                        help="first check the untrained student's CE and FKL over the fixture's "
                             "64 examples against the fixture (slow: 64 teacher + student "
                             "forwards; loads the teacher here, so peak_rss_mb includes it)")
    parser.add_argument("--examples", type=int, default=64, help="first N Dolly records")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before round 0")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--student-layers", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="/tmp",
                        help="where --teacher cache keeps the prepared files (reused if present)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.check_reference:
        check_reference(args)

    start = time.perf_counter()
    teacher = None
    if args.teacher == "cache":
        path = os.path.join(args.cache_dir, f"bench_distill_torch-n{args.examples}-b{args.batch_size}"
                            f"-l{args.max_length}-k{args.top_k}-s{args.student_layers}")
        if not (os.path.exists(path + ".cache.pt") and os.path.exists(path + ".student.pt")):
            child = mp.get_context("spawn").Process(target=prepare, args=(args, path))
            child.start()
            child.join()
            if child.exitcode != 0:
                sys.exit(f"preparing the cache failed (exit code {child.exitcode})")
        from transformers import AutoConfig, LlamaForCausalLM
        config = AutoConfig.from_pretrained(model_dir())
        config.num_hidden_layers = args.student_layers
        config.tie_word_embeddings = True
        student = LlamaForCausalLM(config)
        student.load_state_dict(torch.load(path + ".student.pt"))
        student.tie_weights()
        student = student.float().train()
        prepared = torch.load(path + ".cache.pt")
        examples, cache = prepared["examples"], prepared["cache"]
    else:
        teacher = load_teacher()
        examples = make_examples(args.examples, args.max_length)
        student = student_from(teacher, args.student_layers)
        cache = None
    data = batches(examples, args.batch_size, student.config.eos_token_id)
    log(f"setup ({args.teacher}): {time.perf_counter() - start:.1f} s, {len(data)} batches of "
        f"{args.batch_size}, peak RSS {peak_rss_mb():.0f} MB")

    optim = torch.optim.AdamW(student.parameters(), lr=args.lr)
    step = 0

    def train_step():
        nonlocal step
        i = step % len(data)
        ids, attn, counted = data[i]
        if cache is None:
            loss = loss_live(student, teacher, ids, attn, counted)
        else:
            loss = loss_cached(student, cache[i], ids, attn, counted)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        step += 1
        return loss.item(), int(attn.sum())

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
            "impl": "torch", "teacher": args.teacher, "round": r, "steps": args.steps,
            "batch_size": args.batch_size, "threads": args.threads, "seconds": round(secs, 4),
            "steps_per_s": round(args.steps / secs, 4), "tokens_per_s": round(tokens / secs, 2),
            "real_tokens": tokens, "loss_first": round(losses[0], 5),
            "loss_last": round(losses[-1], 5), "peak_rss_mb": round(peak_rss_mb(), 1),
        }), flush=True)


if __name__ == "__main__":
    main()
