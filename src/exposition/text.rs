//! The text exposition format 0.0.4: the one writer of every byte `/metrics` serves.
//!
//! The package and pair families are written sample by sample from the store's data, the
//! exporter's own metrics from the `MetricFamily`s their `prometheus` registry gathers; both
//! through [`Writer`], so escaping, number formatting and family headers have one owner.
//! Format: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>.

use std::io::Write as _;

use prometheus::proto::{MetricFamily, MetricType};

/// A sample value, written exactly: integers as integers; floats as [`FloatText`] writes them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value {
    Int(i64),
    Uint(u64),
    Float(f64),
}

/// Writes the text format straight into one buffer: no per-series allocation, so encoding
/// 10,000 packages costs one pass and the output's own memory, not tens of MiB of label objects.
pub(crate) struct Writer {
    buf: Vec<u8>,
    /// Where the current family's header began, to drop a family that got no sample.
    family_start: usize,
    family_samples: usize,
}

impl Writer {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(bytes),
            family_start: 0,
            family_samples: 0,
        }
    }

    /// The bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Starts a family: its `# HELP` (left out when `help` is empty) and `# TYPE` lines.
    /// `kind` is the TYPE word: `gauge`, `counter`, `histogram`, `summary` or `untyped`.
    pub(crate) fn family(&mut self, name: &str, help: &str, kind: &str) {
        self.family_start = self.buf.len();
        self.family_samples = 0;
        if !help.is_empty() {
            self.buf.extend_from_slice(b"# HELP ");
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.push(b' ');
            // HELP text escapes backslash and newline (not the double quote).
            for c in help.bytes() {
                match c {
                    b'\\' => self.buf.extend_from_slice(b"\\\\"),
                    b'\n' => self.buf.extend_from_slice(b"\\n"),
                    c => self.buf.push(c),
                }
            }
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(b"# TYPE ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(kind.as_bytes());
        self.buf.push(b'\n');
    }

    /// Ends a family; an empty one (a bare HELP/TYPE) is removed.
    pub(crate) fn end_family(&mut self) {
        if self.family_samples == 0 {
            self.buf.truncate(self.family_start);
        }
    }

    /// One sample line: `name{k="v",...} value`.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.sample_line(name, "", labels.iter().copied(), None, value, 0);
    }

    fn sample_line<'l>(
        &mut self,
        name: &str,
        suffix: &str,
        labels: impl Iterator<Item = (&'l str, &'l str)>,
        extra: Option<(&str, &str)>,
        value: Value,
        timestamp_ms: i64,
    ) {
        self.family_samples += 1;
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(suffix.as_bytes());
        let mut separator = b'{';
        for (k, v) in labels {
            self.label(&mut separator, k, v);
        }
        if let Some((k, v)) = extra {
            self.label(&mut separator, k, v);
        }
        if separator == b',' {
            self.buf.push(b'}');
        }
        self.buf.push(b' ');
        self.value(value);
        if timestamp_ms != 0 {
            let _ = write!(self.buf, " {timestamp_ms}");
        }
        self.buf.push(b'\n');
    }

    /// `k="v"` after `separator` (`{` before the first label, `,` after), the value escaped:
    /// backslash, double quote and newline.
    fn label(&mut self, separator: &mut u8, k: &str, v: &str) {
        self.buf.push(*separator);
        *separator = b',';
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"=\"");
        for c in v.bytes() {
            match c {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'"' => self.buf.extend_from_slice(b"\\\""),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                c => self.buf.push(c),
            }
        }
        self.buf.push(b'"');
    }

    fn value(&mut self, value: Value) {
        // Writing into a Vec cannot fail.
        let _ = match value {
            Value::Int(v) => write!(self.buf, "{v}"),
            Value::Uint(v) => write!(self.buf, "{v}"),
            Value::Float(v) => write!(self.buf, "{}", FloatText(v)),
        };
    }

    /// The `MetricFamily`s a `prometheus` registry gathered (the exporter's own counters,
    /// gauges and histograms), each with its HELP and TYPE once: counters and gauges one line
    /// per series; histograms `_bucket{le}` cumulative counts ending with `le="+Inf"`, `_sum`
    /// and `_count`; summaries `{quantile}`, `_sum`, `_count`. A family without series is
    /// left out (the text format has no empty family), as is an untyped one.
    pub(crate) fn metric_families(&mut self, families: &[MetricFamily]) {
        for family in families {
            let name = family.name();
            let kind = family.get_field_type();
            self.family(name, family.help(), type_word(kind));
            for m in family.get_metric() {
                let labels = || m.get_label().iter().map(|l| (l.name(), l.value()));
                let ts = m.timestamp_ms();
                match kind {
                    MetricType::COUNTER => {
                        let v = Value::Float(m.get_counter().get_value());
                        self.sample_line(name, "", labels(), None, v, ts);
                    }
                    MetricType::GAUGE => {
                        let v = Value::Float(m.get_gauge().get_value());
                        self.sample_line(name, "", labels(), None, v, ts);
                    }
                    // The crate has no untyped metric (its `TextEncoder` panics on one); a
                    // family of them gets no sample and is left out whole.
                    MetricType::UNTYPED => {}
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        let mut inf_seen = false;
                        for b in h.get_bucket() {
                            let upper = b.upper_bound();
                            inf_seen |= upper == f64::INFINITY;
                            let le = FloatText(upper).to_string();
                            let v = Value::Uint(b.cumulative_count());
                            let le = Some(("le", le.as_str()));
                            self.sample_line(name, "_bucket", labels(), le, v, ts);
                        }
                        let count = Value::Uint(h.get_sample_count());
                        if !inf_seen {
                            let le = Some(("le", "+Inf"));
                            self.sample_line(name, "_bucket", labels(), le, count, ts);
                        }
                        let sum = Value::Float(h.get_sample_sum());
                        self.sample_line(name, "_sum", labels(), None, sum, ts);
                        self.sample_line(name, "_count", labels(), None, count, ts);
                    }
                    MetricType::SUMMARY => {
                        let s = m.get_summary();
                        for q in s.get_quantile() {
                            let quantile = FloatText(q.quantile()).to_string();
                            let v = Value::Float(q.value());
                            let q = Some(("quantile", quantile.as_str()));
                            self.sample_line(name, "", labels(), q, v, ts);
                        }
                        let sum = Value::Float(s.sample_sum());
                        self.sample_line(name, "_sum", labels(), None, sum, ts);
                        let count = Value::Uint(s.sample_count());
                        self.sample_line(name, "_count", labels(), None, count, ts);
                    }
                }
            }
            self.end_family();
        }
    }
}

fn type_word(kind: MetricType) -> &'static str {
    match kind {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
    }
}

/// A float as the text format writes it: `NaN`, `+Inf`, `-Inf`, else the shortest decimal that
/// reads back to the same number, never in exponent form and with no trailing `.0` (`1`,
/// `0.25`, `0.0000001`); the `prometheus` crate's `TextEncoder` writes finite values alike.
struct FloatText(f64);

impl std::fmt::Display for FloatText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v == f64::INFINITY {
            f.write_str("+Inf")
        } else if v == f64::NEG_INFINITY {
            f.write_str("-Inf")
        } else {
            write!(f, "{v}")
        }
    }
}

#[cfg(test)]
mod tests;
