"""Reference embeddings of all-MiniLM-L6-v2 for crates/models/tests/minilm_fixture.rs.

Writes crates/models/tests/fixtures/minilm_embeddings.json with, for a handful of sentences:
- token ids from the model's tokenizer (longest-in-batch padding, truncation at max_seq_length),
- sentence-transformers' embeddings (mean pooling + Normalize, 384 dims),
- for the first sentence, the first 16 coordinates of every token at every hidden state
  (index 0 = embedding output, HF convention) and the layer-0 / head-0 attention probabilities.

Set-up (once): python3 -m venv /tmp/ref-venv && /tmp/ref-venv/bin/pip install torch sentence-transformers scipy
Run from the workspace root:
    HF_HUB_OFFLINE=1 MRL_SHARED=../shared /tmp/ref-venv/bin/python scripts/make_minilm_embeddings_fixture.py
"""
import json
import os
import pathlib

import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("MRL_SHARED", ROOT.parent / "shared"))
if not SHARED.is_absolute():
    SHARED = (ROOT / SHARED).resolve()
MODEL_DIR = SHARED / "models" / "all-MiniLM-L6-v2"
OUT = ROOT / "crates" / "models" / "tests" / "fixtures" / "minilm_embeddings.json"

SENTENCES = [
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "The quick brown fox jumps over the lazy dog.",
    "Matryoshka embeddings keep their meaning when truncated!",
    "naïve café — résumé, 東京 and emoji 🙂 test",
    "Hi",
    "Three men are playing chess in the park while a crowd of curious onlookers watches "
    "every move, whispering predictions about who will win the long and difficult game.",
    "It's 3.14159 o'clock; don't panic.",
]

torch.manual_seed(0)
torch.set_num_threads(2)
model = SentenceTransformer(str(MODEL_DIR), device="cpu")
model.eval()

with torch.no_grad():
    embeddings = model.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)

    tok = model.tokenizer
    features = tok(
        SENTENCES,
        padding="longest",
        truncation=True,
        max_length=model.max_seq_length,
        return_tensors="pt",
    )
    token_ids = [
        ids[mask.bool()].tolist()
        for ids, mask in zip(features["input_ids"], features["attention_mask"])
    ]

    # Eager attention: the default SDPA kernel cannot return attention probabilities.
    bert = transformers.AutoModel.from_pretrained(str(MODEL_DIR), attn_implementation="eager")
    bert.eval()
    first = tok([SENTENCES[0]], return_tensors="pt")
    out = bert(**first, output_hidden_states=True, output_attentions=True)
    hidden_prefix = [h[0, :, :16].tolist() for h in out.hidden_states]
    attention_l0_h0 = out.attentions[0][0, 0].tolist()

fixture = {
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "generated_by": "scripts/make_minilm_embeddings_fixture.py",
    "versions": {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    },
    "max_seq_length": model.max_seq_length,
    "pooling": "mean",
    "normalized": True,
    "sentences": SENTENCES,
    "token_ids": token_ids,
    "embeddings": [[float(v) for v in row] for row in embeddings],
    "first_sentence_hidden_states_prefix16": hidden_prefix,
    "first_sentence_attention_layer0_head0": attention_l0_h0,
}
OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps(fixture) + "\n")
print(f"wrote {OUT} ({OUT.stat().st_size} bytes); max_seq_length={model.max_seq_length}")
