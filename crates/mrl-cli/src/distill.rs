//! `mrl distill`: distil a Llama-family teacher into a student from a TOML config — train
//! (with the shared loop: checkpoints, `--resume`, the NaN guard, a progress bar with the loss
//! breakdown and tokens/s), `cache` (run the teacher once and store its top-k targets) or
//! `--eval-only` (measure teacher and student on a file without training).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use training::distill::cache::{write_cache, CacheOutcome};
use training::distill::{
    eos_token, load_student, load_tokenizer, measure::Measure, resolve_teacher, DistillConfig,
    DistillData, DistillEval, DistillTask,
};
use training::StepReport;

use crate::progress::{bar, TrainProgress};

/// Arguments of `mrl distill`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DistillArgs {
    /// Write the teacher cache instead of training.
    #[command(subcommand)]
    pub command: Option<DistillCommand>,
    /// The TOML config (see `configs/kd-smollm2.toml`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue from the newest checkpoint in `<output_dir>/checkpoints`.
    #[arg(long)]
    pub resume: bool,
    /// Override a config key, e.g. `--set training.steps=50` (repeatable; TOML values);
    /// `--set key=` removes the key.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Stop after this many steps, at least 1 (a checkpoint is written; continue with
    /// `--resume`).
    #[arg(long, value_parser = crate::numeric::positive_u64)]
    pub stop_after: Option<u64>,
    /// Do not export the student at the end.
    #[arg(long)]
    pub no_export: bool,
    /// Run no step: measure the config's (untrained) student against the live teacher on
    /// `--data` and print the loss breakdown and the cross-entropies and divergences.
    #[arg(long, requires = "data")]
    pub eval_only: bool,
    /// With `--eval-only`: the JSONL file to measure (every record).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With `--eval-only`: also write the report as JSON to this file.
    #[arg(long, requires = "eval_only")]
    pub json: Option<PathBuf>,
}

/// `mrl distill cache`.
#[derive(Debug, Subcommand)]
pub enum DistillCommand {
    /// Run the teacher once over the config's training (and `[eval]`) records and store what
    /// the objective reads in `[cache] dir`: KD, its top-k next-token log-probabilities and
    /// tail mass; SRA, its aligned layers' hidden states and centre-of-mass weights.
    #[command(allow_negative_numbers = true)]
    Cache(CacheArgs),
}

/// Arguments of `mrl distill cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// The TOML config; its `[cache]` section says where and how many tokens to keep.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config key (as for training).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Replace a cache that exists but does not match the config.
    #[arg(long)]
    pub force: bool,
    /// Records per teacher forward pass, ≥ 1.
    #[arg(long, default_value_t = 8, value_parser = crate::numeric::positive)]
    pub batch_size: usize,
}

/// Runs `mrl distill`.
pub fn run(args: DistillArgs) -> anyhow::Result<()> {
    if let Some(DistillCommand::Cache(cache)) = args.command {
        return run_cache(cache);
    }
    let config_path = args
        .config
        .clone()
        .context("--config is required (e.g. --config configs/kd-smollm2.toml)")?;
    let config = DistillConfig::from_file(&config_path, &args.overrides)?;
    if args.eval_only {
        return run_eval_only(&args, config);
    }
    let wall = Instant::now();
    let device = config.device.device()?;
    let mut trainer = if args.resume {
        DistillTask::resume(config, &device)?
    } else {
        DistillTask::trainer(config, &device)?
    };
    let config = trainer.task().config().clone();
    let out_dir = config.output_dir();
    {
        let task = trainer.task();
        let (s, t) = (task.student_config(), task.teacher_config());
        eprintln!(
            "teacher {} ({} layers, hidden {}; {}); student {} layers, hidden {}, {} head; {} on \
             {} records ({} response positions) from {}; {} steps of batch {} (starting at {}); \
             device {:?}; output {}",
            task.teacher_path().display(),
            t.num_hidden_layers,
            t.hidden_size,
            task.teacher_kind(),
            s.num_hidden_layers,
            s.hidden_size,
            if s.tie_word_embeddings {
                "tied"
            } else {
                "untied"
            },
            objective_name(&config),
            task.train_data().len(),
            task.train_data().num_targets(),
            config.data.path,
            trainer.total_steps(),
            config.training.batch_size,
            trainer.step(),
            config.device,
            out_dir.display()
        );
        if !task.train_data().skipped.is_empty() {
            eprintln!(
                "skipped training records {:?}: their prompt alone fills data.max_length = {}",
                task.train_data().skipped,
                config.data.max_length
            );
        }
    }
    let mut progress = TrainProgress::new(summarize, describe_eval, Some("tokens"));
    let until = args.stop_after.map(|n| trainer.step() + n as usize);
    let summary = trainer.run(&mut progress, until)?;
    progress.finish();
    let seconds = summary.train_seconds.max(1e-9);
    eprintln!(
        "{} steps in {:.1} s of training ({:.3} steps/s, {:.0} tokens/s); step {}/{}",
        summary.steps_run,
        summary.train_seconds,
        summary.steps_run as f64 / seconds,
        summary.items as f64 / seconds,
        trainer.step(),
        trainer.total_steps()
    );
    if trainer.step() < trainer.total_steps() {
        let overrides: String = args
            .overrides
            .iter()
            .map(|o| format!(" --set {}", crate::train::shell_quote(o)))
            .collect();
        eprintln!(
            "stopped early; continue with `mrl distill --config {}{overrides} --resume`",
            crate::train::shell_quote(&config_path.display().to_string())
        );
        return Ok(());
    }
    if let Some(before) = &summary.before {
        println!("{}", describe_eval(0, before));
    }
    if let Some((step, after)) = summary.evals.last() {
        println!("{}", describe_eval(*step, after));
    }
    if !args.no_export {
        let dir = out_dir.join("student");
        trainer.task().export(trainer.model(), &dir)?;
        eprintln!(
            "exported {} (Hugging Face layout; `mrl eval --task instruct --model {}`)",
            dir.display(),
            dir.display()
        );
    }
    eprintln!("wall time {:.1} s", wall.elapsed().as_secs_f64());
    Ok(())
}

