//! `authtrail gen`: the traffic model's events to a file, stdout or Kafka, and its
//! ground truth to a file of its own.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use authtrail_gen::{Format, GenConfig, Generator, KafkaOutput, NativeTopic, Pace, ScenarioKind};
use authtrail_model::time::{parse_rfc3339, MICROS_PER_HOUR};
use authtrail_model::Micros;

use crate::cli::GenArgs;
use crate::config::Config;

pub fn run(args: &GenArgs) -> anyhow::Result<ExitCode> {
    let config = gen_config(args)?;
    let mut generator = Generator::new(config.clone())?;
    let stop = AtomicBool::new(false);
    let events = match &args.brokers {
        Some(brokers) => {
            if args.format != Format::Authtrail {
                bail!(
                    "`--format {}` writes lines; with `--brokers`, `--native {}` sends its events to a topic of their own",
                    args.format,
                    args.format
                );
            }
            let output = kafka_output(args, brokers)?;
            let native = native_topics(args)?;
            eprintln!(
                "authtrail: producing to topic `{}` at {brokers}",
                output.topic
            );
            for route in &native {
                eprintln!(
                    "authtrail: the events `{}` expresses go to topic `{}` in that format",
                    route.format, route.topic
                );
            }
            let delivered =
                authtrail_gen::send_kafka_routed(&mut generator, &output, &native, &stop)?;
            if !native.is_empty() {
                for topic in &delivered {
                    eprintln!(
                        "authtrail: {} events to topic `{}`",
                        topic.events, topic.topic
                    );
                }
            }
            delivered.iter().map(|topic| topic.events).sum()
        }
        None => {
            let lines = match args
                .output
                .as_deref()
                .filter(|path| *path != Path::new("-"))
            {
                None => {
                    let stdout = std::io::stdout().lock();
                    authtrail_gen::write_jsonl_as(
                        &mut generator,
                        args.format,
                        BufWriter::new(stdout),
                        "stdout",
                        &stop,
                    )?
                }
                Some(path) => {
                    let file = File::create(path)
                        .with_context(|| format!("creating `{}`", path.display()))?;
                    let label = path.display().to_string();
                    authtrail_gen::write_jsonl_as(
                        &mut generator,
                        args.format,
                        BufWriter::new(file),
                        &label,
                        &stop,
                    )?
                }
            };
            if args.format != Format::Authtrail {
                eprintln!(
                    "authtrail: {} events written as `{}`; {} it cannot express left out",
                    lines.written, args.format, lines.left_out
                );
            }
            lines.written
        }
    };
    let truth = generator.truth();
    if let Some(path) = &args.truth {
        let file = File::create(path).with_context(|| format!("creating `{}`", path.display()))?;
        let mut out = BufWriter::new(file);
        truth
            .write_jsonl(&mut out)
            .and_then(|()| out.into_inner().map_err(|e| e.into_error())?.sync_all())
            .with_context(|| format!("writing `{}`", path.display()))?;
    }
    let attacks = truth
        .scenarios
        .iter()
        .filter(|s| s.label == authtrail_gen::Label::Attack)
        .count();
    eprintln!(
        "authtrail: {events} events from {} to {}, {attacks} attacks and {} look-alikes",
        authtrail_model::time::format_micros(config.start),
        authtrail_model::time::format_micros(config.end()),
        truth.scenarios.len() - attacks
    );
    std::io::stderr().flush().ok();
    Ok(ExitCode::SUCCESS)
}

fn gen_config(args: &GenArgs) -> anyhow::Result<GenConfig> {
    let start = match &args.start {
        Some(text) => parse_rfc3339(text)
            .with_context(|| format!("`--start {text}` is not an RFC 3339 time"))?,
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .context("the clock is before 1970")?
                .as_micros() as Micros;
            let start = now - args.duration.as_micros() as Micros;
            start - start.rem_euclid(MICROS_PER_HOUR)
        }
    };
    Ok(GenConfig {
        seed: args.seed,
        start,
        duration: args.duration,
        learning: args.learning,
        users: args.users,
        sessions_per_user_day: args.sessions_per_user_day,
        service_calls_per_second: args.service_calls_per_second,
        attacks: parse_attacks(&args.attacks)?,
        lookalikes: !args.no_lookalikes,
    })
}

/// `all`, `none`, or a comma-separated list of attack scenario names.
fn parse_attacks(list: &str) -> anyhow::Result<Vec<ScenarioKind>> {
    match list {
        "all" => return Ok(ScenarioKind::ATTACKS.to_vec()),
        "none" | "" => return Ok(Vec::new()),
        _ => {}
    }
    let mut attacks = Vec::new();
    for name in list.split(',').map(str::trim) {
        let kind: ScenarioKind = name.parse().map_err(anyhow::Error::msg)?;
        if kind.label() == authtrail_gen::Label::Benign {
            bail!("`{name}` is a look-alike, not an attack (look-alikes come with every run unless `--no-lookalikes`)");
        }
        attacks.push(kind);
    }
    Ok(attacks)
}

/// `--native` and `--native-topic`: each native format listed, to its topic.
fn native_topics(args: &GenArgs) -> anyhow::Result<Vec<NativeTopic>> {
    let mut topics = Vec::new();
    let list = args.native.as_deref().unwrap_or_default();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let format: Format = name.parse().map_err(anyhow::Error::msg)?;
        let route = NativeTopic::default_for(format).with_context(|| {
            format!("`--native {name}`: contract events go to `--topic`; `--native` names native formats (keycloak, k8s_audit)")
        })?;
        topics.push(route);
    }
    for pair in &args.native_topic {
        let (name, topic) = pair
            .split_once('=')
            .with_context(|| format!("`--native-topic {pair}` is not FORMAT=TOPIC"))?;
        let format: Format = name.trim().parse().map_err(anyhow::Error::msg)?;
        let route = topics
            .iter_mut()
            .find(|route| route.format == format)
            .with_context(|| format!("`--native-topic {pair}`: `{format}` is not in `--native`"))?;
        route.topic = topic.trim().to_owned();
    }
    Ok(topics)
}

fn kafka_output(args: &GenArgs, brokers: &str) -> anyhow::Result<KafkaOutput> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let topic = match &args.topic {
        Some(topic) => topic.clone(),
        None => config
            .kafka
            .topics
            .first()
            .cloned()
            .context("no `--topic` and no `kafka.topics` in the config")?,
    };
    let mut settings: Vec<(String, String)> = config.kafka.settings.into_iter().collect();
    for (key, variable) in config.kafka.settings_from_env {
        let value = std::env::var(&variable).with_context(|| {
            format!("`kafka.settings_from_env.{key}` names `{variable}`, which is not set")
        })?;
        settings.push((key, value));
    }
    if let Some(rate) = args.rate {
        if rate.is_nan() || rate <= 0.0 {
            bail!("`--rate` must be more than zero");
        }
    }
    Ok(KafkaOutput {
        brokers: brokers.to_owned(),
        topic,
        pace: args.rate.map_or(Pace::FlatOut, Pace::Rate),
        settings,
    })
}
