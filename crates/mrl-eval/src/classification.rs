//! Classification with a linear probe at every Matryoshka dim (MTEB's classification protocol,
//! e.g. Banking77).
//!
//! For each dim `d`: truncate every embedding to its first `d` coordinates, L2-normalise (as
//! [`crate::sts`] does), fit a multinomial logistic regression on the training split and report
//! accuracy and macro-F1 ×100 on the test split.
//!
//! # The probe
//! The objective is scikit-learn's default `LogisticRegression()` (lbfgs, L2 penalty, `C = 1`,
//! intercept fitted and not penalised): with `K ≥ 3` classes, weights `W ∈ ℝ^{K×d}` and
//! intercepts `b ∈ ℝ^K`,
//!
//! ```text
//! J(W, b) = ½‖W‖²_F + C · Σ_i [ log Σ_k exp(w_k·x_i + b_k) − (w_{y_i}·x_i + b_{y_i}) ].
//! ```
//!
//! With two classes scikit-learn fits one binary vector `w` (`½‖w‖² + C Σ log-loss`); the
//! symmetric two-row multinomial form with `C/2` has the same minimiser (`w = w_1 − w_0`,
//! `w_0 = −w_1`), so [`fit_logistic_regression`] uses `C/2` there and reports the binary
//! objective.
//!
//! Solver: L-BFGS (memory 10) in f64 from `W = 0, b = 0` on `J / (C·n)` — the scaling
//! scikit-learn minimises — with a backtracking line search (Armijo, `c₁ = 1e-4`, halving; a
//! step that lowers `J` by less than rounding accuracy is accepted when the directional
//! derivative satisfies the approximate Wolfe conditions of Hager & Zhang). It stops when
//! `‖∇(J/(C·n))‖_∞ ≤ tol` (scikit-learn's `tol`, there the L-BFGS-B `pgtol`), or when the
//! scaled objective stops decreasing by more than `64·ε` relative (L-BFGS-B's `ftol` as
//! scikit-learn sets it), or after `max_iter` iterations — then the fit is reported as not
//! converged. Starting from zero, every iterate keeps `Σ_k w_k = 0` and `Σ_k b_k = 0` (the
//! gradient does), which pins the otherwise free common shift of the intercepts.
//!
//! Agreement with scikit-learn 1.9.1 (`crates/mrl-eval/scripts/make_probe_reference.py`, fixture
//! `tests/fixtures/probe_reference.json`; both sides at `tol = 1e-10`): a 5-class 200×16
//! Gaussian mixture and a 2-class 120×8 one give the same objective within 1e-14 relative
//! (asserted: 1e-6), coefficients and intercepts within 1e-6 (measured 9.8e-7 and 1.1e-7, the
//! precision to which scikit-learn's own stopping rule leaves them; asserted: 1e-5), and
//! identical test predictions, accuracy and macro-F1 (`tests/probe_reference.rs`). On real
//! data — all-MiniLM-L6-v2's Banking77 embeddings at 384 dims written by `mrl encode`, compared
//! with `scripts/probe_vs_sklearn.py` — both give accuracy / macro-F1 90.81 / 90.81 at
//! `tol = 1e-4` and 90.84 / 90.84 at `tol = 1e-5`, in about 50 L-BFGS iterations.
//!
//! Metrics: accuracy, and macro-F1 = the mean over the classes that occur in the test labels or
//! the predictions of `F1_k = 2·TP_k / (2·TP_k + FP_k + FN_k)` (`sklearn.metrics.f1_score(...,
//! average="macro")`, 0 for a class never predicted correctly).
//!
//! # Data
//! TSV with the header `label<TAB>text` (Banking77's `banking77_{train,test}.tsv`), one example
//! per line; labels are arbitrary non-empty strings, sorted as classes (as `np.unique` does). A
//! test label that never occurs in training is an error ([`EvalError::UnseenLabel`]) rather
//! than a silently wrong prediction: such a split is not a probe evaluation.
//!
//! Reference: MTEB, Muennighoff et al. 2022, arXiv:2210.07316 (classification: logistic
//! regression on frozen embeddings, accuracy and F1); Banking77, Casanueva et al. 2020,
//! arXiv:2003.04807.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::sts::truncate_normalize;

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledText {
    /// The class label.
    pub label: String,
    /// The text.
    pub text: String,
    /// 1-based line number in the source file.
    pub line: usize,
}

