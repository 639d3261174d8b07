#!/usr/bin/env python3
"""Reference values of the cross-tokenizer objectives of `distill-objectives`, computed
independently in NumPy float64 from the formulas (not from the Rust code).

Writes `crates/distill-objectives/tests/fixtures/xtok.json`, which the Rust tests
(`tests/distill_objectives/xtok.rs`) compare against. Run from anywhere:

    python3 crates/distill-objectives/scripts/make_xtok_reference.py

Definitions (DSKD, arXiv 2406.17328, `code/criterions/universal_logit_distillation.py` and
`code/criterions/min_edit_dis_kld.py`; FuseLLM, arXiv 2401.10491; ULD, arXiv 2402.12030):

Vocabulary intersection
    fold(s) replaces the SentencePiece marker U+2581 by the byte-level marker U+0120; the pairs
    (student id, teacher id) with fold(student token) == fold(teacher token), by student id;
    when folding makes two tokens of one side equal, the lowest id is kept.

Response positions
    mask[b, t] = 1 when the logits at t predict a response token. Student positions
    s_1 < ... < s_m, teacher positions t_1 < ... < t_n of each row.

ULD
    pairs (s_k, t_k), k < min(m, n); p = softmax(student row) sorted descending, r likewise for
    the teacher, the shorter one zero-padded; l[b, s_k] = sum |p - r|. mean = sum / sum(student
    mask) (DSKD divides by the student's label count), batch_mean = sum / batch, sum = sum.

MinEdit alignment (dynamic time warping over token edit distances)
    d(j, i) = Levenshtein(strip(student_j), strip(teacher_i)), strip removes both markers.
    Grid G of size (m+1) x (n+1): G[0][0] = 0, the rest of row / column 0 = inf,
    G[j][i] = d(j-1, i-1) + min(G[j-1][i-1], G[j-1][i], G[j][i-1]).
    Back-trace from (m-1, n-1) on A = G[1:, 1:]: while not at (0, 0), record the cell and move
    to the smallest of [diagonal, previous teacher token, previous student token] (first one on a
    tie); finally record (0, 0). Student j is aligned to teacher i iff the path pairs j with i
    alone and fold(student_j) == fold(teacher_i).

MinEdit loss at temperature tau
    aligned s_j <-> t_i: p over the K intersection pairs = softmax(teacher_logits[t_i, theta] / tau)
    (renormalised over the pairs), q = softmax(student_logits[s_j] / tau) over the whole student
    vocabulary, l = sum_k p_k log(p_k / q[sigma_k]).
    unaligned: "target_one_hot" l = -log q[target]; "skip" l = 0. Reductions as ULD.
"""

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "xtok.json")

BYTE_SPACE = "\u0120"
SP_SPACE = "\u2581"


def fold(token):
    return token.replace(SP_SPACE, BYTE_SPACE)


def strip(token):
    return token.replace(SP_SPACE, "").replace(BYTE_SPACE, "")


def intersection(student_vocab, teacher_vocab):
    first_teacher = {}
    for tid, tok in enumerate(teacher_vocab):
        first_teacher.setdefault(fold(tok), tid)
    pairs, used = [], set()
    for sid, tok in enumerate(student_vocab):
        key = fold(tok)
        if key in first_teacher and key not in used:
            used.add(key)
            pairs.append((sid, first_teacher[key]))
    return pairs


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def positions(mask_row):
    return [t for t, v in enumerate(mask_row) if v == 1]


def levenshtein(a, b):
    a, b = list(a), list(b)
    table = np.zeros((len(a) + 1, len(b) + 1), dtype=np.int64)
    table[:, 0] = np.arange(len(a) + 1)
    table[0, :] = np.arange(len(b) + 1)
    for x in range(1, len(a) + 1):
        for y in range(1, len(b) + 1):
            table[x, y] = min(
                table[x - 1, y] + 1,
                table[x, y - 1] + 1,
                table[x - 1, y - 1] + (0 if a[x - 1] == b[y - 1] else 1),
            )
    return int(table[len(a), len(b)])


def min_edit_alignment(student, teacher):
    m, n = len(student), len(teacher)
    if m == 0 or n == 0:
        return {"path": [], "cost": 0, "student_to_teacher": [[] for _ in range(m)],
                "aligned": [-1] * m}
    grid = np.full((m + 1, n + 1), np.inf)
    grid[0, 0] = 0.0
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            d = levenshtein(strip(student[j - 1]), strip(teacher[i - 1]))
            grid[j, i] = d + min(grid[j - 1, i - 1], grid[j - 1, i], grid[j, i - 1])
    acc = grid[1:, 1:]
    j, i = m - 1, n - 1
    path = []
    while j > 0 or i > 0:
        path.append((j, i))
        options = [
            acc[j - 1, i - 1] if (j > 0 and i > 0) else np.inf,  # diagonal
            acc[j, i - 1] if i > 0 else np.inf,                  # previous teacher token
            acc[j - 1, i] if j > 0 else np.inf,                  # previous student token
        ]
        move = int(np.argmin(options))
        if move == 0:
            j, i = j - 1, i - 1
        elif move == 1:
            i = i - 1
        else:
            j = j - 1
    path.append((0, 0))
    path.reverse()
    s2t = [[] for _ in range(m)]
    for (pj, pi) in path:
        s2t[pj].append(pi)
    aligned = []
    for jj, partners in enumerate(s2t):
        if len(partners) == 1 and fold(student[jj]) == fold(teacher[partners[0]]):
            aligned.append(partners[0])
        else:
            aligned.append(-1)
    return {"path": [list(p) for p in path], "cost": int(acc[m - 1, n - 1]),
            "student_to_teacher": s2t, "aligned": aligned}


