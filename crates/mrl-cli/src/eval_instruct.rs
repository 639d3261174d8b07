//! `mrl eval --task instruct`: a decoder answers every instruction of a JSON-lines file once per
//! seed; each answer is scored by ROUGE-L F1 against the reference response (`mrl_eval::rouge`,
//! identical to Python's `rouge_score` with its stemmer), ×100, averaged over the records; the
//! table shows every seed and the mean ± population std over seeds.
//!
//! Protocol (DSKD's test settings, arXiv 2406.17328): the prompt is
//! [`mrl_eval::PROMPT_TEMPLATE`] filled with the instruction, tokenised without special tokens
//! (no BOS); sampling at temperature 1, top-p 1, no top-k, never repeating a 6-gram; at most 256
//! new tokens; generation stops at the model's end-of-sequence token(s). Record `i` of the file
//! is sampled with the seed `SplitMix64::with_stream(seed, i)` draws, so its answer for a seed
//! does not depend on which `--records` range is evaluated.
//!
//! Answers are generated in batches of `--batch-size` (record, seed) rows
//! ([`models::generation::generate_batch`]): every decoding step reads the weights once for the
//! whole batch. The rows are sorted by prompt length (then record, then seed) and cut into
//! batches ([`plan_batches`]), so a batch pads little and its rows depend only on the flags.
//! Each row keeps its own sampler stream, so the batch size changes an answer only through
//! float rounding (the same sums over other shapes, which can flip a sampled token that sits
//! on a boundary); `--batch-size 1` generates every answer alone, exactly as
//! [`models::generation::generate`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use models::generation::{BatchRow, GenerationOptions, SamplingOptions, TextGenerator};
use mrl_common::SplitMix64;
use mrl_eval::instruct::RecordRange;
use mrl_eval::{read_instruct_jsonl, render_prompt, run_instruct, InstructReport};
use serde::Serialize;

use crate::eval::{EvalArgs, Task};
use crate::numeric::SeedList;

/// Default `--seeds` (DSKD evaluates with five: 10, 20, 30, 40, 50).
pub const DEFAULT_SEEDS: [u64; 3] = [10, 20, 30];
/// Default `--temperature`.
pub const DEFAULT_TEMPERATURE: f32 = 1.0;
/// Default `--top-p`.
pub const DEFAULT_TOP_P: f32 = 1.0;
/// Default `--top-k` (0 = off).
pub const DEFAULT_TOP_K: usize = 0;
/// Default `--no-repeat-ngram-size`.
pub const DEFAULT_NO_REPEAT_NGRAM_SIZE: usize = 6;
/// Default `--max-new-tokens`.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;
/// Default `--batch-size` of `--task instruct`: answers generated together.
pub const DEFAULT_BATCH_SIZE: usize = 16;

/// The flags of `--task instruct` (each refused with `--task sts`; the defaults are applied
/// when the task runs).
#[derive(Debug, Default, Args)]
#[command(allow_negative_numbers = true)]
#[command(next_help_heading = "Instruction following (--task instruct)")]
pub struct InstructArgs {
    /// Seeds, one sampled run each, comma separated [default: 10,20,30].
    #[arg(long, value_parser = crate::numeric::seeds)]
    pub seeds: Option<SeedList>,
    /// Sampling temperature, a finite number ≥ 0; 0 = greedy (then every seed gives the same
    /// answers) [default: 1].
    #[arg(long, value_parser = crate::numeric::temperature)]
    pub temperature: Option<f32>,
    /// Nucleus sampling: keep the most likely tokens up to this total probability, in (0, 1]
    /// [default: 1].
    #[arg(long, value_parser = crate::numeric::top_p)]
    pub top_p: Option<f32>,
    /// Sample among the k most likely tokens only; 0 = off [default: 0].
    #[arg(long, value_parser = crate::numeric::non_negative)]
    pub top_k: Option<usize>,
    /// Never repeat an n-gram of this size; 0 = off [default: 6].
    #[arg(long, value_parser = crate::numeric::non_negative)]
    pub no_repeat_ngram_size: Option<usize>,
    /// Upper bound on the tokens of each answer, ≥ 1 [default: 256].
    #[arg(long, value_parser = crate::numeric::positive)]
    pub max_new_tokens: Option<usize>,
    /// Evaluate the records START..END of the file only (0-based, end excluded), e.g. 1900..2000
    /// [default: all].
    #[arg(long)]
    pub records: Option<RecordRange>,
    /// Also write every answer as JSON lines (index, seed, rouge_l, instruction, reference,
    /// prediction) to this file.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
}