fn objective_name(config: &DistillConfig) -> String {
    let o = &config.objective;
    if o.alpha == 0.0 {
        return "SFT (α = 0: cross-entropy only)".into();
    }
    if let Some(sra) = o.sra() {
        return format!(
            "(1 − {a})·CE + {a}·SRA (centres of mass over {} layer pair(s), γ = {}, span logits \
             at τ = {}), across tokenizers",
            sra.pairs.len(),
            sra.geo_weight,
            sra.temperature,
            a = o.alpha
        );
    }
    match o.kind {
        training::distill::ObjectiveKind::Uld => {
            return format!("(1 − {a})·CE + {a}·ULD, across tokenizers", a = o.alpha)
        }
        training::distill::ObjectiveKind::MtaCross => {
            let mta = o.mta_cross().unwrap_or_default();
            return format!(
                "(1 − {a})·CE + {a}·{}·MTA over {} layer pairs, across tokenizers",
                mta.lambda,
                mta.pairs.len(),
                a = o.alpha
            );
        }
        training::distill::ObjectiveKind::DskdCma => {
            return format!(
            "(1 − {a})·CE + {a}·DSKD-CMA (t2s CE + t2s KD + s2t KL at τ = {}), across tokenizers",
            o.temperature,
            a = o.alpha
        )
        }
        training::distill::ObjectiveKind::Mined => {
            return format!(
                "(1 − {a})·CE + {a}·MinED at τ = {}, across tokenizers",
                o.temperature,
                a = o.alpha
            )
        }
        _ => {}
    }
    let kd = format!(
        "{} at τ = {}{}",
        o.divergence().name(),
        o.temperature,
        if o.temperature_squared { " ×τ²" } else { "" },
    );
    match o.mta() {
        Some(mta) => format!(
            "(1 − {a})·CE + {a}·({kd} + {}·MTA over {} layer pairs)",
            mta.lambda,
            mta.pairs.len(),
            a = o.alpha
        ),
        None => format!("(1 − {a})·CE + {a}·{kd}", a = o.alpha),
    }
}

/// `loss 3.41 ce 4.20 kd 2.62`.
fn summarize(report: &StepReport) -> String {
    let mut parts = vec![format!("loss {:.4}", report.loss())];
    for (name, v) in report.terms.iter().skip(1) {
        if ["ce", "kd", "mta", "sra", "uld", "mined", "dskd_cma"].contains(&name.as_str()) {
            parts.push(format!("{name} {v:.3}"));
        }
    }
    parts.join(" ")
}

fn describe_eval(step: usize, eval: &DistillEval) -> String {
    let kd = eval.kd.map(|k| format!(" kd {k:.4}")).unwrap_or_default();
    let mta = eval.mta.map(|m| format!(" mta {m:.4}")).unwrap_or_default();
    let cross = [
        ("sra", eval.sra),
        ("uld", eval.uld),
        ("mined", eval.mined),
        ("dskd_cma", eval.dskd_cma),
    ]
    .iter()
    .filter_map(|(name, v)| v.map(|v| format!(" {name} {v:.4}")))
    .collect::<String>();
    format!(
        "dev after {step} steps: loss {:.4} ce {:.4}{kd}{mta}{cross} ({} positions)",
        eval.loss, eval.ce, eval.positions
    )
}

