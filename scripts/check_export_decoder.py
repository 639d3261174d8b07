#!/usr/bin/env python3
"""Check that a decoder exported by `models::llama::export_decoder` loads in transformers and
gives the logits Burn computed.

Usage:
  cargo run --release -p models --example export_student -- \
      ../shared/models/SmolLM2-135M-Instruct-Q4_1 10 /tmp/smollm2-10l
  HF_HUB_OFFLINE=1 python3 scripts/check_export_decoder.py \
      /tmp/smollm2-10l /tmp/smollm2-10l-logits.json [--tolerance 1e-3]

Loads DIR with `AutoModelForCausalLM` (float32, eager attention) and `AutoTokenizer`,
tokenises the prompt of LOGITS.json without special tokens and checks it gives the same ids as
Rust did, runs the model on those ids and compares the logits with the ones the example wrote:
prints the max abs difference (and the logit scale, top-1 agreement), and exits non-zero when
the ids differ or the max abs difference is above the tolerance.
"""
import argparse
import json
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("logits_json")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest allowed max |logit difference| (default 1e-3)")
    args = parser.parse_args()

    ours = json.load(open(args.logits_json, encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    config = model.config
    print(f"{type(model).__name__}: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
          f"vocab {config.vocab_size}, tie_word_embeddings {config.tie_word_embeddings}, "
          f"bos {config.bos_token_id}, eos {config.eos_token_id}, "
          f"rope_theta {getattr(config, 'rope_theta', None) or config.rope_parameters['rope_theta']}")
    print(f"{type(tokenizer).__name__}: {len(tokenizer)} tokens, bos {tokenizer.bos_token!r}, "
          f"eos {tokenizer.eos_token!r}")

    ids = tokenizer(ours["prompt"], add_special_tokens=False)["input_ids"]
    if ids != ours["input_ids"]:
        sys.exit(f"MISMATCH: transformers tokenises the prompt as {ids}, Rust as {ours['input_ids']}")

    with torch.no_grad():
        theirs = model(input_ids=torch.tensor([ids])).logits[0].double().numpy()
    mine = np.asarray(ours["logits"], dtype=np.float64)
    if mine.shape != theirs.shape:
        sys.exit(f"MISMATCH: logits of shape {mine.shape} (Rust) vs {theirs.shape} (transformers)")
    diff = np.abs(mine - theirs)
    top1 = float((mine.argmax(-1) == theirs.argmax(-1)).mean())
    print(f"{len(ids)} positions x {theirs.shape[1]} logits: max abs diff {diff.max():.3e} "
          f"(mean {diff.mean():.3e}; logits span {theirs.min():.2f} .. {theirs.max():.2f}); "
          f"top-1 agreement {top1:.0%}")
    if not diff.max() <= args.tolerance:
        sys.exit(f"MISMATCH: max abs diff {diff.max():.3e} above the tolerance {args.tolerance}")
    print("OK: transformers loads the export (model and tokenizer) and agrees with Burn")


if __name__ == "__main__":
    main()
