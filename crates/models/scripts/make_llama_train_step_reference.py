#!/usr/bin/env python3
"""Reference numbers for one training step of a tiny Llama decoder, for
crates/models/tests/integration/llama_train_step.rs.

For each variant (`tied`, `untied` output head) this writes
`crates/models/tests/fixtures/llama_step/<variant>/`:

- `config.json`, `model.safetensors`: a tiny `LlamaForCausalLM` (hidden 32, 2 layers, 4 query /
  2 key-value heads of width 8, SwiGLU 64, vocabulary 97), seeded, f32, written by
  `save_pretrained` (transformers 5 always writes safetensors, so there is no
  `safe_serialization` switch any more);
- `reference.json`: on a fixed right-padded batch (3 rows, 9 positions),
  * `loss`: next-token cross-entropy, mean over the positions t whose next token t+1 is real
    (`attention_mask[t+1] = 1`); checked here against transformers' own `labels=` loss;
  * `grad_norm`: the L2 norm of the gradient of a few parameters (Hugging Face names);
  * `loss_after_step`: the same loss after one `torch.optim.AdamW` step (lr 1e-2, betas
    (0.9, 0.999), eps 1e-8, weight decay 0.01, every parameter in one group);
  * `updated`: a few slices of the parameters after the step, in PyTorch's layout (Linear
    weights `[out, in]`), as `rows` x `cols` ranges and row-major values.

The weights are f32 in the file; the reference is computed in float64 from exactly those f32
values (eager attention), so it is the exact answer the f32 Rust computation approximates.
`f32_vs_f64` records how far the same computation in float32 lands from it: the noise floor
of f32 arithmetic, which the Rust tolerance has to cover too.

Burn 0.22.1's AdamW (burn-optim/src/optim/adamw.rs) and torch.optim.AdamW compute the same
update: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, both bias-corrected with the step count
t = 1, 2, ...; theta <- theta (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps), the decay decoupled
from the gradient and applied to the pre-update weights. Burn divides v by (1 - b2^t) before
the square root, torch divides sqrt(v) by sqrt(1 - b2^t): the same number. Only the defaults
differ (Burn: eps 1e-5, weight decay 1e-4; torch: eps 1e-8, weight decay 1e-2), so the test
sets all four hyper-parameters explicitly.

    python3 crates/models/scripts/make_llama_train_step_reference.py   (torch, transformers)
"""
import json
import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "llama_step")

CONFIG = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, head_dim=8,
              max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
              bos_token_id=1, eos_token_id=2, pad_token_id=0, attention_bias=False,
              mlp_bias=False, hidden_act="silu")
SEEDS = {"tied": 1234, "untied": 4321}
# Right padding (pad id 0); the rows have 9, 6 and 4 real tokens.
IDS = [[1, 45, 12, 88, 7, 33, 60, 19, 2],
       [1, 71, 3, 96, 54, 2, 0, 0, 0],
       [1, 8, 27, 2, 0, 0, 0, 0, 0]]
MASK = [[1] * 9,
        [1] * 6 + [0] * 3,
        [1] * 4 + [0] * 5]
LR, BETAS, EPS, WEIGHT_DECAY = 1e-2, (0.9, 0.999), 1e-8, 0.01
GRAD_NORMS = ["model.embed_tokens.weight",
              "model.layers.0.self_attn.q_proj.weight",
              "model.layers.0.self_attn.k_proj.weight",
              "model.layers.0.input_layernorm.weight",
              "model.layers.1.mlp.down_proj.weight",
              "model.layers.1.mlp.gate_proj.weight",
              "model.norm.weight"]
# (name, rows, cols) in PyTorch layout.
SLICES = [("model.embed_tokens.weight", (45, 47), (0, 8)),
          ("model.layers.0.self_attn.q_proj.weight", (0, 2), (0, 8)),
          ("model.layers.0.self_attn.v_proj.weight", (8, 10), (24, 32)),
          ("model.layers.1.mlp.down_proj.weight", (30, 32), (56, 64)),
          ("model.layers.1.post_attention_layernorm.weight", None, (0, 16)),
          ("model.norm.weight", None, (16, 32))]


def build(variant):
    torch.manual_seed(SEEDS[variant])
    config = LlamaConfig(**CONFIG, tie_word_embeddings=(variant == "tied"))
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                # Not all ones, so that the norm scales matter.
                p.copy_(1.0 + 0.2 * (torch.rand_like(p) - 0.5))
            else:
                # Wider than the 0.02 default, so that attention is not uniform and the
                # logits are not all near zero.
                p.normal_(0.0, 0.1)
    return model


