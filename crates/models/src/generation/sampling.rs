//! Choosing the next token from a row of logits: no-repeat-n-gram ban, temperature, top-k,
//! top-p (nucleus), then greedy arg-max or a seeded draw — the order of Hugging Face's
//! `generate` logits processors. Draws come from the workspace's seeded [`SplitMix64`].

use mrl_common::SplitMix64;

/// How to pick each next token.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingOptions {
    /// `0` is greedy decoding; otherwise logits are divided by it before sampling.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`None` or `0`: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p` (`None`: all).
    pub top_p: Option<f32>,
    /// Never produce an n-gram of this size twice (`0`: off).
    pub no_repeat_ngram_size: usize,
}

impl Default for SamplingOptions {
    /// Greedy decoding without n-gram bans.
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            no_repeat_ngram_size: 0,
        }
    }
}

/// Sets to `-inf` every token that would complete an n-gram of size `n` already present in
/// `history` (Hugging Face's `NoRepeatNGramLogitsProcessor`).
pub fn ban_repeated_ngrams(logits: &mut [f32], history: &[u32], n: usize) {
    if n == 0 || history.len() + 1 < n {
        return;
    }
    let prefix = &history[history.len() + 1 - n..];
    for window in history.windows(n) {
        if &window[..n - 1] == prefix {
            if let Some(l) = logits.get_mut(window[n - 1] as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// Picks the next token from `logits` (one vocabulary row) after `history`.
///
/// Greedy when `options.temperature` is 0 (ties go to the lowest id); otherwise a draw from
/// the tempered, top-k- and top-p-filtered distribution.
pub fn next_token(
    logits: &[f32],
    history: &[u32],
    options: &SamplingOptions,
    rng: &mut SplitMix64,
) -> u32 {
    let mut logits = logits.to_vec();
    ban_repeated_ngrams(&mut logits, history, options.no_repeat_ngram_size);
    if options.temperature <= 0.0 {
        return argmax(&logits);
    }
    // Candidates sorted by logit, most likely first (ties: lowest id first).
    let mut order = by_descending_logit(&logits);
    if order.is_empty() {
        return argmax(&logits);
    }
    if let Some(k) = options.top_k.filter(|&k| k > 0) {
        order.truncate(k);
    }
    let t = options.temperature as f64;
    let max = logits[order[0]] as f64 / t;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| (logits[i] as f64 / t - max).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(p) = options.top_p.filter(|&p| p < 1.0) {
        // Keep tokens until the cumulative probability reaches p (at least one).
        let mut cumulative = 0.0;
        let keep = probs
            .iter()
            .position(|&q| {
                cumulative += q;
                cumulative >= p as f64
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        order.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut u = rng.next_f64() * total;
    for (&i, &q) in order.iter().zip(&probs) {
        if u < q {
            return i as u32;
        }
        u -= q;
    }
    *order.last().expect("at least one candidate") as u32
}

/// The ids of the logits above `-inf`, ordered as
/// `logits[b].total_cmp(&logits[a]).then(a.cmp(&b))` (largest first, ties by lowest id), by an
/// unstable sort of one integer key per id — the same order as that comparator's sort (the
/// keys are distinct), several times faster over a vocabulary of tens of thousands, which is
/// paid once per token of every row.
pub fn by_descending_logit(logits: &[f32]) -> Vec<usize> {
    let mut keys: Vec<u64> = logits
        .iter()
        .enumerate()
        .filter(|(_, &l)| l > f32::NEG_INFINITY)
        .map(|(i, &l)| {
            // `f32::total_cmp`'s key: the bits as i32, the magnitude bits flipped for negatives.
            let mut bits = l.to_bits() as i32;
            bits ^= (((bits >> 31) as u32) >> 1) as i32;
            // Ascending unsigned order of the key, then inverted: largest logit first.
            let ascending = (bits as u32) ^ 0x8000_0000;
            (u64::from(!ascending) << 32) | i as u64
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter()
        .map(|k| (k & 0xFFFF_FFFF) as usize)
        .collect()
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut rng = SplitMix64::new(0);
        let options = SamplingOptions::default();
        assert_eq!(
            next_token(&[0.0, 3.0, 3.0, 1.0], &[], &options, &mut rng),
            1
        );
    }

    #[test]
    fn repeated_ngrams_are_banned() {
        // History "5 6 7 5 6": the bigram prefix (6) was followed by 7 → 7 banned for n = 2;
        // for n = 3 the prefix (5 6) was followed by 7 → banned too; 8 is never banned.
        let mut logits = vec![0.0; 10];
        ban_repeated_ngrams(&mut logits, &[5, 6, 7, 5, 6], 3);
        assert_eq!(logits[7], f32::NEG_INFINITY);
        assert_eq!(logits.iter().filter(|l| l.is_infinite()).count(), 1);
        let mut rng = SplitMix64::new(0);
        let mut logits = vec![0.0; 10];
        logits[7] = 5.0;
        logits[8] = 4.0;
        let options = SamplingOptions {
            no_repeat_ngram_size: 2,
            ..SamplingOptions::default()
        };
        assert_eq!(next_token(&logits, &[5, 6, 7, 5, 6], &options, &mut rng), 8);
    }

    #[test]
    fn top_k_1_and_tiny_top_p_are_greedy_and_seeds_repeat() {
        let logits = [0.5, 2.0, 1.9, -1.0];
        let mut rng = SplitMix64::new(42);
        for options in [
            SamplingOptions {
                temperature: 1.0,
                top_k: Some(1),
                ..Default::default()
            },
            SamplingOptions {
                temperature: 1.0,
                top_p: Some(0.01),
                ..Default::default()
            },
        ] {
            for _ in 0..20 {
                assert_eq!(next_token(&logits, &[], &options, &mut rng), 1);
            }
        }
        let options = SamplingOptions {
            temperature: 1.0,
            ..Default::default()
        };
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (0..50)
                .map(|_| next_token(&logits, &[], &options, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // With temperature 1, tokens 1 and 2 (nearly equal logits) both appear.
        let seen = draw(7);
        assert!(seen.contains(&1) && seen.contains(&2), "{seen:?}");
    }

    #[test]
    fn the_fast_order_is_the_comparator_order() {
        let mut rng = SplitMix64::new(3);
        let mut logits: Vec<f32> = (0..5000)
            .map(|_| ((rng.next_f64() - 0.5) * 40.0) as f32)
            .collect();
        // Ties, signed zeros, extremes, infinities (-inf is not a candidate).
        for (i, v) in [
            (10, 1.5),
            (11, 1.5),
            (4000, 1.5),
            (12, 0.0),
            (13, -0.0),
            (14, f32::MAX),
            (15, f32::MIN),
            (16, f32::INFINITY),
            (17, f32::NEG_INFINITY),
            (18, f32::MIN_POSITIVE),
            (19, -f32::MIN_POSITIVE),
        ] {
            logits[i] = v;
        }
        let mut want: Vec<usize> = (0..logits.len())
            .filter(|&i| logits[i] > f32::NEG_INFINITY)
            .collect();
        want.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        let got = by_descending_logit(&logits);
        assert_eq!(got, want);
        assert_eq!(got.len(), 4999);
        assert_eq!(&got[..2], &[16, 14]);
        let ties: Vec<usize> = got.iter().copied().filter(|&i| logits[i] == 1.5).collect();
        assert_eq!(ties, [10, 11, 4000]);
        assert!(by_descending_logit(&[f32::NEG_INFINITY; 3]).is_empty());
    }

    #[test]
    fn sampling_follows_the_softmax() {
        // p = softmax([0, ln 3]) = [0.25, 0.75]: over 4000 draws the count of token 1 is
        // 3000 ± 4.4σ (σ = 27.4).
        let logits = [0.0, 3f32.ln()];
        let options = SamplingOptions {
            temperature: 1.0,
            ..Default::default()
        };
        let mut rng = SplitMix64::new(1);
        let ones = (0..4000)
            .filter(|_| next_token(&logits, &[], &options, &mut rng) == 1)
            .count();
        assert!((2880..=3120).contains(&ones), "{ones}");
    }
}
