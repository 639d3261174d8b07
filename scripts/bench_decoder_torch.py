#!/usr/bin/env python3
"""transformers side of the decoder benchmarks (docs/benchmarks.md), to run in the
same session as, and alternating with, the Burn examples `decoder_parity` and
`decoder_generate`:

    MRL_SHARED=../shared /tmp/ref-venv/bin/python scripts/bench_decoder_torch.py [threads]

1. forward + response CE of the teacher over the 64 Dolly examples in batches of 8, right
   padded (the same work as `decoder_parity`), tokens/s counting real tokens;
2. greedy chat generation of 64 new tokens with the KV cache (no stop token), decode tokens/s.
"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
shared = os.environ.get("MRL_SHARED", "../shared")
model_dir = os.path.join(shared, "models/SmolLM2-135M-Instruct-Q4_1")
ref = json.load(open(os.path.join(shared, "fixtures/smollm2_dolly64_kd_reference.json")))
model = AutoModelForCausalLM.from_pretrained(
    model_dir, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype=torch.float32
).eval()
tok = AutoTokenizer.from_pretrained(model_dir)

with torch.no_grad():
    start = time.perf_counter()
    total, n, tokens = 0.0, 0, 0
    examples = ref["examples"]
    for i in range(0, len(examples), 8):
        chunk = examples[i:i + 8]
        seq = max(len(e["input_ids"]) for e in chunk)
        ids = torch.full((len(chunk), seq), 2)
        mask = torch.zeros((len(chunk), seq), dtype=torch.long)
        resp = torch.zeros((len(chunk), seq), dtype=torch.bool)
        for b, e in enumerate(chunk):
            ids[b, :len(e["input_ids"])] = torch.tensor(e["input_ids"])
            mask[b, :len(e["input_ids"])] = 1
            resp[b, :len(e["input_ids"])] = torch.tensor(e["response_mask"], dtype=torch.bool)
            tokens += len(e["input_ids"])
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        logp = torch.log_softmax(logits, -1).gather(2, ids[:, 1:, None])[..., 0]
        total -= float(logp[resp[:, 1:]].double().sum())
        n += int(resp[:, 1:].sum())
    secs = time.perf_counter() - start
    print(f"torch teacher: CE {total / n:.5f} over {n} positions; forward + CE {secs:.2f} s, "
          f"{tokens / secs:.0f} tokens/s (batch 8, {threads} threads)")

    text = tok.apply_chat_template(
        [{"role": "user", "content": "Write a short paragraph about the history of Paris."}],
        tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    out = model(input_ids=ids, use_cache=True)  # warm-up of the same shapes
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False)
    secs = time.perf_counter() - start
    print(f"torch generate: prompt {ids.shape[1]} tokens, prefill + first token {prefill:.3f} s; "
          f"63 more tokens in {secs - prefill:.2f} s = {63 / (secs - prefill):.1f} tokens/s (KV cache)")