impl InstructArgs {
    /// The flags that were given.
    pub fn flags_given(&self) -> Vec<&'static str> {
        [
            ("--seeds", self.seeds.is_some()),
            ("--temperature", self.temperature.is_some()),
            ("--top-p", self.top_p.is_some()),
            ("--top-k", self.top_k.is_some()),
            (
                "--no-repeat-ngram-size",
                self.no_repeat_ngram_size.is_some(),
            ),
            ("--max-new-tokens", self.max_new_tokens.is_some()),
            ("--records", self.records.is_some()),
            ("--predictions", self.predictions.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
    }
}

/// The generation settings of a run, defaults applied and checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationSettings {
    /// Sampling temperature (0 = greedy).
    pub temperature: f32,
    /// Nucleus mass.
    pub top_p: f32,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// No-repeat n-gram size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Upper bound on new tokens.
    pub max_new_tokens: usize,
}

impl GenerationSettings {
    /// The settings of `args`, defaults applied.
    ///
    /// The flags' domains are checked when they are parsed (`crate::numeric`).
    pub fn from_args(args: &InstructArgs) -> Self {
        Self {
            temperature: args.temperature.unwrap_or(DEFAULT_TEMPERATURE),
            top_p: args.top_p.unwrap_or(DEFAULT_TOP_P),
            top_k: args.top_k.unwrap_or(DEFAULT_TOP_K),
            no_repeat_ngram_size: args
                .no_repeat_ngram_size
                .unwrap_or(DEFAULT_NO_REPEAT_NGRAM_SIZE),
            max_new_tokens: args.max_new_tokens.unwrap_or(DEFAULT_MAX_NEW_TOKENS),
        }
    }

    /// The options of one generation with the sampler seeded by `seed`.
    pub fn options(&self, seed: u64) -> GenerationOptions {
        GenerationOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: SamplingOptions {
                temperature: self.temperature,
                top_k: (self.top_k > 0).then_some(self.top_k),
                top_p: (self.top_p < 1.0).then_some(self.top_p),
                no_repeat_ngram_size: self.no_repeat_ngram_size,
            },
            stop_tokens: Vec::new(),
            seed,
        }
    }
}

/// The seed of the sampler for record `index` in the run with `seed`.
pub fn record_seed(seed: u64, index: usize) -> u64 {
    SplitMix64::with_stream(seed, index as u64).next_u64()
}

/// The token ids of the prompt of `instruction`: the template, without special tokens.
pub fn prompt_ids(generator: &TextGenerator, instruction: &str) -> anyhow::Result<Vec<u32>> {
    Ok(generator.plain_ids(&render_prompt(instruction))?)
}

/// One answer to generate: a record (its position among the evaluated records) for a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Position of the record in the evaluated range (0-based).
    pub position: usize,
    /// The run's seed.
    pub seed: u64,
}

/// Every (record, seed) answer, in generation batches of at most `batch_size` rows: sorted by
/// prompt length, then record position, then the order of `seeds`, and cut in that order; so
/// the prompts of a batch differ little in length (little padding), the seeds of a record go
/// together, and the batches depend only on the prompts, the seeds and `batch_size`.
///
/// # Panics
/// If `batch_size` is 0.
pub fn plan_batches(prompt_lengths: &[usize], seeds: &[u64], batch_size: usize) -> Vec<Vec<Job>> {
    assert!(
        batch_size > 0,
        "plan_batches: batch_size must be at least 1"
    );
    let mut jobs: Vec<(usize, usize, usize)> = (0..prompt_lengths.len())
        .flat_map(|position| (0..seeds.len()).map(move |s| (prompt_lengths[position], position, s)))
        .collect();
    jobs.sort_unstable();
    jobs.chunks(batch_size)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&(_, position, s)| Job {
                    position,
                    seed: seeds[s],
                })
                .collect()
        })
        .collect()
}

