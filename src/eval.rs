//! `authtrail eval`: a labelled stream through the detectors, scored against its truth.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use authtrail_gen::{Evaluator, Truth};

use crate::cli::EvalArgs;
use crate::config::Config;

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let mut detect = match &args.config {
        Some(path) => Config::load(path)?.detect,
        None => Default::default(),
    };
    let truth_label = args.truth.display().to_string();
    let file = File::open(&args.truth).with_context(|| format!("opening `{truth_label}`"))?;
    let truth = Truth::read_jsonl(BufReader::new(file), &truth_label)?;
    if detect.new_service_edge.learning != truth.meta.learning {
        eprintln!(
            "authtrail: learning period {} from the truth file (the config says {})",
            humantime::format_duration(truth.meta.learning),
            humantime::format_duration(detect.new_service_edge.learning)
        );
        detect.new_service_edge.learning = truth.meta.learning;
    }
    let mut evaluator = Evaluator::new(truth, &detect)?;
    let label = args.events.display().to_string();
    let input: Box<dyn BufRead> = if args.events == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = File::open(&args.events).with_context(|| format!("opening `{label}`"))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    read_lines(input, &label, |line| evaluator.observe_line(line))?;
    let report = evaluator.finish();
    let mut out = std::io::stdout().lock();
    if args.alerts {
        for alert in &report.alerts {
            writeln!(
                out,
                "{} {} {} {}",
                authtrail_model::time::format_micros(alert.time),
                alert.detector,
                alert.severity,
                alert.summary
            )?;
        }
        writeln!(out)?;
    }
    write!(out, "{report}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Calls `each` with every line of `input`; a line longer than 1 MiB (the contract's
/// message limit) is passed on cut there, to be rejected, without holding more.
fn read_lines(
    mut input: impl BufRead,
    label: &str,
    mut each: impl FnMut(&[u8]),
) -> anyhow::Result<()> {
    const LIMIT: usize = 1 << 20;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = Read::take(&mut input, LIMIT as u64 + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading `{label}`"))?;
        if read == 0 {
            return Ok(());
        }
        if line.len() > LIMIT && line.last() != Some(&b'\n') {
            // Skip the rest of the oversized line.
            each(&line);
            loop {
                let buf = input
                    .fill_buf()
                    .with_context(|| format!("reading `{label}`"))?;
                if buf.is_empty() {
                    return Ok(());
                }
                match buf.iter().position(|&b| b == b'\n') {
                    Some(at) => {
                        input.consume(at + 1);
                        break;
                    }
                    None => {
                        let n = buf.len();
                        input.consume(n);
                    }
                }
            }
            continue;
        }
        each(&line);
    }
}