/// `mrl distill cache`.
fn run_cache(args: CacheArgs) -> anyhow::Result<()> {
    let config = DistillConfig::from_file(&args.config, &args.overrides)?;
    let start = Instant::now();
    let progress = bar(0, "teacher");
    let outcome = write_cache(&config, args.batch_size, args.force, |done, total| {
        progress.set_length(total as u64);
        progress.set_position(done as u64);
    })?;
    progress.finish_and_clear();
    let dir = config.cache_dir().expect("write_cache checked [cache]");
    match outcome {
        CacheOutcome::UpToDate => eprintln!("{} is up to date", dir.display()),
        CacheOutcome::Written {
            manifest,
            records,
            positions,
            bytes,
        } => eprintln!(
            "wrote {}: {records} records, {positions} {}, {} shards, {:.1} MB, in {:.1} s",
            dir.display(),
            if manifest.key.top_k > 0 {
                format!(
                    "positions, top-{} at τ = {}",
                    manifest.key.top_k, manifest.key.temperature
                )
            } else {
                format!(
                    "response tokens, hidden states {:?} with their centre-of-mass weights",
                    manifest.key.hidden_layers
                )
            },
            manifest
                .parts
                .values()
                .map(|p| p.shards.len())
                .sum::<usize>(),
            bytes as f64 / 1e6,
            start.elapsed().as_secs_f64()
        ),
    }
    Ok(())
}

