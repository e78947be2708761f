//! The Prometheus text exposition format, version 0.0.4.

use std::fmt::Write;

use crate::LatencySnapshot;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// Builds one scrape's text: a family header, then that family's samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    family: String,
}

/// The MIME type of the text this writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// Starts a family; the samples written next belong to it. Counter names end in
    /// `_total`, as the format's conventions (and `promtool`) want.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        debug_assert!(valid_name(name), "metric name `{name}`");
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "{name}");
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self.family = name.to_owned();
        self
    }

    /// One sample of the current (counter or gauge) family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let name = std::mem::take(&mut self.family);
        self.line(&name, "", labels, None, value);
        self.family = name;
        self
    }

    /// A histogram's series, from [`crate::Histogram::snapshot`].
    pub fn histogram(
        &mut self,
        labels: &[(&str, &str)],
        (buckets, sum, count): &(Vec<(f64, u64)>, f64, u64),
    ) -> &mut Self {
        let name = std::mem::take(&mut self.family);
        for (bound, cumulative) in buckets {
            let le = format_value(*bound);
            self.line(
                &name,
                "_bucket",
                labels,
                Some(("le", &le)),
                *cumulative as f64,
            );
        }
        self.line(&name, "_sum", labels, None, *sum);
        self.line(&name, "_count", labels, None, *count as f64);
        self.family = name;
        self
    }

    /// A summary's series: one per quantile, then `_sum` and `_count`.
    pub fn summary(&mut self, labels: &[(&str, &str)], snapshot: &LatencySnapshot) -> &mut Self {
        let name = std::mem::take(&mut self.family);
        for (quantile, value) in &snapshot.quantiles {
            let q = format_value(*quantile);
            self.line(&name, "", labels, Some(("quantile", &q)), *value);
        }
        self.line(&name, "_sum", labels, None, snapshot.sum);
        self.line(&name, "_count", labels, None, snapshot.count as f64);
        self.family = name;
        self
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }

    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        extra: Option<(&str, &str)>,
        value: f64,
    ) {
        let text = &mut self.text;
        text.push_str(name);
        text.push_str(suffix);
        let mut all = labels.iter().copied().chain(extra).peekable();
        if all.peek().is_some() {
            text.push('{');
            for (i, (label, value)) in all.enumerate() {
                debug_assert!(valid_name(label), "label name `{label}`");
                if i > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{label}=\"{}\"", escape_label(value));
            }
            text.push('}');
        }
        let _ = writeln!(text, " {}", format_value(value));
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Histogram;

    #[test]
    fn counters_gauges_and_escaped_labels() {
        let mut out = Exposition::default();
        out.family("x_events_total", Kind::Counter, "Events.\nAll of them.")
            .sample(&[("topic", "a\"b\\c\nd"), ("partition", "3")], 7.0);
        out.family("x_lag", Kind::Gauge, "Lag.").sample(&[], 0.5);
        assert_eq!(
            out.finish(),
            "# HELP x_events_total Events.\\nAll of them.\n# TYPE x_events_total counter\n\
             x_events_total{topic=\"a\\\"b\\\\c\\nd\",partition=\"3\"} 7\n\
             # HELP x_lag Lag.\n# TYPE x_lag gauge\nx_lag 0.5\n"
        );
    }

    #[test]
    fn histograms_end_with_inf_sum_and_count() {
        let histogram = Histogram::new(&[1_000], 1e6);
        histogram.observe(500);
        histogram.observe(5_000);
        let mut out = Exposition::default();
        out.family("x_seconds", Kind::Histogram, "Time.")
            .histogram(&[("route", "/q")], &histogram.snapshot());
        let text = out.finish();
        assert!(
            text.contains("x_seconds_bucket{route=\"/q\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{route=\"/q\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_sum{route=\"/q\"} 0.0055\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_count{route=\"/q\"} 2\n"), "{text}");
    }

    #[test]
    fn summaries_carry_quantile_labels() {
        let snapshot = LatencySnapshot {
            quantiles: vec![(0.5, 0.25), (0.999, 1.0)],
            sum: 3.0,
            count: 4,
        };
        let mut out = Exposition::default();
        out.family("x_seconds", Kind::Summary, "Latency.")
            .summary(&[], &snapshot);
        let text = out.finish();
        assert!(
            text.contains("x_seconds{quantile=\"0.5\"} 0.25\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds{quantile=\"0.999\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_count 4\n"), "{text}");
    }
}