/// A classification split read from a TSV file with header `label\ttext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassificationDataset {
    /// The file it was read from (named in errors).
    pub path: PathBuf,
    /// The examples, in file order.
    pub examples: Vec<LabelledText>,
}

impl ClassificationDataset {
    /// Reads a TSV file: a header `label\ttext`, then `label<TAB>text` per line.
    ///
    /// # Errors
    /// [`EvalError::Io`] if unreadable; [`EvalError::Empty`] without examples;
    /// [`EvalError::MalformedRow`] (1-based line) for a wrong header, a row without exactly two
    /// fields, an empty label or an empty text.
    pub fn from_tsv(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_tsv(&text, path)
    }

    /// Parses TSV text; `path` names the source in errors.
    ///
    /// # Errors
    /// As [`ClassificationDataset::from_tsv`].
    pub fn parse_tsv(text: &str, path: &Path) -> Result<Self> {
        let malformed = |line: usize, message: String| EvalError::MalformedRow {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = text.lines().enumerate();
        let Some((_, header)) = lines.next() else {
            return Err(EvalError::Empty(path.to_path_buf()));
        };
        let header = header.trim_start_matches('\u{feff}').trim_end();
        if header != "label\ttext" {
            return Err(malformed(
                1,
                format!("expected the header `label<TAB>text`, found `{header}`"),
            ));
        }
        let mut examples = Vec::new();
        for (index, line) in lines {
            let number = index + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [label, text] = fields.as_slice() else {
                return Err(malformed(
                    number,
                    format!(
                        "expected 2 tab-separated fields (label, text), found {}",
                        fields.len()
                    ),
                ));
            };
            let label = label.trim();
            if label.is_empty() {
                return Err(malformed(number, "empty label".to_string()));
            }
            if text.trim().is_empty() {
                return Err(malformed(number, "empty text".to_string()));
            }
            examples.push(LabelledText {
                label: label.to_string(),
                text: text.to_string(),
                line: number,
            });
        }
        if examples.is_empty() {
            return Err(EvalError::Empty(path.to_path_buf()));
        }
        Ok(Self {
            path: path.to_path_buf(),
            examples,
        })
    }

    /// The sorted distinct labels.
    pub fn classes(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.examples.iter().map(|e| e.label.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    }
}

/// Settings of the logistic-regression probe.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Inverse L2 strength (scikit-learn's `C`, default 1).
    pub c: f64,
    /// Stop when `‖∇(J/(C·n))‖_∞ ≤ tol` (scikit-learn's default is 1e-4; default here 1e-5).
    pub tol: f64,
    /// At most this many L-BFGS iterations (default 1000).
    pub max_iter: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            c: 1.0,
            tol: 1e-5,
            max_iter: 1000,
        }
    }
}

/// Why the solver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `‖∇‖_∞ ≤ tol`.
    Gradient,
    /// The objective stopped decreasing (relative change ≤ 64·ε) or no step could lower it:
    /// the optimum at floating-point accuracy.
    NoProgress,
    /// `max_iter` iterations: not converged.
    MaxIter,
}

/// A fitted multinomial logistic regression.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticRegression {
    /// Number of classes `K`.
    pub n_classes: usize,
    /// Number of features `d`.
    pub n_features: usize,
    /// `K × d` weights, row-major (row `k` scores class `k`); rows sum to zero.
    pub coef: Vec<f64>,
    /// `K` intercepts, summing to zero.
    pub intercept: Vec<f64>,
    /// `½‖W‖² + C·Σ log-loss` at the solution (for two classes: of the equivalent binary
    /// vector, as scikit-learn reports it).
    pub objective: f64,
    /// `‖∇(J/(C·n))‖_∞` at the solution.
    pub grad_inf: f64,
    /// L-BFGS iterations taken.
    pub iterations: usize,
    /// Why it stopped.
    pub stop: StopReason,
}

