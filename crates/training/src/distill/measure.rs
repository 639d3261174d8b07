//! Measuring a student against its teacher over a whole file, without training
//! (`mrl distill --eval-only`): the objective's breakdown and the reference block of
//! cross-entropies and divergences.

use std::collections::BTreeMap;

use burn::nn::loss::Reduction;
use burn::tensor::{Device, Tensor};
use distill_objectives::{
    masked_cross_entropy, membership_tensor, teacher_top_k, top1_agreement, Divergence,
    Granularity, KdLossConfig, KdObjective, MtaInput, MtaLoss, SraLoss, TeacherTarget,
};
use models::LlamaModel;
use serde::{Deserialize, Serialize};

use super::data::{DistillBatch, DistillData, DistillExample};
use super::next_token_logits;
use crate::error::{Result, TrainError};

/// Teacher and student on the same positions: temperature 1 unless named, sums over the
/// vocabulary, means over the next-token positions that predict response tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KdBlock {
    /// The teacher's cross-entropy.
    pub teacher_ce: f64,
    /// The student's cross-entropy.
    pub student_ce: f64,
    /// `KL(p_T ‖ p_S)`.
    pub fkl: f64,
    /// `KL(p_S ‖ p_T)`.
    pub rkl: f64,
    /// Jensen–Shannon divergence, β = ½.
    pub jsd: f64,
    /// `τ² · KL(p_T ‖ p_S)` at τ = 2.
    pub kl_tau2_scaled: f64,
    /// Fraction of positions where the two argmaxes agree.
    pub top1_agreement: f64,
    /// `k` of [`KdBlock::fkl_top_k`].
    pub top_k: usize,
    /// FKL with the teacher kept as its top `k` tokens plus the tail mass (what a cached run
    /// optimises); at most [`KdBlock::fkl`].
    pub fkl_top_k: f64,
}

/// What [`Measure::run`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureReport {
    /// Records measured.
    pub records: usize,
    /// Counted next-token positions.
    pub positions: usize,
    /// The objective's terms (`total`, `ce`, `kd`, …), means over the positions, with the
    /// full-vocabulary teacher.
    pub loss: BTreeMap<String, f64>,
    /// The reference block.
    pub kd: KdBlock,
}

fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// A measurement: a student and its teacher (inference, on `device`) and the objective.
pub struct Measure<'a> {
    /// The student.
    pub student: &'a LlamaModel,
    /// The teacher.
    pub teacher: &'a LlamaModel,
    /// The objective whose breakdown is reported.
    pub objective: &'a KdObjective,
    /// Records per forward pass.
    pub batch_size: usize,
    /// The `k` of [`KdBlock::fkl_top_k`].
    pub top_k: usize,
    /// Where the models live.
    pub device: &'a Device,
}

impl Measure<'_> {
    /// Runs both models over `data`; `on_records` is called with the number of records done.
    ///
    /// # Errors
    /// [`TrainError::Eval`] when a loss rejects its input or no position counts.
    pub fn run(&self, data: &DistillData, on_records: impl FnMut(usize)) -> Result<MeasureReport> {
        measure(self, data, on_records)
    }
}

