//! Unit tests of `logging`: the logfmt shape and quoting, and that no format lets a control
//! character through.

use std::sync::{Arc, Mutex};

use proptest::prelude::*;

use super::*;

/// A capture buffer for one subscriber.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

/// What `format` writes for one warning carrying `hostile` as its message and as a field.
fn log_once(format: LogFormat, colour: bool, hostile: &str) -> String {
    let buf = Buf::default();
    let filter = tracing_subscriber::EnvFilter::new("trace");
    let sub = subscriber(format, filter, colour, buf.clone());
    tracing::subscriber::with_default(sub, || {
        tracing::warn!(account = "a b", error = %hostile, "poll failed: {hostile}");
    });
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

const HOSTILE: &str = "denied\r\n2026-12-04T23:00:00Z ERROR forged line\u{1b}[2J\0bell\u{7}\u{85}sep\u{2028}end \"q\" \\";

#[test]
fn logfmt_has_promslogs_shape_and_quotes_as_slog_does() {
    let out = log_once(LogFormat::Logfmt, false, "plain");
    let line = out.strip_suffix('\n').unwrap();
    assert!(!line.contains('\n'), "{out}");
    let re_time = line.strip_prefix("time=").unwrap();
    // time=YYYY-MM-DDTHH:MM:SS.mmmZ
    let (time, rest) = re_time.split_once(' ').unwrap();
    assert_eq!(time.len(), 24, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    assert!(
        rest.starts_with("level=WARN source=src/logging/tests.rs:"),
        "{rest}"
    );
    assert!(
        rest.ends_with(r#" msg="poll failed: plain" account="a b" error=plain"#),
        "{rest}"
    );
    assert_eq!(logfmt_value(""), r#""""#);
    assert_eq!(logfmt_value("a=b"), r#""a=b""#);
    assert_eq!(logfmt_value(r"C:\x"), r"C:\x");
    assert_eq!(logfmt_value(r#"say "hi" \ "#), r#""say \"hi\" \\ ""#);
    assert_eq!(logfmt_value("a\nb\u{1b}c\0"), r#""a\nb\x1bc\x00""#);
    assert_eq!(logfmt_key("bad key=\n"), "bad_key__");
    assert_eq!(logfmt_key("source"), "fields.source");
}

/// Whether `out` is `lines` log lines, each starting as a real one does, and no control
/// character but the line ends (and, in colour, the ESC of our own colour codes).
fn assert_one_clean_line(format: LogFormat, colour: bool, out: &str) {
    let lines: Vec<&str> = out.split_terminator('\n').collect();
    assert_eq!(lines.len(), 1, "{format:?}: {out:?}");
    let line = lines[0];
    for c in line.chars() {
        let ours = colour && c == '\u{1b}';
        assert!(ours || !is_hostile(c), "{format:?}: raw {c:?} in {line:?}");
    }
    if colour {
        // Every ESC starts one of the formatter's SGR colour codes, none from the message.
        assert!(!line.contains("\u{1b}[2J"), "{line:?}");
    }
}

#[test]
fn hostile_text_stays_on_one_line_in_every_format() {
    for (format, colour) in [
        (LogFormat::Text, false),
        (LogFormat::Text, true),
        (LogFormat::Logfmt, false),
        (LogFormat::Json, false),
    ] {
        let out = log_once(format, colour, HOSTILE);
        assert_one_clean_line(format, colour, &out);
        // Escaped, not dropped: the forged text is still there to read, after an escape.
        assert!(
            out.contains(r"\n2026-12-04T23:00:00Z ERROR forged line"),
            "{format:?}: {out}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&log_once(LogFormat::Json, false, HOSTILE)).unwrap();
    assert_eq!(
        json["fields"]["error"], HOSTILE,
        "JSON keeps the text exactly"
    );
}

proptest! {
    /// Whatever a message holds, each format writes exactly one line with no raw control
    /// character, and logfmt's value round-trips through its own quoting.
    #[test]
    fn any_text_is_one_clean_line(s in "\\PC*|[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{2028} a=\"\\\\]{0,40}") {
        for (format, colour) in [(LogFormat::Text, false), (LogFormat::Logfmt, false), (LogFormat::Json, false)] {
            assert_one_clean_line(format, colour, &log_once(format, colour, &s));
        }
        let v = logfmt_value(&s);
        if let Some(inner) = v.strip_prefix('"') {
            let inner = inner.strip_suffix('"').unwrap();
            prop_assert_eq!(unquote(inner), s.clone());
        } else {
            prop_assert_eq!(v.as_ref(), s.as_str());
        }
    }
}

/// Reverses [`logfmt_value`]'s quoting (Go's `strconv.Unquote` for the escapes it writes).
fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().unwrap() {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'x' => {
                let h: String = chars.by_ref().take(2).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).unwrap()).unwrap());
            }
            'u' => {
                let h: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&h, 16).unwrap()).unwrap());
            }
            other => panic!("unexpected escape \\{other}"),
        }
    }
    out
}
