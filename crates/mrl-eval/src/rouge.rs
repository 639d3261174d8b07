//! ROUGE-L (Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", ACL Workshop 2004),
//! exactly as Python's `rouge_score` 0.1.2 computes it with
//! `rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)` — the scorer DSKD, MiniLLM and
//! the distillation papers after them report on Dolly (arXiv 2406.17328, 2306.08543).
//!
//! **Tokens** ([`tokenize`]): lower-case (Unicode lower-casing, as Python's `str.lower`), every
//! character other than `[a-z0-9]` becomes a space (so accents, `•`, curly quotes and CJK are
//! separators: `café` → `caf`), split on spaces, tokens longer than three characters are
//! stemmed with NLTK's Porter stemmer in its default `NLTK_EXTENSIONS` mode ([`crate::porter`]),
//! empty tokens dropped.
//!
//! **Score** ([`rouge_l`]), with `L = LCS(prediction tokens, reference tokens)` the length of
//! the longest common subsequence:
//!
//! ```text
//! P = L / |prediction|      R = L / |reference|      F = 2·P·R / (P + R)   (F = 0 if P + R = 0)
//! ```
//!
//! and P = R = F = 0 when either side has no token. With several references
//! ([`rouge_l_multi`], `score_multi`), the score against the reference of highest F (the first
//! of equal ones) is returned.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::porter;

/// ROUGE-L precision, recall and F-measure, each in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RougeScore {
    /// LCS length over the prediction's token count.
    pub precision: f64,
    /// LCS length over the reference's token count.
    pub recall: f64,
    /// Their harmonic mean, `2·P·R / (P + R)`.
    pub fmeasure: f64,
}

/// The tokens `rouge_score`'s default tokenizer produces with `use_stemmer=True`.
///
/// ```
/// use mrl_eval::rouge::tokenize;
/// assert_eq!(tokenize("• Running “fast”, 2 dogs!"), ["run", "fast", "2", "dog"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .map(|t| if t.len() > 3 { porter::stem(&t) } else { t })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The tokens before stemming: lower-cased text split on every character other than
/// `[a-z0-9]`, empty pieces dropped.
///
/// ```
/// use mrl_eval::rouge::words;
/// assert_eq!(words("Café—“Naïve” 2nd"), ["caf", "na", "ve", "2nd"]);
/// ```
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Length of the longest common subsequence of `a` and `b` (dynamic programming in
/// `O(|a|·|b|)` time and `O(|b|)` memory).
pub fn lcs_length<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        // `diagonal` is the previous row's value at j - 1.
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// ROUGE-L of already tokenised texts (see [`tokenize`]).
pub fn rouge_l_tokens<T: PartialEq>(prediction: &[T], reference: &[T]) -> RougeScore {
    if prediction.is_empty() || reference.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_length(reference, prediction) as f64;
    let precision = lcs / prediction.len() as f64;
    let recall = lcs / reference.len() as f64;
    // rouge_score's `scoring.fmeasure`, evaluated in the same order.
    let fmeasure = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    RougeScore {
        precision,
        recall,
        fmeasure,
    }
}

/// Token ids for faster comparisons: equal tokens get equal ids.
fn intern<'a>(tokens: &'a [String], ids: &mut HashMap<&'a str, u32>) -> Vec<u32> {
    tokens
        .iter()
        .map(|t| {
            let next = ids.len() as u32;
            *ids.entry(t.as_str()).or_insert(next)
        })
        .collect()
}

/// ROUGE-L of `prediction` against `reference` (`rouge_score`'s
/// `RougeScorer(["rougeL"], use_stemmer=True).score(reference, prediction)`).
///
/// ```
/// use mrl_eval::rouge::rouge_l;
/// // Tokens [the, cat, sat] vs [the, cat, is, sit]: LCS "the cat" = 2.
/// let s = rouge_l("The cat sat.", "the cat is sitting");
/// assert!((s.precision - 2.0 / 3.0).abs() < 1e-15 && (s.recall - 0.5).abs() < 1e-15);
/// assert_eq!(rouge_l("", "anything").fmeasure, 0.0);
/// ```
pub fn rouge_l(prediction: &str, reference: &str) -> RougeScore {
    let (prediction, reference) = (tokenize(prediction), tokenize(reference));
    let mut ids = HashMap::new();
    let prediction = intern(&prediction, &mut ids);
    let reference = intern(&reference, &mut ids);
    rouge_l_tokens(&prediction, &reference)
}