fn measure(
    m: &Measure<'_>,
    data: &DistillData,
    mut on_records: impl FnMut(usize),
) -> Result<MeasureReport> {
    let (student, teacher, objective, batch_size, top_k, device) = (
        m.student,
        m.teacher,
        m.objective,
        m.batch_size,
        m.top_k,
        m.device,
    );
    let loss_err = |e: distill_objectives::DistillError| TrainError::Eval(e.to_string());
    let kd = |divergence: Divergence, temperature: f64, squared: bool| {
        KdLossConfig::new(divergence)
            .with_temperature(temperature)
            .with_temperature_squared(squared)
            .init()
    };
    let fkl = kd(Divergence::ForwardKl, 1.0, false);
    let rkl = kd(Divergence::ReverseKl, 1.0, false);
    let jsd = kd(Divergence::JensenShannon { beta: 0.5 }, 1.0, false);
    let kl2 = kd(Divergence::ForwardKl, 2.0, true);
    let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
    let mut loss: BTreeMap<String, f64> = BTreeMap::new();
    let (mut positions, mut done) = (0usize, 0usize);
    for chunk in data.examples.chunks(batch_size.max(1)) {
        let refs: Vec<&DistillExample> = chunk.iter().collect();
        let batch = DistillBatch::new(&refs, device);
        let n = batch.targets_counted as f64;
        let t_logits = next_token_logits(teacher, &batch);
        let s_logits = next_token_logits(student, &batch);
        let (targets, mask) = (batch.targets.clone(), batch.target_mask.clone());
        let full = TeacherTarget::Full {
            logits: t_logits.clone(),
        };
        let mut add = |name: &'static str, value: f64| *sums.entry(name).or_default() += value;
        add(
            "teacher_ce",
            scalar(masked_cross_entropy(
                t_logits.clone(),
                targets.clone(),
                mask.clone(),
                Reduction::Sum,
            )),
        );
        add(
            "student_ce",
            scalar(masked_cross_entropy(
                s_logits.clone(),
                targets.clone(),
                mask.clone(),
                Reduction::Sum,
            )),
        );
        for (name, d) in [
            ("fkl", &fkl),
            ("rkl", &rkl),
            ("jsd", &jsd),
            ("kl_tau2_scaled", &kl2),
        ] {
            let out = d
                .try_forward(s_logits.clone(), &full, mask.clone(), Reduction::Sum)
                .map_err(loss_err)?;
            add(name, scalar(out.loss));
        }
        let top = TeacherTarget::TopK(teacher_top_k(t_logits.clone(), top_k, 1.0));
        let out = fkl
            .try_forward(s_logits.clone(), &top, mask.clone(), Reduction::Sum)
            .map_err(loss_err)?;
        add("fkl_top_k", scalar(out.loss));
        add(
            "top1",
            top1_agreement(s_logits.clone(), t_logits.clone(), mask.clone()) * n,
        );
        let out = objective
            .try_forward(s_logits, targets, mask, &full, Reduction::Mean)
            .map_err(loss_err)?;
        *loss.entry("total".into()).or_default() += scalar(out.loss) * n;
        let own = objective.kd.divergence.name();
        for (name, value) in out.terms {
            let key = match name {
                "ce" | "kd" => name.to_string(),
                _ if name == own => continue,
                _ => format!("kd/{name}"),
            };
            *loss.entry(key).or_default() += scalar(value) * n;
        }
        positions += batch.targets_counted;
        done += refs.len();
        on_records(done);
    }
    if positions == 0 {
        return Err(TrainError::Eval(format!(
            "{}: no response position to measure",
            data.path.display()
        )));
    }
    let p = positions as f64;
    let mean = |name: &str| sums.get(name).copied().unwrap_or(0.0) / p;
    Ok(MeasureReport {
        records: data.len(),
        positions,
        loss: loss.into_iter().map(|(k, v)| (k, v / p)).collect(),
        kd: KdBlock {
            teacher_ce: mean("teacher_ce"),
            student_ce: mean("student_ce"),
            fkl: mean("fkl"),
            rkl: mean("rkl"),
            jsd: mean("jsd"),
            kl_tau2_scaled: mean("kl_tau2_scaled"),
            top1_agreement: mean("top1"),
            top_k,
            fkl_top_k: mean("fkl_top_k"),
        },
    })
}

/// One MTA layer pair's values ([`MtaReport`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MtaPairReport {
    /// Teacher hidden-state index.
    pub teacher_layer: usize,
    /// Student hidden-state index.
    pub student_layer: usize,
    /// `words` or `phrases`.
    pub granularity: Granularity,
    /// Units with at least one member token.
    pub units: f64,
    /// Dynamic Structural Alignment.
    pub dsa: f64,
    /// Hidden Representation Alignment.
    pub hra: f64,
    /// `dsa_weight · dsa + hra_weight · hra`.
    pub loss: f64,
}

