#!/usr/bin/env python3
"""Reference values for the vocabulary transplant SmolLM2-135M-Instruct -> GPT-2
(`models::vocab_transplant`, test `vocab_transplant_smollm2` in
`crates/models/tests/integration/vocab_transplant.rs`).

Implemented independently of the Rust code, from the two `tokenizer.json` files and the
GGUF's token embedding (read and dequantised with the `gguf` package, `pip install gguf`):

- a GPT-2 token whose string (byte-level form, `model.vocab` + `added_tokens`) is a SmolLM2
  token string copies that SmolLM2 row;
- GPT-2's `<|endoftext|>` (its eos, 50256) copies SmolLM2's eos row (id 2), whatever the
  string rule says;
- every other token is split greedily left to right, longest SmolLM2 prefix first; a symbol
  that starts no SmolLM2 token is one piece whose row is the mean of all SmolLM2 rows; the row
  is the plain mean of the pieces' rows (float64, stored as float32).

Writes `crates/models/tests/fixtures/transplant_smollm2_gpt2.json`: the counts per rule, the
absent byte symbols, the rule of a sample of rows, the full values of a few rows, and the
column sums of the whole matrix (plain and weighted by `(id + 1) / V`), each over float32 rows
accumulated in float64.

Usage: MRL_SHARED=/path/to/shared python3 crates/models/scripts/make_transplant_reference.py
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

SHARED = Path(os.environ.get("MRL_SHARED", "../shared"))
SMOL = SHARED / "models/SmolLM2-135M-Instruct-Q4_1"
GPT2 = SHARED / "models/gpt2-tokenizer/tokenizer.json"
OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/transplant_smollm2_gpt2.json"
SOURCE_EOS = 2


def vocabulary(path):
    """token string -> id: the BPE vocabulary plus the added tokens."""
    tok = json.loads(Path(path).read_text(encoding="utf-8"))
    vocab = dict(tok["model"]["vocab"])
    for added in tok["added_tokens"]:
        vocab[added["content"]] = added["id"]
    return vocab


def byte_symbols():
    """The 256 byte-level symbols of GPT-2's byte-to-unicode table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return symbols


def split(token, source, longest):
    pieces, i = [], 0
    while i < len(token):
        for length in range(min(longest, len(token) - i), 0, -1):
            piece = token[i : i + length]
            if piece in source:
                pieces.append(("token", source[piece]))
                i += length
                break
        else:
            pieces.append(("absent", token[i]))
            i += 1
    return pieces


def main():
    source = vocabulary(SMOL / "tokenizer.json")
    target = vocabulary(GPT2)
    target_eos = target["<|endoftext|>"]
    assert sorted(target.values()) == list(range(len(target)))

    gguf_path = next(SMOL.glob("*.gguf"))
    reader = GGUFReader(gguf_path)
    (tensor,) = [t for t in reader.tensors if t.name == "token_embd.weight"]
    embedding = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
    rows, hidden = embedding.shape
    assert rows == len(source) == 49152 and hidden == 576, embedding.shape
    mean_row = embedding.astype(np.float64).mean(axis=0)

    longest = max(len(s) for s in source)
    by_id = sorted(target.items(), key=lambda kv: kv[1])
    rules = []
    out = np.zeros((len(target), hidden), dtype=np.float32)
    exact_string_matches = 0
    for token, tid in by_id:
        exact = source.get(token)
        exact_string_matches += exact is not None
        if tid == target_eos:
            rules.append({"rule": "special", "source": SOURCE_EOS})
            out[tid] = embedding[SOURCE_EOS]
        elif exact is not None:
            rules.append({"rule": "exact", "source": exact})
            out[tid] = embedding[exact]
        else:
            pieces = split(token, source, longest)
            acc = np.zeros(hidden, dtype=np.float64)
            for kind, value in pieces:
                acc += mean_row if kind == "absent" else embedding[value].astype(np.float64)
            out[tid] = (acc / len(pieces)).astype(np.float32)
            rules.append(
                {
                    "rule": "split",
                    "pieces": [
                        {"token": v} if kind == "token" else {"absent": v} for kind, v in pieces
                    ],
                }
            )

    splits = [r for r in rules if r["rule"] == "split"]
    counts = {
        "exact_string_matches": exact_string_matches,
        "special": sum(r["rule"] == "special" for r in rules),
        "exact": sum(r["rule"] == "exact" for r in rules),
        "split": len(splits),
        "with_absent_symbol": sum(any("absent" in p for p in r["pieces"]) for r in splits),
    }
    absent = [s for s in byte_symbols().values() if s not in source]

    def first(pred):
        return next(tid for (_, tid), r in zip(by_id, rules) if pred(r))

    def pieces_of(r):
        return [p.get("token") for p in r.get("pieces", [])]

    # A few rows in full: the eos, two exact copies, a split with a repeated piece, a split of
    # three pieces or more, a split with an absent symbol.
    full_rows = sorted(
        {
            target_eos,
            target["Hello"],
            target["Ġworld"],
            first(lambda r: r["rule"] == "split" and len(set(map(str, r["pieces"]))) < len(r["pieces"])),
            first(lambda r: r["rule"] == "split" and len(r["pieces"]) >= 3 and None not in pieces_of(r)),
            first(lambda r: r["rule"] == "split" and None in pieces_of(r)),
        }
    )
    sample = sorted(set(range(0, len(target), 499)) | set(full_rows))
    weights = (np.arange(len(target), dtype=np.float64) + 1.0) / len(target)
    fixture = {
        "generated_by": "crates/models/scripts/make_transplant_reference.py",
        "source": "SmolLM2-135M-Instruct-Q4_1 (tokenizer.json, token_embd.weight of the GGUF)",
        "target": "gpt2-tokenizer/tokenizer.json",
        "special": [[target_eos, SOURCE_EOS]],
        "source_rows": rows,
        "target_rows": len(target),
        "hidden": hidden,
        "counts": counts,
        "absent_byte_symbols": absent,
        "sample_rules": {str(tid): rules[tid] for tid in sample},
        "full_rows": {str(tid): [float(v) for v in out[tid]] for tid in full_rows},
        "column_sums": [float(v) for v in out.astype(np.float64).sum(axis=0)],
        "weighted_column_sums": [
            float(v) for v in (out.astype(np.float64) * weights[:, None]).sum(axis=0)
        ],
    }
    OUT.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {counts}, {len(absent)} absent byte symbols, full rows {full_rows}")


if __name__ == "__main__":
    sys.exit(main())
