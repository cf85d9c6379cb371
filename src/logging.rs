//! The log formats of `--log.format` (`text`, `logfmt`, `json`) and the one rule they share:
//! a log line is one line. Every field value — and so every string an API, a proxy or a file
//! supplied (an error `Message`, a path, a SecretId) — is written with its control characters
//! escaped, so no CR, LF, ESC, NUL or other control byte can end a line, start a forged one or
//! reach a terminal.
//!
//! - `text`: tracing-subscriber's human format (colour only on a terminal), with the field
//!   values escaped by [`EscapingFields`].
//! - `logfmt`: [`Logfmt`], promslog's shape (`time=… level=… source=… msg=… key=value…`) with
//!   the quoting rules of Go's `log/slog` text handler, which promslog uses.
//! - `json`: tracing-subscriber's JSON format. JSON's escaping covers U+0000..U+001F only, so
//!   [`JsonControls`] writes the rest (DEL, the C1 controls such as U+009B, a terminal's CSI,
//!   and U+2028/U+2029) as `\uXXXX` escapes: the same JSON value, with no raw control byte.
//!
//! A small formatter of our own rather than the `tracing-logfmt` crate: that crate writes
//! `ts=`/`target=` rather than promslog's `time=`/`source=`, and the escaping of control
//! characters is the point of this module, so it is written and tested here.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

/// Whether `c` must not be written raw into a log line: the C0 and C1 control characters
/// (CR, LF, NUL, ESC, DEL, …) and Unicode's line and paragraph separators.
fn is_hostile(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Writes `c` as Go's `strconv.Quote` would: `\n`, `\r`, `\t`, `\x1b` below U+0080, `\u0085`
/// above.
fn write_escaped_char(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{:04x}", c as u32),
    }
}

/// `s` with every control character escaped (`\n`, `\r`, `\t`, `\x1b`, `\x00`, `\u2028`, …);
/// everything else, backslashes included, as it is. What the `text` format writes for a value.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hostile(c) {
            let _ = write_escaped_char(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// A logfmt value: bare when it is non-empty and holds no space, `=`, `"` or control
/// character, else double-quoted with `\"`, `\\` and control characters escaped (the rules of
/// Go's `log/slog` text handler).
pub fn logfmt_value(s: &str) -> std::borrow::Cow<'_, str> {
    let bare = !s.is_empty()
        && !s
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c.is_whitespace() || is_hostile(c));
    if bare {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_hostile(c) => {
                let _ = write_escaped_char(&mut out, c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out.into()
}

/// A logfmt key: field names are Rust identifiers, but a key must never hold a space, `=`,
/// `"` or control character, so any such character becomes `_`. A field named like one of the
/// line's own keys (`time`, `level`, `source`, `msg`) is written `fields.<name>`, as the JSON
/// format nests fields, so a parser never sees a key twice.
fn logfmt_key(s: &str) -> String {
    if matches!(s, "time" | "level" | "source" | "msg") {
        return format!("fields.{s}");
    }
    s.chars()
        .map(|c| {
            if c == ' ' || c == '=' || c == '"' || is_hostile(c) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The fields of one event or span as strings: `message` apart, the rest in order.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.rest.push((field.name(), value));
        }
    }
}

/// The `text` format's field formatter: `message`, then ` key=value` for each other field,
/// every value with its control characters escaped ([`escape_controls`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapingFields;

impl<'writer> FormatFields<'writer> for EscapingFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut f = Fields::default();
        fields.record(&mut f);
        let mut first = true;
        if let Some(message) = &f.message {
            writer.write_str(&escape_controls(message))?;
            first = false;
        }
        for (key, value) in &f.rest {
            if !first {
                writer.write_char(' ')?;
            }
            first = false;
            write!(writer, "{key}={}", escape_controls(value))?;
        }
        Ok(())
    }
}

/// The `logfmt` format, promslog's shape:
/// `time=2026-12-04T23:00:00.000Z level=WARN source=src/poll/poller.rs:120 msg="…" key=value`.
/// `time` is UTC with milliseconds; `level` is slog's upper-case name; `source` is the file and line of
/// this crate's events, the module path (`target`) of a dependency's; the fields of the
/// enclosing spans follow the event's own. Values are quoted as [`logfmt_value`] says.
#[derive(Debug, Default, Clone, Copy)]
pub struct Logfmt;

const TIME_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = time::OffsetDateTime::now_utc()
            .format(TIME_FORMAT)
            .unwrap_or_default();
        // slog's names, as promslog writes them: DEBUG, INFO, WARN, ERROR (and TRACE).
        let level = meta.level().as_str();
        let source = match (meta.file(), meta.line()) {
            (Some(file), Some(line)) if meta.target().starts_with("tencent_live_exporter") => {
                format!("{file}:{line}")
            }
            _ => meta.target().to_owned(),
        };
        write!(
            writer,
            "time={now} level={level} source={}",
            logfmt_value(&source)
        )?;
        let mut f = Fields::default();
        event.record(&mut f);
        write!(
            writer,
            " msg={}",
            logfmt_value(f.message.as_deref().unwrap_or(""))
        )?;
        for (key, value) in &f.rest {
            write!(writer, " {}={}", logfmt_key(key), logfmt_value(value))?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let mut sf = Fields::default();
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    sf.rest.extend(fields.0.iter().cloned());
                }
                for (key, value) in &sf.rest {
                    write!(writer, " {}={}", logfmt_key(key), logfmt_value(value))?;
                }
            }
        }
        writeln!(writer)
    }
}

/// The fields of a span, kept for [`Logfmt`] by [`SpanFieldsLayer`].
struct SpanFields(Vec<(&'static str, String)>);

/// Records each new span's fields (as strings) in its extensions, for [`Logfmt`].
struct SpanFieldsLayer;

impl<S> tracing_subscriber::Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        let mut fields = f.rest;
        if let Some(message) = f.message {
            fields.insert(0, ("message", message));
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }
}

/// A subscriber writing `format` to `writer` through `filter`, with ANSI colour codes (text
/// only) when `colour`. `main` installs it as the global default; tests install it around
/// a capture buffer.
pub fn subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    colour: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(
            builder
                .with_ansi(colour)
                .fmt_fields(EscapingFields)
                .finish(),
        ),
        LogFormat::Logfmt => Box::new(
            builder
                .with_ansi(false)
                .event_format(Logfmt)
                .finish()
                .with(SpanFieldsLayer),
        ),
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .json()
                .map_writer(|w| JsonControls(w))
                .finish(),
        ),
    }
}

/// Wraps the JSON format's writer: serde_json leaves DEL, the C1 controls and U+2028/U+2029
/// raw inside strings, which JSON allows; they become `\u007f`, `\u009b`, `\u2028`, … (the
/// same JSON value). Outside strings a JSON line is ASCII with no control character, so every
/// such character found is inside a string.
pub struct JsonControls<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for JsonControls<M> {
    type Writer = JsonControlsWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        JsonControlsWriter(self.0.make_writer())
    }
}

/// The writer of [`JsonControls`]: transforms each buffer it is given as a whole (the fmt
/// layer writes one event's line in one buffer).
pub struct JsonControlsWriter<W>(W);

impl<W: std::io::Write> std::io::Write for JsonControlsWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(s) if s.chars().any(|c| is_hostile(c) && c != '\n') => {
                let mut out = String::with_capacity(s.len() + 16);
                for c in s.chars() {
                    if is_hostile(c) && c != '\n' {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    } else {
                        out.push(c);
                    }
                }
                self.0.write_all(out.as_bytes())?;
            }
            // Clean, or not UTF-8 (never from serde_json): as it is.
            _ => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests;
