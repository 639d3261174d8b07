//! Distillation examples: instruction records rendered as
//! [`PROMPT_TEMPLATE`](mrl_eval::instruct::PROMPT_TEMPLATE) + response + EOS, tokenized
//! without special tokens (no BOS), truncated to `max_length`, with a mask of the response
//! tokens (the prompt is masked out of every loss).
//!
//! A token belongs to the response when its first **character** (the tokenizer's char
//! offsets, not bytes: Dolly has "•" and curly quotes) is at or after the end of the prompt.

use std::ops::Range;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use distill_objectives::{
    shared_spans, unit_membership, AlignedSpan, Chunker, Granularity, Membership, Units,
};
use models::LlamaInput;
use mrl_eval::instruct::{render_prompt, InstructRecord};
use tokenizers::Tokenizer;

use crate::error::{Result, TrainError};

/// One tokenized record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistillExample {
    /// The record's 0-based index in its file.
    pub record: usize,
    /// Token ids, prompt then response then EOS (unless truncated), at most `max_length`.
    pub ids: Vec<u32>,
    /// `true` for a response token (EOS included), `false` for a prompt token.
    pub response: Vec<bool>,
    /// Character offsets `[start, end)` of every token in the rendered text (EOS: the end of
    /// the text, empty).
    pub offsets: Vec<(usize, usize)>,
    /// Whether the last token is the appended EOS (`false` when truncation cut it off).
    pub has_eos: bool,
    /// MTA's word and phrase units over these tokens (see [`DistillData::attach_units`]).
    pub units: Option<Box<ExampleUnits>>,
    /// The teacher's own tokenization of the same text and the spans both share, when the
    /// teacher's tokenizer is not the student's (see [`DistillData::attach_teacher_tokens`]).
    pub cross: Option<Box<CrossTokens>>,
}

/// The teacher's tokenization of an example's text, for cross-tokenizer distillation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossTokens {
    /// The same record tokenized by the teacher's tokenizer, with the teacher's EOS (its
    /// `units` and `cross` are `None`).
    pub teacher: DistillExample,
    /// The spans shared by the two tokenizations of the response ([`shared_spans`]: response
    /// tokens of each side, the appended EOS excluded).
    pub spans: Vec<AlignedSpan>,
    /// MTA's units over the teacher's tokens (see [`DistillData::attach_units`]): unit `u` of
    /// a granularity here is unit `u` of the example's own [`DistillExample::units`].
    pub units: Option<Box<ExampleUnits>>,
}

/// The tokens of each word and phrase unit of one example (MTA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleUnits {
    /// Word units.
    pub words: Membership,
    /// Phrase units.
    pub phrases: Membership,
}

impl ExampleUnits {
    /// The units of `granularity`.
    pub fn get(&self, granularity: Granularity) -> &Membership {
        match granularity {
            Granularity::Words => &self.words,
            Granularity::Phrases => &self.phrases,
        }
    }
}

impl DistillExample {
    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens (never, for an example built here).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The next-token positions `t` (`0..len − 1`) whose target `ids[t + 1]` is a response
    /// token: where the losses are counted.
    pub fn target_positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len().saturating_sub(1)).filter(|&t| self.response[t + 1])
    }

    /// The number of counted next-token positions.
    pub fn num_targets(&self) -> usize {
        self.target_positions().count()
    }

    /// Per token: a response token that is not the appended EOS — the tokens units and spans
    /// may hold.
    pub fn unit_eligible(&self) -> Vec<bool> {
        let last = self.len() - 1;
        self.response
            .iter()
            .enumerate()
            .map(|(j, &r)| r && !(self.has_eos && j == last))
            .collect()
    }
}

/// Tokenized records of one JSONL file.
#[derive(Debug, Clone)]
pub struct DistillData {
    /// The file.
    pub path: PathBuf,
    /// Which of its records.
    pub records: Range<usize>,
    /// One per record kept.
    pub examples: Vec<DistillExample>,
    /// Records left out because their prompt alone fills `max_length` (only with
    /// `skip_long_prompts`; otherwise such a record is an error).
    pub skipped: Vec<usize>,
}