def masked_next_token_ce(logits, ids, mask):
    """Mean of -log softmax(logits[b, t])[ids[b, t+1]] over t with mask[b, t+1] = 1."""
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    valid = mask[:, 1:].to(logp.dtype)
    return -(picked * valid).sum() / valid.sum()


def run(model, dtype):
    model = model.to(dtype)
    ids = torch.tensor(IDS)
    mask = torch.tensor(MASK)
    params = dict(model.named_parameters())
    model.train()  # no dropout in Llama (attention_dropout = 0); grads on
    out = model(input_ids=ids, attention_mask=mask)
    loss = masked_next_token_ce(out.logits, ids, mask)
    labels = ids.clone()
    labels[mask == 0] = -100
    hf_loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    # transformers computes its loss in float32 whatever the model dtype.
    assert abs(loss.item() - hf_loss.item()) <= 1e-5 * abs(loss.item()), (loss.item(), hf_loss.item())
    loss.backward()
    grad_norm = {n: params[n].grad.norm().item() for n in GRAD_NORMS}
    if "lm_head.weight" in params:
        grad_norm["lm_head.weight"] = params["lm_head.weight"].grad.norm().item()
    # The first AdamW step moves each weight by about lr * sign(grad): a gradient whose sign
    # f32 rounding could flip would make the step irreproducible. Exact zeros (embedding rows
    # of tokens absent from the batch, untied head) give a zero step on both sides.
    smallest = min(g[g != 0].min().item() for g in
                   (p.grad.abs() for p in model.parameters() if p.grad is not None))
    optim = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, eps=EPS,
                              weight_decay=WEIGHT_DECAY)
    optim.step()
    with torch.no_grad():
        after = masked_next_token_ce(model(input_ids=ids, attention_mask=mask).logits, ids, mask)
    updated = []
    names = list(SLICES)
    if "lm_head.weight" in params:
        names.append(("lm_head.weight", (45, 47), (8, 16)))
    for name, rows, cols in names:
        p = params[name].detach()
        block = p[cols[0]:cols[1]] if rows is None else p[rows[0]:rows[1], cols[0]:cols[1]]
        updated.append({"name": name, "rows": rows, "cols": list(cols),
                        "values": [float(v) for v in block.flatten()]})
    return {"loss": loss.item(), "grad_norm": grad_norm, "loss_after_step": after.item(),
            "updated": updated, "smallest_nonzero_abs_grad": smallest}


def main():
    for variant in SEEDS:
        model = build(variant)
        out_dir = os.path.join(OUT, variant)
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir)
        for extra in ("generation_config.json",):
            path = os.path.join(out_dir, extra)
            if os.path.exists(path):
                os.remove(path)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        ref64 = run(model, torch.float64)
        model32 = build(variant)
        model32.load_state_dict(state)
        ref32 = run(model32, torch.float32)

        def rel(a, b):
            return abs(a - b) / max(abs(b), 1e-30)

        f32_vs_f64 = {
            "loss": rel(ref32["loss"], ref64["loss"]),
            "loss_after_step": rel(ref32["loss_after_step"], ref64["loss_after_step"]),
            "grad_norm": max(rel(ref32["grad_norm"][k], v) for k, v in ref64["grad_norm"].items()),
            "updated_max_abs": max(abs(a - b) for s32, s64 in zip(ref32["updated"], ref64["updated"])
                                   for a, b in zip(s32["values"], s64["values"])),
        }
        reference = {
            "description": "one AdamW step on a masked next-token CE; float64 from the f32 weights",
            "variant": variant,
            "tie_word_embeddings": variant == "tied",
            "input_ids": IDS,
            "attention_mask": MASK,
            "optimizer": {"lr": LR, "beta_1": BETAS[0], "beta_2": BETAS[1], "epsilon": EPS,
                          "weight_decay": WEIGHT_DECAY},
            **{k: ref64[k] for k in ("loss", "grad_norm", "loss_after_step", "updated",
                                     "smallest_nonzero_abs_grad")},
            "f32_vs_f64": f32_vs_f64,
        }
        with open(os.path.join(out_dir, "reference.json"), "w") as f:
            json.dump(reference, f, indent=1)
            f.write("\n")
        print(variant, json.dumps({k: reference[k] for k in
                                   ("loss", "loss_after_step", "smallest_nonzero_abs_grad", "f32_vs_f64")}))


if __name__ == "__main__":
    main()