/// ROUGE-L against several references: the score of the reference with the highest F-measure
/// (the first of equal ones), as `rouge_score`'s `score_multi`.
///
/// # Panics
/// If `references` is empty (`score_multi` raises on it too).
pub fn rouge_l_multi(prediction: &str, references: &[&str]) -> RougeScore {
    assert!(
        !references.is_empty(),
        "rouge_l_multi: `references` is empty; give at least one reference text"
    );
    let tokens = tokenize(prediction);
    let mut ids = HashMap::new();
    let prediction = intern(&tokens, &mut ids);
    let mut best: Option<RougeScore> = None;
    for reference in references {
        let reference_tokens = tokenize(reference);
        let mut ids = ids.clone();
        let reference = intern(&reference_tokens, &mut ids);
        let score = rouge_l_tokens(&prediction, &reference);
        if best.is_none_or(|b| score.fmeasure > b.fmeasure) {
            best = Some(score);
        }
    }
    best.expect("at least one reference")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_of_small_sequences() {
        assert_eq!(lcs_length(b"ABCBDAB", b"BDCABA"), 4);
        assert_eq!(lcs_length(b"", b"abc"), 0);
        assert_eq!(lcs_length(b"abc", b"abc"), 3);
        assert_eq!(lcs_length(b"abc", b"def"), 0);
        assert_eq!(lcs_length(b"aaaa", b"aa"), 2);
    }

    #[test]
    fn lcs_equals_brute_force_on_random_sequences() {
        // Brute force: the longest subsequence of `a` (over all 2^|a| masks) that is a
        // subsequence of `b`.
        fn is_subsequence(s: &[u8], of: &[u8]) -> bool {
            let mut it = of.iter();
            s.iter().all(|x| it.any(|y| y == x))
        }
        let mut state = 0x1234_5678_9abc_def0_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..300 {
            let a: Vec<u8> = (0..next(9)).map(|_| next(3) as u8).collect();
            let b: Vec<u8> = (0..next(9)).map(|_| next(3) as u8).collect();
            let brute = (0u32..1 << a.len())
                .map(|mask| {
                    let s: Vec<u8> = (0..a.len())
                        .filter(|i| mask >> i & 1 == 1)
                        .map(|i| a[i])
                        .collect();
                    if is_subsequence(&s, &b) {
                        s.len()
                    } else {
                        0
                    }
                })
                .max()
                .unwrap();
            assert_eq!(lcs_length(&a, &b), brute, "{a:?} {b:?}");
            assert_eq!(lcs_length(&b, &a), brute, "symmetry {a:?} {b:?}");
        }
    }

    #[test]
    fn scores_are_in_the_unit_interval_and_symmetric_under_swap() {
        let texts = [
            "the quick brown fox",
            "a quick brown dog jumps",
            "foxes are quick",
            "",
            "...",
            "brown brown brown",
        ];
        for a in texts {
            for b in texts {
                let s = rouge_l(a, b);
                let t = rouge_l(b, a);
                for v in [s.precision, s.recall, s.fmeasure] {
                    assert!((0.0..=1.0).contains(&v), "{a:?} {b:?}: {s:?}");
                }
                // Swapping the texts swaps precision and recall and keeps F.
                assert_eq!((s.precision, s.recall), (t.recall, t.precision));
                assert_eq!(s.fmeasure, t.fmeasure);
                // F lies between min(P, R) and max(P, R).
                assert!(s.fmeasure <= s.precision.max(s.recall) + 1e-15);
                assert!(s.fmeasure >= s.precision.min(s.recall) - 1e-15);
            }
        }
        assert_eq!(rouge_l("Same text.", "same TEXT").fmeasure, 1.0);
    }

    #[test]
    fn multi_takes_the_best_reference_and_the_first_of_ties() {
        let single = rouge_l("the cat sat", "the cat sat down");
        assert_eq!(
            rouge_l_multi("the cat sat", &["a dog", "the cat sat down", "the dog"]),
            single
        );
        // Two references with the same F but different P/R: the first wins.
        // "x": P = 1/2, R = 1; "x y z w": P = 1, R = 1/2; F = 2/3 for both.
        let a = rouge_l("x y", "x");
        let b = rouge_l("x y", "x y z w");
        assert_eq!(a.fmeasure, b.fmeasure);
        assert_ne!(a, b);
        assert_eq!(rouge_l_multi("x y", &["x", "x y z w"]), a);
        assert_eq!(rouge_l_multi("x y", &["x y z w", "x"]), b);
    }

    #[test]
    #[should_panic(expected = "`references` is empty")]
    fn multi_without_references_panics_naming_the_argument() {
        rouge_l_multi("x", &[]);
    }
}