impl LogisticRegression {
    /// The arg-max class of each row of `x` (`n × d`, row-major); ties go to the lowest index.
    ///
    /// # Panics
    /// If `x.len()` is not a multiple of `n_features`.
    pub fn predict(&self, x: &[f64]) -> Vec<usize> {
        assert!(
            x.len().is_multiple_of(self.n_features),
            "predict: x has {} values, not a multiple of n_features = {}",
            x.len(),
            self.n_features
        );
        x.chunks_exact(self.n_features)
            .map(|row| {
                let mut best = (0, f64::NEG_INFINITY);
                for k in 0..self.n_classes {
                    let z = self.intercept[k]
                        + dot(&self.coef[k * self.n_features..][..self.n_features], row);
                    if z > best.1 {
                        best = (k, z);
                    }
                }
                best.0
            })
            .collect()
    }

    /// Whether the gradient tolerance (or floating-point stationarity) was reached.
    pub fn converged(&self) -> bool {
        self.stop != StopReason::MaxIter
    }
}

/// Fits `J(W, b)` of the module docs by L-BFGS. `x` is `n × n_features` row-major, `y[i]` in
/// `0..n_classes`.
///
/// # Errors
/// [`EvalError::InvalidArgument`] if `x` and `y` disagree in size, `n_classes < 2`, a label is
/// out of range, a feature is not finite, `c ≤ 0` or `tol < 0`.
pub fn fit_logistic_regression(
    x: &[f64],
    y: &[usize],
    n_classes: usize,
    n_features: usize,
    config: &ProbeConfig,
) -> Result<LogisticRegression> {
    let invalid = |name, message: String| EvalError::InvalidArgument { name, message };
    if n_features == 0 || y.is_empty() || x.len() != y.len() * n_features {
        return Err(invalid(
            "x",
            format!(
                "{} values for {} labels × {n_features} features",
                x.len(),
                y.len()
            ),
        ));
    }
    if n_classes < 2 {
        return Err(invalid("n_classes", format!("{n_classes} (need ≥ 2)")));
    }
    if let Some(&bad) = y.iter().find(|&&k| k >= n_classes) {
        return Err(invalid(
            "y",
            format!("label {bad} ≥ n_classes = {n_classes}"),
        ));
    }
    if let Some(v) = x.iter().find(|v| !v.is_finite()) {
        return Err(invalid("x", format!("non-finite feature {v}")));
    }
    if !(config.c > 0.0 && config.c.is_finite()) {
        return Err(invalid("c", format!("{} (need > 0)", config.c)));
    }
    if config.tol.is_nan() || config.tol < 0.0 {
        return Err(invalid("tol", format!("{} (need ≥ 0)", config.tol)));
    }
    let binary = n_classes == 2;
    // Two classes: the symmetric multinomial form with C/2 has scikit-learn's binary minimiser.
    let c = if binary { config.c / 2.0 } else { config.c };
    let problem = Problem {
        x,
        y,
        n: y.len(),
        d: n_features,
        k: n_classes,
        c,
    };
    let (params, value, grad, iterations, stop) = lbfgs(&problem, config.tol, config.max_iter);
    let (coef, intercept) = params.split_at(n_classes * n_features);
    // J = value · C·n; for two classes the binary objective is twice the symmetric one
    // (½‖w₁ − w₀‖² = ‖W‖² at w₀ = −w₁, and C·Σ log-loss = 2 · (C/2)·Σ log-loss).
    let objective = value * c * problem.n as f64 * if binary { 2.0 } else { 1.0 };
    Ok(LogisticRegression {
        n_classes,
        n_features,
        coef: coef.to_vec(),
        intercept: intercept.to_vec(),
        objective,
        grad_inf: grad.iter().fold(0.0, |m: f64, g| m.max(g.abs())),
        iterations,
        stop,
    })
}

/// The scaled objective `J/(C·n)` over parameters `[W (K×d row-major), b (K)]`.
struct Problem<'a> {
    x: &'a [f64],
    y: &'a [usize],
    n: usize,
    d: usize,
    k: usize,
    c: f64,
}

/// Fixed number of sample chunks: the sums are added in the same order whatever the thread
/// count, so results are deterministic.
const CHUNKS: usize = 8;

