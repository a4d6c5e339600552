//! Logging set-up shared by the GateKey binaries (feature `telemetry`).
//!
//! Text logs escape every control character (newlines, carriage returns, ESC and the
//! rest), the Unicode line and paragraph separators and the bidirectional overrides in
//! every field, span field and
//! message, so a value a client chose, such as a login name holding a newline and a
//! made-up "login" line, can never start a line of its own or repaint a terminal.
//! JSON logs get the same from the JSON encoding.

use std::fmt::{self, Write};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// Installs the global subscriber: `RUST_LOG` filtering (default `info`), text or JSON
/// lines on stderr, coloured only on a terminal. Calling it twice keeps the first
/// subscriber.
pub fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let installed = if json {
        builder.json().try_init()
    } else {
        builder
            .fmt_fields(
                debug_fn(|writer: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
                    let mut escaped = Escaping(writer);
                    match field.name() {
                        "message" => write!(escaped, "{value:?}"),
                        name => write!(escaped, "{name}={value:?}"),
                    }
                })
                .delimited(" "),
            )
            .try_init()
    };
    if installed.is_err() {
        tracing::debug!("a logging subscriber was already installed");
    }
}

/// Writes through to `0`, escaping what must never reach a log line raw.
struct Escaping<W>(W);

impl<W: Write> Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            self.write_char(c)?;
        }
        Ok(())
    }

    fn write_char(&mut self, c: char) -> fmt::Result {
        match c {
            '\n' => self.0.write_str("\\n"),
            '\r' => self.0.write_str("\\r"),
            '\t' => self.0.write_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                write!(self.0, "\\u{{{:x}}}", u32::from(c))
            }
            c => self.0.write_char(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        let mut out = String::new();
        write!(Escaping(&mut out), "a\nb\r\x1b[31mc\td\u{202e}e\u{7f}f\u{2028}").unwrap();
        assert_eq!(out, "a\\nb\\r\\u{1b}[31mc\\td\\u{202e}e\\u{7f}f\\u{2028}");
        assert!(!out.chars().any(char::is_control));
    }
}