impl DistillData {
    /// Reads `path` (JSONL `{"instruction", "response"}`), keeps `records` (all when `None`)
    /// and tokenizes them.
    ///
    /// # Errors
    /// [`TrainError::Records`] for a missing file or a malformed line (its number);
    /// [`TrainError::ConfigValue`] naming `key` for a range beyond the file;
    /// [`TrainError::Data`] for a record whose prompt does not leave room for a response
    /// token within `max_length`, unless `skip_long_prompts` (then it is listed in
    /// [`DistillData::skipped`]).
    pub fn load(
        path: &Path,
        records: Option<Range<usize>>,
        key: &str,
        tokenizer: &Tokenizer,
        eos: u32,
        max_length: usize,
        skip_long_prompts: bool,
    ) -> Result<Self> {
        let all = mrl_eval::instruct::read_instruct_jsonl(path)?;
        let records = records.unwrap_or(0..all.len());
        if records.end > all.len() {
            return Err(crate::config::bad(
                key,
                format!(
                    "records {}..{} asked, {} has {} records",
                    records.start,
                    records.end,
                    path.display(),
                    all.len()
                ),
            ));
        }
        let mut examples = Vec::with_capacity(records.len());
        let mut skipped = Vec::new();
        for i in records.clone() {
            match tokenize_record(&all[i], i, tokenizer, eos, max_length, path) {
                Ok(e) => examples.push(e),
                Err(TrainError::Data { .. })
                    if skip_long_prompts && prompt_too_long(&all[i], tokenizer, max_length) =>
                {
                    skipped.push(i);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            records,
            examples,
            skipped,
        })
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Counted next-token positions over every example.
    pub fn num_targets(&self) -> usize {
        self.examples.iter().map(DistillExample::num_targets).sum()
    }

    /// Finds every example's MTA units: the record's own `"units"` when it has them
    /// (`{"words": [[s, e], …], "phrases": [[s, e], …]}`, character offsets into the response,
    /// used as given), otherwise `chunker`'s; then the tokens of each unit
    /// ([`unit_membership`]: response tokens inside the unit, the appended EOS excluded). With
    /// the teacher's tokens attached ([`DistillData::attach_teacher_tokens`], first), the
    /// teacher's tokens of each unit too, keeping the units that have tokens on both sides.
    ///
    /// # Errors
    /// [`TrainError::Data`] naming the record (and its line) for malformed or invalid units
    /// (offsets past the response, start > end, unsorted), or a file that changed since loading.
    pub fn attach_units(&mut self, chunker: &dyn Chunker) -> Result<()> {
        let records = mrl_eval::instruct::read_instruct_jsonl(&self.path)?;
        let given = read_given_units(&self.path)?;
        if given.len() != records.len() {
            return Err(TrainError::Data {
                path: self.path.clone(),
                line: 0,
                message: "the file changed while it was read".into(),
            });
        }
        for example in &mut self.examples {
            let index = example.record;
            let (line, given) = &given[index];
            let record = &records[index];
            let data_err = |message: String| TrainError::Data {
                path: self.path.clone(),
                line: *line,
                message: format!("record {index}: {message}"),
            };
            let units = match given {
                Some(units) => units.clone(),
                None => chunker.units(&record.response),
            };
            units
                .validate(record.response.chars().count())
                .map_err(|e| data_err(format!("units: {e}")))?;
            let prompt_chars = render_prompt(&record.instruction).chars().count();
            let eligible = example.unit_eligible();
            let membership = |offsets: &[(usize, usize)], eligible: &[bool], g: Granularity| {
                unit_membership(offsets, eligible, prompt_chars, units.get(g))
                    .map_err(|e| data_err(format!("{} units: {e}", g.name())))
            };
            let words = membership(&example.offsets, &eligible, Granularity::Words)?;
            let phrases = membership(&example.offsets, &eligible, Granularity::Phrases)?;
            match example.cross.as_mut() {
                None => example.units = Some(Box::new(ExampleUnits { words, phrases })),
                Some(cross) => {
                    let t_eligible = cross.teacher.unit_eligible();
                    let offsets = &cross.teacher.offsets;
                    let t_words = membership(offsets, &t_eligible, Granularity::Words)?;
                    let t_phrases = membership(offsets, &t_eligible, Granularity::Phrases)?;
                    let (words, t_words) = common_units(words, t_words);
                    let (phrases, t_phrases) = common_units(phrases, t_phrases);
                    example.units = Some(Box::new(ExampleUnits { words, phrases }));
                    cross.units = Some(Box::new(ExampleUnits {
                        words: t_words,
                        phrases: t_phrases,
                    }));
                }
            }
        }
        Ok(())
    }

    /// The teacher's side of cross-tokenizer data: each example's teacher tokenization (see
    /// [`DistillData::attach_teacher_tokens`]) as the examples, same file and records.
    ///
    /// # Panics
    /// If an example carries no teacher tokens.
    pub fn teacher_side(&self) -> DistillData {
        DistillData {
            path: self.path.clone(),
            records: self.records.clone(),
            examples: self
                .examples
                .iter()
                .map(|e| {
                    e.cross
                        .as_ref()
                        .expect("teacher_side: cross-tokenizer data carries teacher tokens")
                        .teacher
                        .clone()
                })
                .collect(),
            skipped: self.skipped.clone(),
        }
    }

    /// Tokenizes every example's text again with the teacher's `tokenizer` (same template,
    /// the teacher's `eos`, truncated to `max_length`) and finds the spans the two
    /// tokenizations share ([`shared_spans`] over character offsets), for cross-tokenizer
    /// distillation. A record whose prompt fills `max_length` in the teacher's tokens is
    /// dropped into [`DistillData::skipped`] with `skip_long_prompts`, an error otherwise.
    ///
    /// # Errors
    /// [`TrainError::Data`] naming the record for a tokenizer failure or a prompt too long,
    /// or a file that changed since loading.
    pub fn attach_teacher_tokens(
        &mut self,
        tokenizer: &Tokenizer,
        eos: u32,
        max_length: usize,
        skip_long_prompts: bool,
    ) -> Result<()> {
        let records = mrl_eval::instruct::read_instruct_jsonl(&self.path)?;
        let mut kept = Vec::with_capacity(self.examples.len());
        for mut example in std::mem::take(&mut self.examples) {
            let index = example.record;
            let Some(record) = records.get(index) else {
                return Err(TrainError::Data {
                    path: self.path.clone(),
                    line: 0,
                    message: "the file changed while it was read".into(),
                });
            };
            let teacher =
                match tokenize_record(record, index, tokenizer, eos, max_length, &self.path) {
                    Ok(t) => t,
                    Err(TrainError::Data { .. })
                        if skip_long_prompts && prompt_too_long(record, tokenizer, max_length) =>
                    {
                        self.skipped.push(index);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            let spans = shared_spans(
                &teacher.offsets,
                &teacher.unit_eligible(),
                &example.offsets,
                &example.unit_eligible(),
            )
            .map_err(|e| TrainError::Data {
                path: self.path.clone(),
                line: index + 1,
                message: format!("record {index}: shared spans: {e}"),
            })?;
            example.cross = Some(Box::new(CrossTokens {
                teacher,
                spans,
                units: None,
            }));
            kept.push(example);
        }
        self.skipped.sort_unstable();
        self.examples = kept;
        Ok(())
    }
}

/// The units kept on both sides (by their index in the unit list), in the same order.
fn common_units(a: Membership, b: Membership) -> (Membership, Membership) {
    let keep = |m: Membership, other: &Membership| {
        let mut out = Membership::default();
        for (tokens, kept) in m.units.into_iter().zip(m.kept) {
            if other.kept.binary_search(&kept).is_ok() {
                out.units.push(tokens);
                out.kept.push(kept);
            }
        }
        out
    };
    let a2 = keep(a, &b);
    let b2 = keep(b, &a2);
    (a2, b2)
}

/// Every record's `"units"` (if any) with its 1-based line, in record order (blank lines
/// skipped, as [`mrl_eval::instruct::read_instruct_jsonl`] does, through the same
/// [`mrl_eval::instruct::jsonl_lines`]).
fn read_given_units(path: &Path) -> Result<Vec<(usize, Option<Units>)>> {
    let text = std::fs::read_to_string(path).map_err(crate::error::io_err(path))?;
    let mut out = Vec::new();
    for (number, line) in mrl_eval::instruct::jsonl_lines(&text) {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| TrainError::Data {
                path: path.to_path_buf(),
                line: number,
                message: format!("not JSON: {e}"),
            })?;
        let units =
            match value.get("units") {
                None | Some(serde_json::Value::Null) => None,
                Some(u) => Some(serde_json::from_value::<Units>(u.clone()).map_err(|e| {
                    TrainError::Data {
                        path: path.to_path_buf(),
                        line: number,
                        message: format!(
                            "record {}: `units` must be {{\"words\": [[start, end], …], \
                         \"phrases\": [[start, end], …]}} (character offsets into the \
                         response): {e}",
                            out.len()
                        ),
                    }
                })?),
            };
        out.push((number, units));
    }
    Ok(out)
}

/// Whether the prompt of `record` alone fills `max_length` tokens.
fn prompt_too_long(record: &InstructRecord, tokenizer: &Tokenizer, max_length: usize) -> bool {
    tokenizer
        .encode(render_prompt(&record.instruction).as_str(), false)
        .is_ok_and(|e| e.len() >= max_length)
}

/// Tokenizes one record (see the [module docs](self)); `index` and `path` name it in errors.
///
/// # Errors
/// [`TrainError::Data`] when the tokenizer fails or when the prompt alone fills `max_length`.
pub fn tokenize_record(
    record: &InstructRecord,
    index: usize,
    tokenizer: &Tokenizer,
    eos: u32,
    max_length: usize,
    path: &Path,
) -> Result<DistillExample> {
    let data_err = |message: String| TrainError::Data {
        path: path.to_path_buf(),
        line: index + 1,
        message,
    };
    let prompt = render_prompt(&record.instruction);
    let prompt_chars = prompt.chars().count();
    let text = format!("{prompt}{}", record.response);
    let encoding = tokenizer
        .encode_char_offsets(text.as_str(), false)
        .map_err(|e| data_err(format!("record {index}: tokenizer: {e}")))?;
    let mut ids = encoding.get_ids().to_vec();
    let mut offsets = encoding.get_offsets().to_vec();
    let mut response: Vec<bool> = offsets.iter().map(|&(s, _)| s >= prompt_chars).collect();
    let prompt_tokens = response.iter().take_while(|r| !**r).count();
    let text_chars = text.chars().count();
    let has_eos = ids.len() < max_length;
    ids.push(eos);
    offsets.push((text_chars, text_chars));
    response.push(true);
    if prompt_tokens >= max_length {
        return Err(data_err(format!(
            "record {index}: the prompt alone is {prompt_tokens} tokens, which leaves no room for \
             the response within data.max_length = {max_length} (raise it, pick other records, \
             or set data.skip_long_prompts = true)"
        )));
    }
    ids.truncate(max_length);
    offsets.truncate(max_length);
    response.truncate(max_length);
    Ok(DistillExample {
        record: index,
        ids,
        response,
        offsets,
        has_eos,
        units: None,
        cross: None,
    })
}

/// A padded batch on a device: inputs for the decoder and the aligned next-token targets.
///
/// # Shapes
/// - `input_ids`, `attention_mask`: `[batch, seq]` (right padding)
/// - `targets`, `target_mask`: `[batch, seq − 1]`: `targets[b, t] = input_ids[b, t + 1]`,
///   `target_mask[b, t] = 1` where that target is a response token
#[derive(Debug, Clone)]
pub struct DistillBatch {
    /// Token ids, padded with 0.
    pub input_ids: Tensor<2, Int>,
    /// 1 for a real token.
    pub attention_mask: Tensor<2, Int>,
    /// Next-token targets.
    pub targets: Tensor<2, Int>,
    /// 1.0 where the target counts.
    pub target_mask: Tensor<2>,
    /// Real tokens in the batch.
    pub tokens: usize,
    /// Counted target positions.
    pub targets_counted: usize,
    /// The counted positions in batch order: `(b·seq + t, input_ids[b, t + 1])`, the row of the
    /// decoder's `[batch·seq, hidden]` states that predicts a counted target, and that target.
    counted: Vec<(i64, i64)>,
}

/// The counted next-token positions of a [`DistillBatch`] packed into one row, so that the
/// output head and the loss run only where a target counts (the prompt and the padding would
/// otherwise take most of a batch's `[positions, vocab]` work).
///
/// # Shapes
/// - `rows`: `[M]`, rows of the decoder's last hidden states reshaped to `[batch·seq, hidden]`
/// - `targets`: `[1, M]`; `mask`: `[1, M]`, all ones
#[derive(Debug, Clone)]
pub struct PackedTargets {
    /// Which hidden-state rows predict a counted target, in batch order.
    pub rows: Tensor<1, Int>,
    /// The targets of those rows.
    pub targets: Tensor<2, Int>,
    /// Ones: every packed position counts.
    pub mask: Tensor<2>,
}

impl DistillBatch {
    /// Pads `examples` to the longest one.
    ///
    /// # Panics
    /// If `examples` is empty or an example has fewer than two tokens.
    pub fn new(examples: &[&DistillExample], device: &Device) -> Self {
        assert!(!examples.is_empty(), "a batch needs at least one example");
        let seq = examples.iter().map(|e| e.len()).max().expect("non-empty");
        assert!(seq >= 2, "examples need at least two tokens, got {seq}");
        let batch = examples.len();
        let mut ids = vec![0i64; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        let mut targets = vec![0i64; batch * (seq - 1)];
        let mut target_mask = vec![0f32; batch * (seq - 1)];
        let mut counted = Vec::new();
        for (b, e) in examples.iter().enumerate() {
            for (t, &id) in e.ids.iter().enumerate() {
                ids[b * seq + t] = i64::from(id);
                mask[b * seq + t] = 1;
                if t > 0 {
                    targets[b * (seq - 1) + t - 1] = i64::from(id);
                    if e.response[t] {
                        target_mask[b * (seq - 1) + t - 1] = 1.0;
                        counted.push(((b * seq + t - 1) as i64, i64::from(id)));
                    }
                }
            }
        }
        let tokens = examples.iter().map(|e| e.len()).sum();
        let targets_counted = counted.len();
        Self {
            input_ids: Tensor::from_data(TensorData::new(ids, [batch, seq]), device),
            attention_mask: Tensor::from_data(TensorData::new(mask, [batch, seq]), device),
            targets: Tensor::from_data(TensorData::new(targets, [batch, seq - 1]), device),
            target_mask: Tensor::from_data(TensorData::new(target_mask, [batch, seq - 1]), device),
            tokens,
            targets_counted,
            counted,
        }
    }

    /// `[batch, seq]`.
    pub fn dims(&self) -> [usize; 2] {
        self.input_ids.dims()
    }

    /// The decoder's input: the ids and the attention mask.
    pub fn input(&self) -> LlamaInput {
        LlamaInput {
            input_ids: self.input_ids.clone(),
            attention_mask: self.attention_mask.clone(),
        }
    }

    /// The counted positions packed into one row, on `device`; `None` when no target counts.
    pub fn packed(&self, device: &Device) -> Option<PackedTargets> {
        let m = self.counted.len();
        if m == 0 {
            return None;
        }
        let (rows, targets): (Vec<i64>, Vec<i64>) = self.counted.iter().copied().unzip();
        Some(PackedTargets {
            rows: Tensor::from_data(TensorData::new(rows, [m]), device),
            targets: Tensor::from_data(TensorData::new(targets, [1, m]), device),
            mask: Tensor::ones([1, m], device),
        })
    }
}