impl Problem<'_> {
    fn len(&self) -> usize {
        self.k * (self.d + 1)
    }

    /// `(value, gradient)` of `J/(C·n)` at `params`.
    fn eval(&self, params: &[f64]) -> (f64, Vec<f64>) {
        let (k, d) = (self.k, self.d);
        let (w, b) = params.split_at(k * d);
        let chunk = self.n.div_ceil(CHUNKS);
        let ranges: Vec<(usize, usize)> = (0..CHUNKS)
            .map(|c| (c * chunk, ((c + 1) * chunk).min(self.n)))
            .filter(|(s, e)| s < e)
            .collect();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(ranges.len());
        let partial = |&(start, end): &(usize, usize)| {
            let mut loss = 0.0;
            let mut grad = vec![0.0; self.len()];
            let mut z = vec![0.0; k];
            for i in start..end {
                let row = &self.x[i * d..][..d];
                for (c, zc) in z.iter_mut().enumerate() {
                    *zc = b[c] + dot(&w[c * d..][..d], row);
                }
                let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f64 = z.iter().map(|&v| (v - max).exp()).sum();
                let lse = max + sum.ln();
                loss += lse - z[self.y[i]];
                for c in 0..k {
                    let r = (z[c] - lse).exp() - if c == self.y[i] { 1.0 } else { 0.0 };
                    axpy(r, row, &mut grad[c * d..][..d]);
                    grad[k * d + c] += r;
                }
            }
            (loss, grad)
        };
        let results: Vec<(f64, Vec<f64>)> = if threads <= 1 {
            ranges.iter().map(partial).collect()
        } else {
            let per = ranges.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = ranges
                    .chunks(per)
                    .map(|group| scope.spawn(|| group.iter().map(partial).collect::<Vec<_>>()))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("a probe worker thread panicked"))
                    .collect()
            })
        };
        let mut loss = 0.0;
        let mut grad = vec![0.0; self.len()];
        for (l, g) in results {
            loss += l;
            axpy(1.0, &g, &mut grad);
        }
        // J/(C n) = Σ loss / n + ‖W‖² / (2 C n).
        let scale = 1.0 / (self.c * self.n as f64);
        let value = loss / self.n as f64 + 0.5 * scale * dot(w, w);
        for g in &mut grad {
            *g /= self.n as f64;
        }
        axpy(scale, w, &mut grad[..k * d]);
        (value, grad)
    }
}

/// L-BFGS from zero. Returns `(params, value, gradient, iterations, stop reason)`.
fn lbfgs(
    problem: &Problem,
    tol: f64,
    max_iter: usize,
) -> (Vec<f64>, f64, Vec<f64>, usize, StopReason) {
    const MEMORY: usize = 10;
    const C1: f64 = 1e-4;
    const SIGMA: f64 = 0.9;
    const DELTA: f64 = 0.1;
    const MAX_HALVINGS: usize = 60;
    let ftol = 64.0 * f64::EPSILON;
    let mut x = vec![0.0; problem.len()];
    let (mut f, mut g) = problem.eval(&x);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::new();
    let norm_inf = |v: &[f64]| v.iter().fold(0.0, |m: f64, a| m.max(a.abs()));
    for iteration in 0..max_iter {
        if norm_inf(&g) <= tol {
            return (x, f, g, iteration, StopReason::Gradient);
        }
        // Two-loop recursion: p = −H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            axpy(-a, y, &mut q);
            alphas.push(a);
        }
        let gamma = match history.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y),
            // First step: a unit step in the ∞-norm.
            None => 1.0 / norm_inf(&g).max(f64::MIN_POSITIVE),
        };
        for v in &mut q {
            *v *= gamma;
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &q);
            axpy(a - beta, s, &mut q);
        }
        let p: Vec<f64> = q.iter().map(|v| -v).collect();
        let slope = dot(&g, &p);
        if slope >= 0.0 {
            // Not a descent direction (rounding): restart from steepest descent.
            history.clear();
            continue;
        }
        // Backtracking line search.
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..MAX_HALVINGS {
            let trial: Vec<f64> = x.iter().zip(&p).map(|(a, b)| a + step * b).collect();
            let (ft, gt) = problem.eval(&trial);
            let armijo = ft <= f + C1 * step * slope;
            let slope_t = dot(&gt, &p);
            let approx_wolfe = ft <= f + 1e-12 * f.abs()
                && SIGMA * slope <= slope_t
                && slope_t <= (2.0 * DELTA - 1.0) * slope;
            if ft.is_finite() && (armijo || approx_wolfe) {
                accepted = Some((trial, ft, gt));
                break;
            }
            step *= 0.5;
        }
        let Some((xn, fnew, gn)) = accepted else {
            return (x, f, g, iteration, StopReason::NoProgress);
        };
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() && sy > 0.0 {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        let relative = (f - fnew) / f.abs().max(fnew.abs()).max(1.0);
        x = xn;
        f = fnew;
        g = gn;
        if relative <= ftol && norm_inf(&g) > tol {
            return (x, f, g, iteration + 1, StopReason::NoProgress);
        }
    }
    let stop = if norm_inf(&g) <= tol {
        StopReason::Gradient
    } else {
        StopReason::MaxIter
    };
    (x, f, g, max_iter, stop)
}