/// One record's MTA values ([`MtaReport::examples`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MtaExampleReport {
    /// The record's index in its file.
    pub record: usize,
    /// Its `L_MTA`.
    pub mta: f64,
    /// Its pairs.
    pub pairs: Vec<MtaPairReport>,
}

/// MTA's breakdown over a file, measured as ONE batch holding every record (the batch ratios
/// of `distill_objectives::MtaLoss`), and per record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MtaReport {
    /// `L_MTA`.
    pub mta: f64,
    /// Every pair of the schedule.
    pub pairs: Vec<MtaPairReport>,
    /// Every record.
    pub examples: Vec<MtaExampleReport>,
}

/// MTA's breakdown of `student` against `teacher` on `data` (whose units are attached, see
/// [`DistillData::attach_units`]), every record in one batch, on `device` (inference).
///
/// # Errors
/// [`TrainError::Eval`] when the loss rejects its input; [`TrainError::ConfigValue`] when the
/// data carries no units.
pub fn measure_mta(
    student: &LlamaModel,
    teacher: &LlamaModel,
    mta: &MtaLoss,
    data: &DistillData,
    device: &Device,
) -> Result<MtaReport> {
    let refs: Vec<&DistillExample> = data.examples.iter().collect();
    if refs.is_empty() {
        return Err(TrainError::Eval(format!(
            "{}: no record to measure",
            data.path.display()
        )));
    }
    let batch = DistillBatch::new(&refs, device);
    let s_out = student.forward_hidden(batch.input(), false);
    let t_out = teacher.forward(batch.input(), false);
    let confidence = mta.entropy_weighting.then(|| {
        distill_objectives::teacher_confidence(
            t_out.logits.clone().expect("forward returns logits"),
        )
    });
    let [_, seq] = batch.dims();
    let members = |g: Granularity| -> Result<Tensor<3>> {
        let list = refs
            .iter()
            .map(|e| {
                e.units.as_ref().map(|u| u.get(g).clone()).ok_or_else(|| {
                    crate::config::bad("objective.mta", "the data carries no MTA units")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(membership_tensor(&list, seq, device).0)
    };
    let input = MtaInput {
        teacher_hidden: t_out.hidden_states,
        student_hidden: s_out.hidden_states,
        attention_mask: batch.attention_mask.clone().float(),
        words: members(Granularity::Words)?,
        phrases: members(Granularity::Phrases)?,
        teacher_confidence: confidence,
    };
    let err = |e: distill_objectives::DistillError| TrainError::Eval(format!("MTA loss: {e}"));
    let reduced = mta
        .try_forward(input.clone(), Reduction::Mean)
        .map_err(err)?;
    let per = mta.try_forward_no_reduction(input).map_err(err)?;
    let vec = |t: Tensor<1>| -> Vec<f64> {
        t.into_data()
            .try_into_vec_as::<f64>()
            .expect("values read back as f64")
    };
    let pairs = reduced
        .pairs
        .iter()
        .map(|p| MtaPairReport {
            teacher_layer: p.pair.teacher_layer,
            student_layer: p.pair.student_layer,
            granularity: p.pair.granularity,
            units: scalar(p.units.clone()),
            dsa: scalar(p.dsa.clone()),
            hra: scalar(p.hra.clone()),
            loss: scalar(p.loss.clone()),
        })
        .collect();
    let per_pair: Vec<[Vec<f64>; 4]> = per
        .pairs
        .iter()
        .map(|p| {
            [
                vec(p.units.clone()),
                vec(p.dsa.clone()),
                vec(p.hra.clone()),
                vec(p.loss.clone()),
            ]
        })
        .collect();
    let examples = vec(per.loss)
        .into_iter()
        .enumerate()
        .map(|(b, mta_b)| MtaExampleReport {
            record: refs[b].record,
            mta: mta_b,
            pairs: per
                .pairs
                .iter()
                .zip(&per_pair)
                .map(|(p, [units, dsa, hra, loss])| MtaPairReport {
                    teacher_layer: p.pair.teacher_layer,
                    student_layer: p.pair.student_layer,
                    granularity: p.pair.granularity,
                    units: units[b],
                    dsa: dsa[b],
                    hra: hra[b],
                    loss: loss[b],
                })
                .collect(),
        })
        .collect();
    Ok(MtaReport {
        mta: scalar(reduced.loss),
        pairs,
        examples,
    })
}

/// One record's SRA values ([`SraReport::examples`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SraExampleReport {
    /// The record's index in its file.
    pub record: usize,
    /// Its spans.
    pub spans: usize,
    /// Centre-of-mass alignment.
    pub com: f64,
    /// Geometric regularizer (with `γ`).
    pub geo: f64,
    /// Span logit distillation.
    pub logit: f64,
}

/// SRA's breakdown over a file, measured as ONE batch holding every record, and per record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SraReport {
    /// Centre-of-mass alignment (mean over the records).
    pub com: f64,
    /// Geometric regularizer.
    pub geo: f64,
    /// Span logit distillation.
    pub logit: f64,
    /// The student's cross-entropy, the mean over every response position (EOS included).
    pub ce: f64,
    /// `(1 − α)·ce + α·(com + geo + logit)`.
    pub total: f64,
    /// The number of spans of each record.
    pub spans_per_example: Vec<usize>,
    /// Every record.
    pub examples: Vec<SraExampleReport>,
}

/// SRA's breakdown of `student` (over its own tokenizer) against `teacher` on `data` (whose
/// teacher tokens are attached, see [`DistillData::attach_teacher_tokens`]), every record in
/// one batch, on `device` (inference); `alpha` weighs the SRA term against the CE.
///
/// # Errors
/// [`TrainError::Eval`] when the loss rejects its input or the file has no record;
/// [`TrainError::ConfigValue`] when the data carries no teacher tokens.
pub fn measure_sra(
    models: &super::SraModels<'_>,
    sra: &SraLoss,
    alpha: f64,
    data: &DistillData,
    device: &Device,
) -> Result<SraReport> {
    let refs: Vec<&DistillExample> = data.examples.iter().collect();
    if refs.is_empty() {
        return Err(TrainError::Eval(format!(
            "{}: no record to measure",
            data.path.display()
        )));
    }
    let mut teacher_examples = Vec::with_capacity(refs.len());
    let mut spans = Vec::with_capacity(refs.len());
    for e in &refs {
        let cross = e.cross.as_ref().ok_or_else(|| {
            crate::config::bad("objective.sra", "the data carries no teacher tokens")
        })?;
        teacher_examples.push(&cross.teacher);
        spans.push(cross.spans.clone());
    }
    let batch = DistillBatch::new(&refs, device);
    let (ce, input) = super::sra_inputs(
        models,
        &sra.pairs,
        (&batch, &teacher_examples, &spans),
        device,
    )?;
    let err = |e: distill_objectives::DistillError| TrainError::Eval(format!("SRA loss: {e}"));
    let reduced = sra
        .try_forward(input.clone(), Reduction::Mean)
        .map_err(err)?;
    let per = sra.try_forward_no_reduction(input).map_err(err)?;
    let vec = |t: Tensor<1>| -> Vec<f64> {
        t.into_data()
            .try_into_vec_as::<f64>()
            .expect("values read back as f64")
    };
    let (com, geo, logit) = (vec(per.com), vec(per.geo), vec(per.logit));
    let spans_per_example: Vec<usize> = spans.iter().map(Vec::len).collect();
    let examples = refs
        .iter()
        .enumerate()
        .map(|(b, e)| SraExampleReport {
            record: e.record,
            spans: spans_per_example[b],
            com: com[b],
            geo: geo[b],
            logit: logit[b],
        })
        .collect();
    let ce = scalar(ce);
    let sra_value = scalar(reduced.loss);
    Ok(SraReport {
        com: scalar(reduced.com),
        geo: scalar(reduced.geo),
        logit: scalar(reduced.logit),
        ce,
        total: (1.0 - alpha) * ce + alpha * sra_value,
        spans_per_example,
        examples,
    })
}