def reductions(per_token, student_mask):
    total = float(per_token.sum())
    return {"sum": total, "mean": total / float(student_mask.sum()),
            "batch_mean": total / per_token.shape[0]}


def uld_case(name, seed, batch, seq_s, vocab_s, seq_t, vocab_t, student_mask, teacher_mask):
    rng = np.random.default_rng(seed)
    student = rng.normal(0.0, 2.0, size=(batch, seq_s, vocab_s))
    teacher = rng.normal(0.0, 3.0, size=(batch, seq_t, vocab_t))
    student_mask = np.array(student_mask, dtype=np.float64)
    teacher_mask = np.array(teacher_mask, dtype=np.float64)
    per_token = np.zeros((batch, seq_s))
    aligned = 0
    width = max(vocab_s, vocab_t)
    for b in range(batch):
        for sp, tp in zip(positions(student_mask[b]), positions(teacher_mask[b])):
            p = np.zeros(width)
            r = np.zeros(width)
            p[:vocab_s] = np.sort(softmax(student[b, sp]))[::-1]
            r[:vocab_t] = np.sort(softmax(teacher[b, tp]))[::-1]
            per_token[b, sp] = np.abs(p - r).sum()
            aligned += 1
    out = {
        "name": name,
        "student_shape": [batch, seq_s, vocab_s],
        "teacher_shape": [batch, seq_t, vocab_t],
        "student": student.ravel().tolist(),
        "teacher": teacher.ravel().tolist(),
        "student_mask": student_mask.ravel().tolist(),
        "teacher_mask": teacher_mask.ravel().tolist(),
        "aligned_positions": aligned,
        "per_token": per_token.ravel().tolist(),
    }
    out.update(reductions(per_token, student_mask))
    return out


# A hand vocabulary pair: a byte-level student (GPT-2 style, `Ġ`) and a SentencePiece-style
# teacher (`▁`), with tokens on both sides, tokens on one side only and a fold collision.
STUDENT_VOCAB = [
    "<|endoftext|>", "The", "\u0120cat", "\u0120sat", "\u0120on", "\u0120the", "\u0120mat", ".",
    "\u0120ca", "t", "\u0120s", "at", "\u0120m", "\u0120dog", "!", "\u010a", "\u0120a",
    "\u2581a",
]
TEACHER_VOCAB = [
    "<unk>", "<|endoftext|>", "\u2581The", "The", "\u2581cat", "\u2581sat", "\u2581on",
    "\u2581the", "\u2581ma", "t", ".", "\u2581s", "at", "\u2581dog", "!", "\u2581", "\u2581a",
    "\u2581mat", "\u0120a",
]


def student_tokens_of(text_tokens, seq):
    return text_tokens + [""] * (seq - len(text_tokens))