/// Dot product with four accumulators (vectorises).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((a, x), y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `out += a·x`.
fn axpy(a: f64, x: &[f64], out: &mut [f64]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// Accuracy and macro-F1, ×100, of `predicted` against `truth` (class indices).
///
/// Macro-F1 averages `2·TP/(2·TP + FP + FN)` over the classes that occur in either list.
///
/// # Panics
/// If the lengths differ or are zero.
pub fn accuracy_and_macro_f1(truth: &[usize], predicted: &[usize]) -> (f64, f64) {
    assert!(
        truth.len() == predicted.len() && !truth.is_empty(),
        "accuracy_and_macro_f1: {} labels vs {} predictions",
        truth.len(),
        predicted.len()
    );
    let n_classes = truth.iter().chain(predicted).max().map_or(0, |m| m + 1);
    let (mut tp, mut fp, mut fn_) = (
        vec![0usize; n_classes],
        vec![0usize; n_classes],
        vec![0usize; n_classes],
    );
    for (&t, &p) in truth.iter().zip(predicted) {
        if t == p {
            tp[t] += 1;
        } else {
            fp[p] += 1;
            fn_[t] += 1;
        }
    }
    let present: Vec<usize> = (0..n_classes)
        .filter(|&c| tp[c] + fp[c] + fn_[c] > 0)
        .collect();
    let f1_sum: f64 = present
        .iter()
        .map(|&c| 2.0 * tp[c] as f64 / (2 * tp[c] + fp[c] + fn_[c]) as f64)
        .sum();
    let accuracy = tp.iter().sum::<usize>() as f64 / truth.len() as f64;
    (100.0 * accuracy, 100.0 * f1_sum / present.len() as f64)
}

/// Accuracy and macro-F1 ×100 at one dim, and how the probe's solver ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassificationScores {
    /// Test accuracy ×100.
    pub accuracy: f64,
    /// Test macro-F1 ×100.
    pub macro_f1: f64,
    /// L-BFGS iterations of the probe (not in the JSON).
    #[serde(skip)]
    pub iterations: usize,
    /// Whether the probe converged (not in the JSON).
    #[serde(skip)]
    pub converged: bool,
}

/// The result of a classification run: scores per dim, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Training examples.
    pub n_train: usize,
    /// Test examples.
    pub n_test: usize,
    /// Classes (in the training split).
    pub n_classes: usize,
    /// `(dim, scores)`; serialises as `{"384": {"accuracy": .., "macro_f1": ..}, ...}`.
    #[serde(
        serialize_with = "crate::dims::serialize",
        deserialize_with = "crate::dims::deserialize"
    )]
    pub dims: Vec<(usize, ClassificationScores)>,
}