/// The JSON written by `--json`.
#[derive(Serialize)]
struct InstructJson<'a> {
    model: &'a str,
    task: Task,
    data: String,
    records: RecordRange,
    prompt_template: &'static str,
    generation: &'a GenerationSettings,
    /// Rows per generation batch (answers change with it only through float rounding).
    batch_size: usize,
    /// "population" (ddof = 0).
    std_kind: &'static str,
    seconds_per_record: f64,
    /// New tokens generated per second (stop tokens not counted).
    tokens_per_second: f64,
    #[serde(flatten)]
    report: &'a InstructReport,
}

/// One line of `--predictions`.
#[derive(Serialize)]
struct PredictionLine<'a> {
    index: usize,
    seed: u64,
    rouge_l: f64,
    instruction: &'a str,
    reference: &'a str,
    prediction: &'a str,
}

/// Runs `mrl eval --task instruct`.
pub fn run(args: EvalArgs, data: PathBuf) -> anyhow::Result<()> {
    let mut refused = args.model.encoder_flags_given();
    // `--batch-size` means rows per generation batch here.
    refused.retain(|&flag| flag != "--batch-size");
    if args.dims.is_some() {
        refused.push("--dims");
    }
    if let Some(flag) = refused.first() {
        anyhow::bail!(
            "{flag} applies to the embedding tasks only (--task sts, classification, pair, \
             all: an encoder); --task instruct generates with a decoder"
        );
    }
    let settings = GenerationSettings::from_args(&args.instruct);
    let batch_size = args.model.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    let seeds = args
        .instruct
        .seeds
        .clone()
        .map_or_else(|| DEFAULT_SEEDS.to_vec(), |s| s.0);
    let all = read_instruct_jsonl(&data)?;
    let range = args.instruct.records.unwrap_or(RecordRange {
        start: 0,
        end: all.len(),
    });
    if range.end > all.len() {
        anyhow::bail!(
            "--records {range} is out of range: {} has {} records (indices 0..{})",
            data.display(),
            all.len(),
            all.len()
        );
    }
    let records = &all[range.start..range.end];

    let path = crate::model_args::resolve_decoder(&args.model.model)?;
    let device = args.model.device.device()?;
    let start = Instant::now();
    let generator = TextGenerator::load(&path, &device)
        .with_context(|| format!("loading {}", path.display()))?;
    // Every prompt must leave room for the answer: checked before generating anything.
    let context = generator.context_length();
    let mut prompts = Vec::with_capacity(records.len());
    for (position, record) in records.iter().enumerate() {
        let ids = prompt_ids(&generator, &record.instruction)?;
        if ids.len() + settings.max_new_tokens > context {
            anyhow::bail!(
                "record {} of {}: its prompt has {} tokens, and with --max-new-tokens {} that \
                 exceeds the model's context of {context} tokens (at most {} prompt tokens fit)",
                range.start + position,
                data.display(),
                ids.len(),
                settings.max_new_tokens,
                context.saturating_sub(settings.max_new_tokens)
            );
        }
        prompts.push(ids);
    }
    eprintln!(
        "model {} ({} layers, context {context}) loaded in {:.1} s on {:?}; records {range} of \
         {} ({}), seeds {seeds:?}",
        path.display(),
        generator.config.num_hidden_layers,
        start.elapsed().as_secs_f64(),
        args.model.device,
        data.display(),
        records.len(),
    );

    // Generate every answer, batch by batch, then score them in the usual order.
    let lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let batches = plan_batches(&lengths, &seeds, batch_size);
    let options = settings.options(0);
    let bar = crate::progress::bar(records.len() * seeds.len(), "generating");
    let (mut rouge_sum, mut tokens) = (0.0, 0usize);
    let mut answers: HashMap<(usize, u64), String> = HashMap::new();
    let start = Instant::now();
    for batch in &batches {
        let rows: Vec<BatchRow> = batch
            .iter()
            .map(|job| BatchRow {
                prompt: &prompts[job.position],
                seed: record_seed(job.seed, range.start + job.position),
            })
            .collect();
        let generated = generator
            .generate_batch_from_ids(&rows, &options, |_, _| {
                tokens += 1;
                if tokens % 64 == 0 {
                    bar.set_message(format!(
                        "ROUGE-L {:.2} ({:.1} tokens/s)",
                        rouge_sum / bar.position().max(1) as f64,
                        tokens as f64 / start.elapsed().as_secs_f64()
                    ));
                }
            })
            .with_context(|| {
                let rows: Vec<String> = batch
                    .iter()
                    .map(|j| format!("record {} seed {}", range.start + j.position, j.seed))
                    .collect();
                format!("generating {}", rows.join(", "))
            })?;
        for (job, (text, _)) in batch.iter().zip(generated) {
            rouge_sum += 100.0 * mrl_eval::rouge_l(&text, &records[job.position].response).fmeasure;
            answers.insert((job.position, job.seed), text);
        }
        bar.inc(batch.len() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let seconds_per_record = seconds / (records.len() * seeds.len()) as f64;
    let tokens_per_second = tokens as f64 / seconds;
    let mut report = run_instruct(
        records,
        range.start,
        &seeds,
        |index, _, seed| {
            answers
                .remove(&(index - range.start, seed))
                .ok_or("no answer was generated")
        },
        |_| {},
    )?;

    println!("{:>6}  {:>8}", "seed", "ROUGE-L");
    for s in &report.seeds {
        println!("{:>6}  {:>8.2}", s.seed, s.rouge_l);
    }
    println!("{:>6}  {:>8.2} ± {:.2}", "mean", report.mean, report.std);
    eprintln!(
        "{} records × {} seeds in batches of {batch_size}: {seconds_per_record:.2} s per record, \
         {tokens} new tokens, {tokens_per_second:.1} tokens/s",
        report.n_records,
        report.seeds.len()
    );

    let predictions = std::mem::take(&mut report.predictions);
    if let Some(path) = &args.instruct.predictions {
        let mut text = String::new();
        for p in &predictions {
            let record = &all[p.index];
            let line = PredictionLine {
                index: p.index,
                seed: p.seed,
                rouge_l: p.rouge_l,
                instruction: &record.instruction,
                reference: &record.response,
                prediction: &p.prediction,
            };
            text += &serde_json::to_string(&line)?;
            text.push('\n');
        }
        models::atomic::write_atomic(path, text.as_bytes())?;
        eprintln!(
            "wrote {} predictions to {}",
            predictions.len(),
            path.display()
        );
    }
    if let Some(path) = &args.json {
        let json = InstructJson {
            model: &args.model.model,
            task: Task::Instruct,
            data: data.display().to_string(),
            records: range,
            prompt_template: mrl_eval::PROMPT_TEMPLATE,
            generation: &settings,
            batch_size,
            std_kind: "population",
            seconds_per_record,
            tokens_per_second,
            report: &report,
        };
        crate::output::write_json(path, "--json", &json)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ranges_parse_and_reject_nonsense() {
        assert_eq!(
            "1900..2000".parse::<RecordRange>(),
            Ok(RecordRange {
                start: 1900,
                end: 2000
            })
        );
        assert_eq!("0..1".parse::<RecordRange>().unwrap().to_string(), "0..1");
        for bad in ["1900", "a..b", "5..5", "7..3", "-1..4", "1..=4"] {
            let err = bad.parse::<RecordRange>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_are_dskd_test_settings_and_bad_values_are_refused() {
        let settings = GenerationSettings::from_args(&InstructArgs::default());
        assert_eq!(
            settings,
            GenerationSettings {
                temperature: 1.0,
                top_p: 1.0,
                top_k: 0,
                no_repeat_ngram_size: 6,
                max_new_tokens: 256,
            }
        );
        // top-k 0 and top-p 1 mean "off".
        let options = settings.options(5);
        assert_eq!(options.sampling.top_k, None);
        assert_eq!(options.sampling.top_p, None);
        assert_eq!(options.seed, 5);
        #[derive(Debug, clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: InstructArgs,
        }
        use clap::Parser;
        for (flag, value) in [
            ("--temperature", "-1"),
            ("--temperature", "nan"),
            ("--top-p", "0"),
            ("--max-new-tokens", "0"),
            ("--seeds", "10,10"),
            ("--top-k", "-3"),
        ] {
            let err = Wrapper::try_parse_from(["instruct", flag, value])
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag) && err.contains(value), "{err}");
        }
    }

    #[test]
    fn record_seeds_differ_per_record_and_seed() {
        let seeds: Vec<u64> = [(10, 0), (10, 1), (20, 0), (20, 1)]
            .into_iter()
            .map(|(s, i)| record_seed(s, i))
            .collect();
        for i in 0..seeds.len() {
            for j in 0..i {
                assert_ne!(seeds[i], seeds[j]);
            }
        }
        assert_eq!(record_seed(10, 1), record_seed(10, 1));
    }

    #[test]
    fn batches_group_similar_prompt_lengths_and_cover_every_answer_once() {
        // Records 0..4 with prompt lengths 9, 3, 9, 5; seeds 20, 10 (in that order).
        let lengths = [9, 3, 9, 5];
        let job = |position, seed| Job { position, seed };
        let batches = plan_batches(&lengths, &[20, 10], 3);
        assert_eq!(
            batches,
            [
                vec![job(1, 20), job(1, 10), job(3, 20)],
                vec![job(3, 10), job(0, 20), job(0, 10)],
                vec![job(2, 20), job(2, 10)],
            ]
        );
        // Batch size 1: one answer per batch, same order; a large batch size: one batch.
        let flat: Vec<Job> = batches.concat();
        assert_eq!(plan_batches(&lengths, &[20, 10], 1).concat(), flat);
        assert!(plan_batches(&lengths, &[20, 10], 1)
            .iter()
            .all(|b| b.len() == 1));
        assert_eq!(plan_batches(&lengths, &[20, 10], 100), vec![flat.clone()]);
        // Every (record, seed) exactly once, for any batch size.
        for size in 1..=9 {
            let mut all = plan_batches(&lengths, &[20, 10], size).concat();
            assert!(all.iter().all(|j| j.position < 4));
            all.sort_by_key(|j| (j.position, j.seed));
            all.dedup();
            assert_eq!(all.len(), 8, "batch size {size}");
        }
    }

    #[test]
    #[should_panic(expected = "batch_size must be at least 1")]
    fn a_zero_batch_size_is_refused() {
        plan_batches(&[1], &[1], 0);
    }

    /// The tiny random Llama's tokenizer appends `</s>` to every text it encodes with special
    /// tokens (its post-processor is `$A </s>`): the instruction prompt must not get it.
    #[test]
    fn the_prompt_has_no_special_tokens() {
        let tmp = test_support::TempDir::new("instruct-prompt");
        #[allow(deprecated)]
        let device = burn::tensor::Device::ndarray();
        let shape = tiny_models::ModelShape::new(16, 1, 2, 32, 256);
        tiny_models::write_random_model(tmp.path(), tiny_models::Arch::Llama, &shape, 1, &device)
            .unwrap();
        let generator = TextGenerator::load(tmp.path(), &device).unwrap();
        let with_special = generator.prompt_ids("a man", false).unwrap();
        assert_eq!(with_special.last(), Some(&2), "{with_special:?}");
        let ids = prompt_ids(&generator, "a man").unwrap();
        assert!(!ids.contains(&1) && !ids.contains(&2), "{ids:?}");
        // The template's words come first: "###" is not in the tiny vocabulary (unknown, id
        // 0), and the instruction's words are in the middle.
        let words = generator.plain_ids("a man").unwrap();
        assert!(
            ids.windows(2).any(|w| w == words.as_slice()),
            "{ids:?} {words:?}"
        );
    }
}