def mined_case(name, seed):
    """Two or three sequences over the hand vocabularies, random logits, padded masks."""
    rng = np.random.default_rng(seed)
    s_rows = [
        ["The", "\u0120cat", "\u0120sat", "\u0120on", "\u0120the", "\u0120mat", ".", "<|endoftext|>"],
        ["The", "\u0120dog", "\u0120s", "at", "!", "\u010a", "<|endoftext|>"],
        ["The", "\u0120ca", "t", "\u0120on", "\u0120a", "\u0120mat", "."],
    ]
    t_rows = [
        ["<unk>", "\u2581The", "\u2581cat", "\u2581s", "at", "\u2581on", "\u2581the", "\u2581ma", "t", ".", "<|endoftext|>"],
        ["The", "\u2581dog", "\u2581sat", "!", "\u2581", "<|endoftext|>"],
        ["\u2581The", "\u2581cat", "\u2581on", "\u2581a", "\u2581mat", "."],
    ]
    # Response-predicting positions: each row's prompt is its first token(s).
    s_masks = [
        [0, 1, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 1, 0, 0],
    ]
    t_masks = [
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    ]
    batch, seq_s, seq_t = 3, 9, 11
    vs, vt = len(STUDENT_VOCAB), len(TEACHER_VOCAB)
    student = rng.normal(0.0, 2.0, size=(batch, seq_s, vs))
    teacher = rng.normal(0.0, 3.0, size=(batch, seq_t, vt))
    targets = rng.integers(0, vs, size=(batch, seq_s))
    s_tokens = [student_tokens_of(r, seq_s) for r in s_rows]
    t_tokens = [student_tokens_of(r, seq_t) for r in t_rows]
    s_mask = np.array(s_masks, dtype=np.float64)
    t_mask = np.array(t_masks, dtype=np.float64)
    pairs = intersection(STUDENT_VOCAB, TEACHER_VOCAB)
    sigma = [s for s, _ in pairs]
    theta = [t for _, t in pairs]

    alignments = []
    aligned_rows = []  # (b, student position, teacher position)
    unaligned_rows = []  # (b, student position)
    for b in range(batch):
        sp, tp = positions(s_mask[b]), positions(t_mask[b])
        al = min_edit_alignment([s_tokens[b][p] for p in sp], [t_tokens[b][p] for p in tp])
        alignments.append(al)
        for j, i in enumerate(al["aligned"]):
            if i >= 0:
                aligned_rows.append((b, sp[j], tp[i]))
            else:
                unaligned_rows.append((b, sp[j]))

    losses = []
    for tau in [1.0, 2.0]:
        for policy in ["target_one_hot", "skip"]:
            per_token = np.zeros((batch, seq_s))
            for (b, sp, tp) in aligned_rows:
                q = softmax(student[b, sp] / tau)
                p = softmax(teacher[b, tp][theta] / tau)
                per_token[b, sp] = float(np.sum(p * np.log(p / q[sigma])))
            if policy == "target_one_hot":
                for (b, sp) in unaligned_rows:
                    q = softmax(student[b, sp] / tau)
                    per_token[b, sp] = -np.log(q[targets[b, sp]])
            entry = {"temperature": tau, "unaligned": policy,
                     "per_token": per_token.ravel().tolist()}
            entry.update(reductions(per_token, s_mask))
            losses.append(entry)

    return {
        "name": name,
        "student_shape": [batch, seq_s, vs],
        "teacher_shape": [batch, seq_t, vt],
        "student": student.ravel().tolist(),
        "teacher": teacher.ravel().tolist(),
        "student_mask": s_mask.ravel().tolist(),
        "teacher_mask": t_mask.ravel().tolist(),
        "student_targets": targets.ravel().tolist(),
        "student_tokens": s_tokens,
        "teacher_tokens": t_tokens,
        "alignments": alignments,
        "aligned_positions": len(aligned_rows),
        "losses": losses,
    }


def alignment_cases(seed, count):
    """Stand-alone alignments: one text cut into tokens two random ways (with space markers of
    either kind), plus random token noise, so ties and one-to-many runs are frequent."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "x", "yz"]
    cases = []
    for _ in range(count):
        text = [words[k] for k in rng.integers(0, len(words), size=rng.integers(1, 7))]

        def cut(marker):
            tokens = []
            for w in text:
                piece = marker + w
                while piece:
                    k = int(rng.integers(1, len(piece) + 1))
                    tokens.append(piece[:k])
                    piece = piece[k:]
            if rng.random() < 0.3:
                tokens.insert(int(rng.integers(0, len(tokens) + 1)), "zz")
            return tokens

        student = cut(BYTE_SPACE)
        teacher = cut(SP_SPACE if rng.random() < 0.5 else BYTE_SPACE)
        al = min_edit_alignment(student, teacher)
        cases.append({"student": student, "teacher": teacher, **al})
    cases.append({"student": ["a"], "teacher": [], **min_edit_alignment(["a"], [])})
    cases.append({"student": [], "teacher": ["a"], **min_edit_alignment([], ["a"])})
    return cases


def main():
    pairs = intersection(STUDENT_VOCAB, TEACHER_VOCAB)
    out = {
        "generator": "crates/distill-objectives/scripts/make_xtok_reference.py",
        "numpy": np.__version__,
        "vocab": {
            "student": STUDENT_VOCAB,
            "teacher": TEACHER_VOCAB,
            "pairs": [list(p) for p in pairs],
        },
        "uld": [
            uld_case("vs7_gt_vt5", 1, 2, 5, 7, 6, 5,
                     [[0, 1, 1, 1, 0], [0, 0, 1, 1, 1]],
                     [[0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1]]),
            uld_case("vs4_lt_vt9", 2, 3, 4, 4, 3, 9,
                     [[1, 1, 1, 1], [0, 1, 1, 0], [0, 0, 1, 1]],
                     [[0, 1, 1], [1, 1, 1], [0, 0, 0]]),
            uld_case("vs6_eq_vt6", 3, 2, 4, 6, 4, 6,
                     [[1, 1, 0, 0], [0, 1, 1, 1]],
                     [[0, 1, 1, 1], [1, 1, 0, 0]]),
        ],
        "mined": [mined_case("hand_vocab_b3", 4)],
        "alignments": alignment_cases(5, 40),
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
