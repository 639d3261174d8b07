#!/usr/bin/env python3
"""MTA on real SmolLM2 hidden states, computed in PyTorch float64 from the formulas (with the
loop implementation of crates/distill-objectives/scripts/make_mta_reference.py), for the
`distill_smollm2::smollm2_mta_matches_pytorch` test.

Teacher: SmolLM2-135M-Instruct (the GGUF in $MRL_SHARED/models, dequantised to f32 by
transformers); student: its first 10 layers + final norm (untrained), hidden states in the
Hugging Face convention. Records: the first RECORDS Dolly records, rendered
"### Instruction:\\n{instruction}\\n\\n### Response:\\n" + response + eos, no BOS, truncated to 128
tokens, padded to one batch. Units (written into the records, so the Rust side uses them as
given): words = maximal runs of letters/digits (regex [^\\W_]+), phrases = the response split at
, . ; : ! ? and newlines, trimmed. Membership: a response token (not the eos) whose character
offsets satisfy start + 1 >= s + |prompt| and end <= e + |prompt|. Schedule: (15, 5) words,
(24, 8) and (30, 10) phrases; identity projectors (widths are both 576); DSA + HRA / 10.

Writes crates/training/tests/fixtures/mta_smollm2_records.jsonl and mta_smollm2_reference.json:

    MRL_SHARED=../shared python3 scripts/make_mta_smollm2_reference.py

(needs torch, transformers and gguf; about a minute.)
"""

import json
import os
import re
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "crates", "distill-objectives", "scripts"))
from make_mta_reference import pair_sums, token_weights  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "crates", "training", "tests", "fixtures")
SHARED = os.environ.get("MRL_SHARED", os.path.join(HERE, "..", "..", "shared"))
MODEL = os.path.join(SHARED, "models", "SmolLM2-135M-Instruct-Q4_1")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "### Instruction:\n{instruction}\n\n### Response:\n"
RECORDS = 4
MAX_LENGTH = 128
PAIRS = [(15, 5, "words"), (24, 8, "phrases"), (30, 10, "phrases")]


def units_of(response):
    words = [[m.start(), m.end()] for m in re.finditer(r"[^\W_]+", response)]
    phrases = []
    for m in re.finditer(r"[^,.;:!?\n]+", response):
        text = m.group(0)
        start = m.start() + (len(text) - len(text.lstrip()))
        end = m.end() - (len(text) - len(text.rstrip()))
        if end > start:
            phrases.append([start, end])
    return {"words": words, "phrases": phrases}


def main():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_grad_enabled(False)
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, gguf_file=GGUF, dtype=torch.float32).eval()
    records = []
    with open(os.path.join(SHARED, "data", "dolly_2k.jsonl"), encoding="utf-8") as f:
        for line in f:
            if len(records) == RECORDS:
                break
            rec = json.loads(line)
            records.append({"instruction": rec["instruction"], "response": rec["response"],
                            "units": units_of(rec["response"])})
    examples = []
    for rec in records:
        prompt = PROMPT.format(instruction=rec["instruction"])
        text = prompt + rec["response"]
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"] + [tok.eos_token_id]
        offsets = [tuple(o) for o in enc["offset_mapping"]] + [(len(text), len(text))]
        response = [s >= len(prompt) for s, _ in offsets]
        has_eos = len(ids) <= MAX_LENGTH
        ids, offsets, response = ids[:MAX_LENGTH], offsets[:MAX_LENGTH], response[:MAX_LENGTH]
        eligible = [r and not (has_eos and j == len(ids) - 1) for j, r in enumerate(response)]
        members = {}
        for g in ("words", "phrases"):
            members[g] = []
            for s, e in rec["units"][g]:
                m = [j for j, ((sj, ej), ok) in enumerate(zip(offsets, eligible))
                     if ok and sj + 1 >= s + len(prompt) and ej <= e + len(prompt)]
                if m:
                    members[g].append(m)
        examples.append({"ids": ids, "members": members})
    B = len(examples)
    L = max(len(e["ids"]) for e in examples)
    input_ids = torch.zeros(B, L, dtype=torch.long)
    mask = torch.zeros(B, L, dtype=torch.long)
    for b, e in enumerate(examples):
        input_ids[b, : len(e["ids"])] = torch.tensor(e["ids"])
        mask[b, : len(e["ids"])] = 1
    out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    hidden = [h.double() for h in out.hidden_states]
    teacher = {15: hidden[15], 24: hidden[24], 30: hidden[30]}
    # The student is the first 10 layers + the final norm: its states 0..9 are the teacher's,
    # state 10 is the norm of the teacher's layer-10 output.
    student = {5: hidden[5], 8: hidden[8],
               10: model.model.norm(out.hidden_states[10]).double()}
    eye = (torch.eye(576, dtype=torch.float64), torch.zeros(576, dtype=torch.float64))
    lengths = [len(e["ids"]) for e in examples]
    pairs_out, per_example = [], [[] for _ in range(B)]
    for t, s, g in PAIRS:
        sums = []
        for b in range(B):
            n = lengths[b]
            w_t = token_weights(teacher[t][b], n)
            w_s = token_weights(student[s][b], n)
            sums.append(pair_sums(teacher[t][b], student[s][b], w_t, w_s,
                                  examples[b]["members"][g], *eye))
        dsa = float(sum(x[0] for x in sums)) / max(float(sum(x[1] for x in sums)), 1e-5)
        hra = float(sum(x[2] for x in sums)) / max(float(sum(x[3] for x in sums)), 1e-5)
        pairs_out.append({"teacher_layer": t, "student_layer": s, "granularity": g,
                          "units": sum(x[4] for x in sums), "dsa": dsa, "hra": hra,
                          "loss": dsa + 0.1 * hra})
        for b, x in enumerate(sums):
            d = float(x[0]) / max(float(x[1]), 1e-5)
            h = float(x[2]) / max(float(x[3]), 1e-5)
            per_example[b].append({"dsa": d, "hra": h, "loss": d + 0.1 * h, "units": x[4]})
    result = {
        "generator": "scripts/make_mta_smollm2_reference.py",
        "records": RECORDS,
        "max_length": MAX_LENGTH,
        "lengths": lengths,
        "input_ids": [e["ids"] for e in examples],
        "mta": sum(p["loss"] for p in pairs_out) / len(pairs_out),
        "pairs": pairs_out,
        "examples": [{"mta": sum(p["loss"] for p in ex) / len(ex), "pairs": ex}
                     for ex in per_example],
    }
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, "mta_smollm2_records.jsonl"), "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with open(os.path.join(FIXTURES, "mta_smollm2_reference.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"mta {result['mta']:.6f}")
    for p in pairs_out:
        print(f"  teacher {p['teacher_layer']} student {p['student_layer']} {p['granularity']}: "
              f"units {p['units']} dsa {p['dsa']:.6f} hra {p['hra']:.6f}")


if __name__ == "__main__":
    main()