/// The class index of every example of both splits.
///
/// # Errors
/// [`EvalError::SingleClass`] if the training split has one label;
/// [`EvalError::UnseenLabel`] for a test label absent from training.
pub fn class_indices(
    train: &ClassificationDataset,
    test: &ClassificationDataset,
) -> Result<(Vec<String>, Vec<usize>, Vec<usize>)> {
    let classes = train.classes();
    if classes.len() < 2 {
        return Err(EvalError::SingleClass {
            path: train.path.clone(),
            label: classes.into_iter().next().unwrap_or_default(),
        });
    }
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let train_y = train
        .examples
        .iter()
        .map(|e| index[e.label.as_str()])
        .collect();
    let test_y = test
        .examples
        .iter()
        .map(|e| {
            index
                .get(e.label.as_str())
                .copied()
                .ok_or_else(|| EvalError::UnseenLabel {
                    path: test.path.clone(),
                    line: e.line,
                    label: e.label.clone(),
                    train: train.path.clone(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((classes, train_y, test_y))
}

/// Fits a probe per dim on precomputed embeddings and scores it on the test split.
///
/// # Errors
/// As [`class_indices`]; [`EvalError::DimTooLarge`] for a dim of 0 or wider than the
/// embeddings; [`EvalError::InvalidArgument`] from [`fit_logistic_regression`] (e.g. a
/// non-finite embedding).
pub fn score_classification(
    train: &ClassificationDataset,
    test: &ClassificationDataset,
    train_embeddings: &[Vec<f32>],
    test_embeddings: &[Vec<f32>],
    dims: &[usize],
    config: &ProbeConfig,
) -> Result<ClassificationReport> {
    let (classes, train_y, test_y) = class_indices(train, test)?;
    if train_embeddings.len() != train_y.len() || test_embeddings.len() != test_y.len() {
        return Err(EvalError::InvalidArgument {
            name: "embeddings",
            message: format!(
                "{} train / {} test vectors for {} / {} examples",
                train_embeddings.len(),
                test_embeddings.len(),
                train_y.len(),
                test_y.len()
            ),
        });
    }
    let width = train_embeddings
        .iter()
        .chain(test_embeddings)
        .map(Vec::len)
        .min()
        .unwrap_or(0);
    if let Some(&dim) = dims.iter().find(|&&d| d == 0 || d > width) {
        return Err(EvalError::DimTooLarge { dim, width });
    }
    let flat = |embeddings: &[Vec<f32>], dim| -> Vec<f64> {
        embeddings
            .iter()
            .flat_map(|e| truncate_normalize(e, dim))
            .collect()
    };
    let mut report = ClassificationReport {
        n_train: train_y.len(),
        n_test: test_y.len(),
        n_classes: classes.len(),
        dims: Vec::with_capacity(dims.len()),
    };
    for &dim in dims {
        let model = fit_logistic_regression(
            &flat(train_embeddings, dim),
            &train_y,
            classes.len(),
            dim,
            config,
        )?;
        let predicted = model.predict(&flat(test_embeddings, dim));
        let (accuracy, macro_f1) = accuracy_and_macro_f1(&test_y, &predicted);
        report.dims.push((
            dim,
            ClassificationScores {
                accuracy,
                macro_f1,
                iterations: model.iterations,
                converged: model.converged(),
            },
        ));
    }
    Ok(report)
}

/// Runs the classification task: checks the labels, embeds the texts of both splits through
/// `encode` (one call, every distinct text once), then [`score_classification`].
///
/// # Errors
/// As [`score_classification`] (label errors before any encoding); [`EvalError::Encode`]
/// wrapping the encoder's error or a wrong number of vectors.
pub fn run_classification<E: std::fmt::Display>(
    train: &ClassificationDataset,
    test: &ClassificationDataset,
    dims: &[usize],
    config: &ProbeConfig,
    encode: impl FnOnce(&[&str]) -> std::result::Result<Vec<Vec<f32>>, E>,
) -> Result<ClassificationReport> {
    class_indices(train, test)?;
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut texts = Vec::new();
    let positions: Vec<usize> = train
        .examples
        .iter()
        .chain(&test.examples)
        .map(|e| {
            *index.entry(e.text.as_str()).or_insert_with(|| {
                texts.push(e.text.as_str());
                texts.len() - 1
            })
        })
        .collect();
    let embeddings = crate::sts::encode_all(&texts, encode)?;
    let (train_pos, test_pos) = positions.split_at(train.examples.len());
    let gather =
        |pos: &[usize]| -> Vec<Vec<f32>> { pos.iter().map(|&i| embeddings[i].clone()).collect() };
    score_classification(
        train,
        test,
        &gather(train_pos),
        &gather(test_pos),
        dims,
        config,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClassificationDataset> {
        ClassificationDataset::parse_tsv(text, Path::new("mem.tsv"))
    }

    #[test]
    fn parses_banking77_style_rows() {
        let data = parse("label\ttext\ncard_arrival\tWhere is my card?\n\nbalance\tHow much?\r\n")
            .unwrap();
        assert_eq!(data.examples.len(), 2);
        assert_eq!(data.examples[1].label, "balance");
        assert_eq!(data.examples[1].line, 4);
        assert_eq!(data.classes(), ["balance", "card_arrival"]);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        for (text, line, needle) in [
            ("text\tlabel\na\tb\n", 1, "expected the header"),
            ("label\ttext\na\tb\n\tno label\n", 3, "empty label"),
            (
                "label\ttext\na\tb\nc\n",
                3,
                "expected 2 tab-separated fields",
            ),
            ("label\ttext\na\tb\tc\n", 2, "found 3"),
            ("label\ttext\na\t \n", 2, "empty text"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(err, EvalError::MalformedRow { line: l, .. } if l == line),
                "{text:?}: {err}"
            );
            let message = err.to_string();
            assert!(
                message.contains(&format!("mem.tsv:{line}")) && message.contains(needle),
                "{message}"
            );
        }
        assert!(matches!(parse("").unwrap_err(), EvalError::Empty(_)));
        assert!(matches!(
            parse("label\ttext\n\n").unwrap_err(),
            EvalError::Empty(_)
        ));
    }

    #[test]
    fn a_single_class_and_unseen_test_labels_are_errors() {
        let one = parse("label\ttext\na\tx\na\ty\n").unwrap();
        let two = parse("label\ttext\na\tx\nb\ty\n").unwrap();
        let err = class_indices(&one, &two).unwrap_err();
        assert!(matches!(err, EvalError::SingleClass { .. }), "{err}");
        assert!(err.to_string().contains("mem.tsv"), "{err}");
        let test = parse("label\ttext\na\tx\nc\tz\n").unwrap();
        let err = class_indices(&two, &test).unwrap_err();
        assert!(
            matches!(&err, EvalError::UnseenLabel { line: 3, label, .. } if label == "c"),
            "{err}"
        );
    }

    #[test]
    fn macro_f1_matches_a_hand_computation() {
        // Classes 0, 1, 2. Truth [0,0,1,1,2], predicted [0,1,1,1,1]:
        // F1_0 = 2/(2+0+1) = 2/3; F1_1 = 4/(4+2+0) = 2/3; F1_2 = 0/(0+0+1) = 0.
        let (acc, f1) = accuracy_and_macro_f1(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 1]);
        assert!((acc - 60.0).abs() < 1e-12);
        assert!((f1 - 100.0 * (4.0 / 3.0) / 3.0).abs() < 1e-12, "{f1}");
        // A class only predicted counts (F1 0); a class in neither list does not.
        let (_, f1) = accuracy_and_macro_f1(&[0, 0], &[0, 3]);
        assert!((f1 - 100.0 * (2.0 / 3.0) / 2.0).abs() < 1e-12, "{f1}");
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let (n, d, k) = (9, 3, 4);
        let mut rng = mrl_rng(3);
        let x: Vec<f64> = (0..n * d).map(|_| rng()).collect();
        let y: Vec<usize> = (0..n).map(|i| i % k).collect();
        let problem = Problem {
            x: &x,
            y: &y,
            n,
            d,
            k,
            c: 0.7,
        };
        let params: Vec<f64> = (0..problem.len()).map(|_| rng()).collect();
        let (_, grad) = problem.eval(&params);
        for j in 0..params.len() {
            let h = 1e-6;
            let mut plus = params.clone();
            plus[j] += h;
            let mut minus = params.clone();
            minus[j] -= h;
            let fd = (problem.eval(&plus).0 - problem.eval(&minus).0) / (2.0 * h);
            assert!(
                (fd - grad[j]).abs() < 1e-8,
                "param {j}: {fd} vs {}",
                grad[j]
            );
        }
    }

    /// A tiny deterministic generator of values in [-1, 1) for the tests.
    fn mrl_rng(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
    }

    #[test]
    fn the_fit_is_stationary_and_separates_separable_data() {
        // Three clusters on the axes.
        let x = vec![
            3.0, 0.0, 2.5, 0.5, 0.0, 3.0, 0.5, 2.5, -3.0, -3.0, -2.5, -3.5,
        ];
        let y = vec![0, 0, 1, 1, 2, 2];
        let model = fit_logistic_regression(&x, &y, 3, 2, &ProbeConfig::default()).unwrap();
        assert_eq!(model.stop, StopReason::Gradient);
        assert!(model.grad_inf <= 1e-5);
        assert_eq!(model.predict(&x), y);
        assert!(model.intercept.iter().sum::<f64>().abs() < 1e-9);
        for j in 0..2 {
            let column: f64 = (0..3).map(|c| model.coef[c * 2 + j]).sum();
            assert!(column.abs() < 1e-9, "column {j} sums to {column}");
        }
    }

    #[test]
    fn the_fit_does_not_depend_on_row_order() {
        let (n, d, k) = (40, 3, 3);
        let mut rng = mrl_rng(9);
        let y: Vec<usize> = (0..n).map(|i| (i * 7) % k).collect();
        let x: Vec<f64> = (0..n * d).map(|j| rng() + y[j / d] as f64 * 0.5).collect();
        let cfg = ProbeConfig {
            tol: 1e-10,
            ..ProbeConfig::default()
        };
        let a = fit_logistic_regression(&x, &y, k, d, &cfg).unwrap();
        let order: Vec<usize> = (0..n).rev().collect();
        let xr: Vec<f64> = order
            .iter()
            .flat_map(|&i| x[i * d..][..d].to_vec())
            .collect();
        let yr: Vec<usize> = order.iter().map(|&i| y[i]).collect();
        let b = fit_logistic_regression(&xr, &yr, k, d, &cfg).unwrap();
        assert!((a.objective - b.objective).abs() <= 1e-10 * a.objective);
        for (u, v) in a.coef.iter().zip(&b.coef) {
            assert!((u - v).abs() < 1e-6, "{u} vs {v}");
        }
        // Stronger regularisation shrinks the weights.
        let weak = fit_logistic_regression(&x, &y, k, d, &ProbeConfig { c: 0.01, ..cfg }).unwrap();
        let norm = |m: &LogisticRegression| m.coef.iter().map(|v| v * v).sum::<f64>();
        assert!(norm(&weak) < norm(&a));
    }

    #[test]
    fn bad_fit_arguments_are_refused() {
        let cfg = ProbeConfig::default();
        assert!(fit_logistic_regression(&[1.0, 2.0], &[0, 1], 1, 1, &cfg).is_err());
        assert!(fit_logistic_regression(&[1.0, 2.0], &[0, 2], 2, 1, &cfg).is_err());
        assert!(fit_logistic_regression(&[1.0], &[0, 1], 2, 1, &cfg).is_err());
        assert!(fit_logistic_regression(&[1.0, f64::NAN], &[0, 1], 2, 1, &cfg).is_err());
        let bad_c = ProbeConfig { c: 0.0, ..cfg };
        let err = fit_logistic_regression(&[1.0, 2.0], &[0, 1], 2, 1, &bad_c).unwrap_err();
        assert!(err.to_string().contains("invalid c"), "{err}");
    }

    #[test]
    fn json_has_the_documented_shape() {
        let report = ClassificationReport {
            n_train: 4,
            n_test: 2,
            n_classes: 2,
            dims: vec![(
                384,
                ClassificationScores {
                    accuracy: 50.0,
                    macro_f1: 40.0,
                    iterations: 7,
                    converged: true,
                },
            )],
        };
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            r#"{"n_train":4,"n_test":2,"n_classes":2,"dims":{"384":{"accuracy":50.0,"macro_f1":40.0}}}"#
        );
    }

    #[test]
    fn run_classification_embeds_each_text_once_and_scores_every_dim() {
        let train = parse("label\ttext\na\tx1\na\tx2\nb\ty1\nb\ty2\n").unwrap();
        let test = parse("label\ttext\na\tx1\nb\ty3\n").unwrap();
        let mut seen = Vec::new();
        let report = run_classification(
            &train,
            &test,
            &[2, 1],
            &ProbeConfig::default(),
            |t: &[&str]| {
                seen = t.iter().map(|s| s.to_string()).collect();
                Ok::<_, String>(
                    t.iter()
                        .map(|s| {
                            if s.starts_with('x') {
                                vec![1.0, 0.2]
                            } else {
                                vec![-1.0, 0.3]
                            }
                        })
                        .collect(),
                )
            },
        )
        .unwrap();
        assert_eq!(seen, ["x1", "x2", "y1", "y2", "y3"]);
        assert_eq!(report.dims.len(), 2);
        assert_eq!(report.dims[0].0, 2);
        assert!((report.dims[0].1.accuracy - 100.0).abs() < 1e-12);
        let err = run_classification(
            &train,
            &test,
            &[3],
            &ProbeConfig::default(),
            |t: &[&str]| Ok::<_, String>(vec![vec![1.0, 0.0]; t.len()]),
        )
        .unwrap_err();
        assert!(
            matches!(err, EvalError::DimTooLarge { dim: 3, width: 2 }),
            "{err}"
        );
    }
}
