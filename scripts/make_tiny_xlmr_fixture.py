#!/usr/bin/env python3
"""A tiny random XLM-RoBERTa checkpoint (BGE-M3's architecture) and its transformers outputs,
for crates/models/tests/integration/xlm_roberta.rs.

Writes crates/models/tests/fixtures/tiny-xlm-roberta/:
- config.json + model.safetensors: `XLMRobertaModel.save_pretrained` (f32, bare keys, with the
  pooler, which our loader must skip); hidden 32, 2 layers, 4 heads, 48-token vocabulary,
  `pad_token_id` 1, one token type, 40 positions (38 usable: positions start at pad + 1);
- tokenizer.json: an XLM-R-style Unigram tokenizer (Metaspace `▁`, `<s> … </s>`, `<pad>` = 1)
  built with the `tokenizers` package;
- 1_Pooling/config.json: CLS pooling, as BGE-M3;
- expected.json: for a batch of the tokenized `texts` (right-padded) plus one hand-made
  left-padded row, the input ids, attention mask, transformers' position ids
  (`create_position_ids_from_input_ids`) and every hidden state (embeddings + each layer), at
  every position, padding included, from `XLMRobertaModel(..., output_hidden_states=True)` in
  eval mode with eager attention, f32.

All parameters are drawn from N(0, 0.5²) (LayerNorm scales 1 + N(0, 0.2²)), not transformers'
N(0, 0.02²) init, and the padding rows of the word and position tables are not zero, so that a
wrong position id or a wrongly skipped tensor shows in every output.

    pip install torch transformers tokenizers
    python3 scripts/make_tiny_xlmr_fixture.py
"""
import json
import os

import torch
import transformers
import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders
from transformers import XLMRobertaConfig, XLMRobertaModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "models", "tests",
                   "fixtures", "tiny-xlm-roberta")
PAD = 1
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
PIECES = ["▁the", "▁cat", "▁sat", "▁on", "▁mat", "▁a", "▁dog", "▁run", "s", "▁fast", "▁big",
          "▁red", "▁bird", "▁fl", "ies", ".", ",", "▁is", "▁small", "▁and", "▁blue", "▁",
          "t", "h", "e", "c", "a", "o", "n", "m", "d", "g", "r", "u", "f", "i", "l", "b",
          "y", "w", "k", "p", "▁\u00e9t\u00e9", "\u00e9"]
TEXTS = ["the cat sat on the mat.", "a dog runs fast", "the big red bird flies, and is small.",
         "blue"]


def build_tokenizer():
    vocab = [(t, 0.0) for t in SPECIALS]
    # Whole pieces score higher than single characters, so the Viterbi segmentation keeps them.
    vocab += [(p, -1.0 - 0.01 * i if len(p) > 1 else -8.0) for i, p in enumerate(PIECES)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens(SPECIALS)
    return tok, len(vocab)


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.5 * noise)


def main():
    os.makedirs(os.path.join(OUT, "1_Pooling"), exist_ok=True)
    tok, vocab_size = build_tokenizer()
    tok.save(os.path.join(OUT, "tokenizer.json"))

    config = XLMRobertaConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=40, type_vocab_size=1,
        pad_token_id=PAD, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
        hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        attn_implementation="eager")
    torch.manual_seed(0)
    model = XLMRobertaModel(config, add_pooling_layer=True)
    randomise(model, 1234)
    model.eval()
    model.save_pretrained(OUT)  # config.json + model.safetensors (f32)

    encodings = [e.ids for e in tok.encode_batch(TEXTS)]
    seq = max(len(ids) for ids in encodings)
    rows = [ids + [PAD] * (seq - len(ids)) for ids in encodings]
    # A left-padded row: positions of real tokens must still start at pad + 1.
    left = encodings[1]
    rows.append([PAD] * (seq - len(left)) + left)
    input_ids = torch.tensor(rows)
    attention_mask = (input_ids != PAD).long()

    from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaEmbeddings
    position_ids = XLMRobertaEmbeddings.create_position_ids_from_input_ids(input_ids, PAD)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    expected = {
        "generator": f"scripts/make_tiny_xlmr_fixture.py, torch {torch.__version__}, "
                     f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}",
        "texts": TEXTS,
        "token_ids": encodings,
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "position_ids": position_ids.tolist(),
        "hidden_states": [[[[round(v, 7) for v in tok_row] for tok_row in row] for row in h.tolist()]
                          for h in out.hidden_states],
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f)
    with open(os.path.join(OUT, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": 32, "pooling_mode_cls_token": True,
                   "pooling_mode_mean_tokens": False}, f, indent=2)
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT} ({total} bytes); position ids: {position_ids.tolist()}")


if __name__ == "__main__":
    main()