/// `mrl distill --eval-only` with `kind = "sra"`: SRA's breakdown, every record of `--data` in
/// one batch.
fn run_eval_only_sra(args: &DistillArgs, config: DistillConfig) -> anyhow::Result<()> {
    let data_path = args.data.clone().expect("clap requires --data");
    let section = config.objective.sra().expect("kind = sra");
    let teacher_path = resolve_teacher(&config.teacher.path)?;
    let device = config.device.device()?;
    let (teacher_config, teacher) =
        models::LlamaModel::from_pretrained(&teacher_path, models::LayerSelection::All, &device)
            .with_context(|| format!("loading the teacher {}", teacher_path.display()))?;
    let (student_config, student) = load_student(&config, &teacher_path, &teacher_config, &device)?;
    let teacher_tokenizer = load_tokenizer(&teacher_path)?;
    let (student_tokenizer, student_eos) =
        training::distill::student_tokenizer(&config, &student_config)?;
    let (max_length, skip) = (config.data.max_length, config.data.skip_long_prompts);
    let mut data = DistillData::load(
        &data_path,
        None,
        "--data",
        &student_tokenizer,
        student_eos,
        max_length,
        skip,
    )?;
    data.attach_teacher_tokens(
        &teacher_tokenizer,
        eos_token(&teacher_config)?,
        max_length,
        skip,
    )?;
    if !data.skipped.is_empty() {
        eprintln!(
            "skipped records {:?}: their prompt alone fills data.max_length = {max_length}",
            data.skipped
        );
    }
    let shared = training::distill::shared_vocabulary(&student_tokenizer, &teacher_tokenizer)?;
    let loss = training::distill::sra_loss(
        &section,
        config.seed,
        &student_config,
        &teacher_config,
        &device,
    )?;
    eprintln!(
        "measuring {} records of {} in one batch: teacher {}, student {}; {} shared tokens",
        data.len(),
        data_path.display(),
        teacher_path.display(),
        objective_name(&config),
        shared.len()
    );
    let models = training::distill::SraModels {
        student: &student,
        teacher: training::distill::SraTeacher::Live(&teacher),
        shared: &shared,
        teacher_head: training::distill::sra_teacher_head(&teacher, &shared),
    };
    let r = training::distill::measure::measure_sra(
        &models,
        &loss,
        config.objective.alpha,
        &data,
        &device,
    )?;
    let spans: usize = r.spans_per_example.iter().sum();
    println!(
        "{} records, {spans} spans\nSRA: com {:.6}  geo {:.6}  logit {:.6}\nobjective: ce {:.4}  \
         total {:.4}",
        data.len(),
        r.com,
        r.geo,
        r.logit,
        r.ce,
        r.total
    );
    if let Some(path) = &args.json {
        let mut json = serde_json::to_value(&r)?;
        if let Some(map) = json.as_object_mut() {
            map.insert(
                "config".into(),
                serde_json::json!(args.config.as_ref().map(|p| p.display().to_string())),
            );
            map.insert(
                "data".into(),
                serde_json::json!(data_path.display().to_string()),
            );
        }
        crate::output::write_json(path, "--json", &json)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `mrl distill --eval-only`.
fn run_eval_only(args: &DistillArgs, config: DistillConfig) -> anyhow::Result<()> {
    if config.objective.sra().is_some() {
        return run_eval_only_sra(args, config);
    }
    if config.objective.kind.is_cross_tokenizer() {
        anyhow::bail!(
            "--eval-only measures KD, MTA and SRA; objective.kind = \"{}\" has no breakdown to \
             measure (train it, or evaluate the student with `mrl eval --task instruct`)",
            config.objective.kind.name()
        );
    }
    let data_path = args.data.clone().expect("clap requires --data");
    let teacher_path = resolve_teacher(&config.teacher.path)?;
    let device = config.device.device()?;
    let (teacher_config, teacher) =
        models::LlamaModel::from_pretrained(&teacher_path, models::LayerSelection::All, &device)
            .with_context(|| format!("loading the teacher {}", teacher_path.display()))?;
    let (student_config, student) = load_student(&config, &teacher_path, &teacher_config, &device)?;
    let tokenizer = load_tokenizer(&teacher_path)?;
    let eos = eos_token(&teacher_config)?;
    let mut data = DistillData::load(
        &data_path,
        None,
        "--data",
        &tokenizer,
        eos,
        config.data.max_length,
        config.data.skip_long_prompts,
    )?;
    let mta = match config.objective.mta() {
        Some(section) => {
            data.attach_units(&distill_objectives::EnglishChunker)?;
            Some(training::distill::mta_loss(
                &section,
                config.seed,
                &student_config,
                &teacher_config,
                &device,
            )?)
        }
        None => None,
    };
    if !data.skipped.is_empty() {
        eprintln!(
            "skipped records {:?}: their prompt alone fills data.max_length = {}",
            data.skipped, config.data.max_length
        );
    }
    let objective = config
        .objective
        .kd_objective()
        .try_init()
        .map_err(|e| anyhow::anyhow!("objective: {e}"))?;
    eprintln!(
        "measuring {} records ({} response positions) of {}: teacher {}, student {}",
        data.len(),
        data.num_targets(),
        data_path.display(),
        teacher_path.display(),
        objective_name(&config)
    );
    let progress = bar(data.len(), "measuring");
    let batch_size = config.eval.as_ref().map_or(8, |e| e.batch_size);
    let top_k = config.cache.as_ref().map_or(64, |c| c.top_k);
    let report = Measure {
        student: &student,
        teacher: &teacher,
        objective: &objective,
        batch_size,
        top_k,
        device: &device,
    }
    .run(&data, |done| progress.set_position(done as u64))?;
    progress.finish_and_clear();
    let kd = &report.kd;
    println!(
        "{} records, {} positions\nteacher CE {:.4}  student CE {:.4}  FKL {:.4}  RKL {:.4}  \
         JSD {:.5}  τ²·KL(τ=2) {:.4}  top-1 agreement {:.2}%\nFKL with the teacher's top-{} \
         + tail: {:.4}",
        report.records,
        report.positions,
        kd.teacher_ce,
        kd.student_ce,
        kd.fkl,
        kd.rkl,
        kd.jsd,
        kd.kl_tau2_scaled,
        kd.top1_agreement * 100.0,
        kd.top_k,
        kd.fkl_top_k
    );
    let mut report = report;
    let mta_report = match &mta {
        Some(mta) => {
            eprintln!("MTA: every record in one batch …");
            let r =
                training::distill::measure::measure_mta(&student, &teacher, mta, &data, &device)?;
            println!("MTA {:.6}", r.mta);
            for p in &r.pairs {
                println!(
                    "  teacher {:>2} / student {:>2} {:<7}  units {:>5}  DSA {:.6}  HRA {:.6}  loss {:.6}",
                    p.teacher_layer,
                    p.student_layer,
                    p.granularity.name(),
                    p.units,
                    p.dsa,
                    p.hra,
                    p.loss
                );
            }
            // The objective with its MTA term: (1 − α)·CE + α·(KD + λ·L_MTA).
            let (alpha, lambda) = (
                config.objective.alpha,
                config.objective.mta().map_or(0.0, |m| m.lambda),
            );
            *report.loss.entry("total".into()).or_default() += alpha * lambda * r.mta;
            report.loss.insert("mta".into(), r.mta);
            Some(r)
        }
        None => None,
    };
    let terms: Vec<String> = report
        .loss
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    println!("objective: {}", terms.join("  "));
    if let Some(path) = &args.json {
        let mut json = serde_json::json!({
            "config": args.config.as_ref().map(|p| p.display().to_string()),
            "data": data_path.display().to_string(),
            "records": report.records,
            "positions": report.positions,
            "loss": report.loss,
            "kd": report.kd,
        });
        if let (Some(r), Some(map)) = (&mta_report, json.as_object_mut()) {
            map.insert("mta".into(), serde_json::json!(r.mta));
            map.insert("pairs".into(), serde_json::to_value(&r.pairs)?);
            map.insert("examples".into(), serde_json::to_value(&r.examples)?);
        }
        crate::output::write_json(path, "--json", &json)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
