//! `factorwatch classify`: Okta events in (any layout `input` reads), one record per line out.

use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::value::RawValue;

use super::CommandError;
use crate::classify::{Classified, Classifier, ClassifyError, Within};
use crate::formats;
use crate::input::{self, InputError, Position};
use crate::okta::factors::Provider;
use crate::record::MfaChange;

#[derive(clap::Args)]
pub struct Args {
    /// The input file; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    /// Add the original Okta event to each record under `raw`.
    #[arg(long)]
    raw: bool,
    /// Factor providers whose enrollments Okta owns (`factor.okta_authoritative`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "OKTA,GOOGLE,FIDO,YUBICO",
        env = "FACTORWATCH_OKTA_AUTHORITATIVE"
    )]
    okta_authoritative: Vec<Provider>,
    /// Print each change as a SIEM would receive it: record (default), ocsf,
    /// ocsf-user-management, ecs, cef, leef, raw, or syslog (RFC 5424 carrying the record).
    #[arg(long, default_value = "record")]
    format: String,
    /// The org name put in SIEM formats.
    #[arg(long, default_value = "okta")]
    org: String,
}

/// `factorwatch classify`: exit 1 when some input was skipped.
pub fn main(args: Args) -> Result<ExitCode, CommandError> {
    let classifier = Classifier::new(crate::classify::Config {
        okta_authoritative: args.okta_authoritative.into_iter().collect(),
    });
    let context = formats::Context {
        org: args.org,
        hostname: formats::local_hostname(),
    };
    let encoding = match args.format.as_str() {
        "record" => None,
        "syslog" => Some(Encoding {
            format: formats::Format::Record,
            syslog: true,
            context,
        }),
        other => Some(Encoding {
            format: formats::Format::parse(other)
                .map_err(|e| CommandError::Usage(format!("--format: {e}, or syslog")))?,
            syslog: false,
            context,
        }),
    };
    let options = Options {
        raw: args.raw,
        encoding,
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut errors = io::stderr().lock();
    let summary = match args.file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            let f = std::fs::File::open(&path)
                .map_err(CommandError::io(format!("cannot read {}", path.display())))?;
            run(
                &classifier,
                options,
                BufReader::new(f),
                &mut out,
                &mut errors,
            )
        }
        None => run(
            &classifier,
            options,
            io::stdin().lock(),
            &mut out,
            &mut errors,
        ),
    }
    .map_err(CommandError::io("classify"))?;
    Ok(if summary.skipped > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Add the original event under `raw` (record format only).
    pub raw: bool,
    /// Print each change in this SIEM encoding instead of the record.
    pub encoding: Option<Encoding>,
}

/// What `--format` asks for: a payload format, or RFC 5424 syslog carrying one.
#[derive(Debug, Clone)]
pub struct Encoding {
    pub format: formats::Format,
    pub syslog: bool,
    pub context: formats::Context,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub changes: u64,
    pub skipped: u64,
}

/// Reads `input` to the end, writes each MFA change as one JSON line to `out` and each value it
/// had to skip, with its position, as one line to `errors`. NDJSON is streamed line by line; any
/// other layout is read whole first.
pub fn run(
    classifier: &Classifier,
    options: Options,
    mut input: impl BufRead,
    out: &mut impl Write,
    errors: &mut impl Write,
) -> io::Result<Summary> {
    let mut run = Run {
        classifier,
        options,
        summary: Summary::default(),
        out,
        errors,
    };

    // Find the first non-blank line: it tells NDJSON from a document.
    let mut head = Vec::new();
    let mut line_no = 0;
    loop {
        head.clear();
        if input.read_until(b'\n', &mut head)? == 0 {
            return Ok(run.summary);
        }
        line_no += 1;
        if !head.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }

    if input::holds_whole_value(&head) {
        let mut line = head;
        loop {
            run.line(line_no, &line)?;
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            line_no += 1;
        }
    } else {
        let mut doc = head;
        input.read_to_end(&mut doc)?;
        let mut result = Ok(());
        input::for_each_value(&doc, |pos, value| {
            if result.is_ok() {
                result = run.value(pos, value);
            }
        });
        result?;
    }
    run.out.flush()?;
    Ok(run.summary)
}

struct Run<'c, O, E> {
    classifier: &'c Classifier,
    options: Options,
    summary: Summary,
    out: O,
    errors: E,
}

impl<O: Write, E: Write> Run<'_, O, E> {
    fn line(&mut self, line_no: usize, line: &[u8]) -> io::Result<()> {
        let mut result = Ok(());
        input::for_each_value_in_line(line_no, line, &mut |pos, value| {
            if result.is_ok() {
                result = self.value(pos, value);
            }
        });
        result
    }

    fn value(&mut self, pos: Position, value: Result<&str, InputError>) -> io::Result<()> {
        let value = match value {
            Ok(value) => value,
            Err(e) => return self.skip(pos, None, &e),
        };
        let mut result = Ok(());
        self.classifier.classify_json(value, |within, verdict| {
            if result.is_ok() {
                result = self.verdict(pos, within, verdict);
            }
        });
        result
    }

    fn verdict(
        &mut self,
        pos: Position,
        within: Within,
        verdict: Result<Classified<'_>, ClassifyError>,
    ) -> io::Result<()> {
        match verdict {
            Ok(Classified { change, raw, .. }) => {
                self.summary.changes += 1;
                if let Some(e) = &self.options.encoding {
                    let payload = e.format.encode(&change, raw, &e.context);
                    let line = if e.syslog {
                        formats::syslog::message(&change, &payload, &e.context, &Default::default())
                    } else {
                        payload
                    };
                    self.out.write_all(line.as_bytes())?;
                    return self.out.write_all(b"\n");
                }
                // The classifier parsed `raw` whole, so it is one valid JSON value.
                let raw = self
                    .options
                    .raw
                    .then(|| serde_json::from_str::<&RawValue>(raw).ok())
                    .flatten();
                serde_json::to_writer(
                    &mut self.out,
                    &Line {
                        change: &change,
                        raw,
                    },
                )?;
                self.out.write_all(b"\n")
            }
            Err(e) => self.skip(pos, Some(within), &e),
        }
    }

    fn skip(
        &mut self,
        pos: Position,
        within: Option<Within>,
        e: &dyn std::fmt::Display,
    ) -> io::Result<()> {
        self.summary.skipped += 1;
        match within {
            Some(Within::HookEvent(i)) => {
                writeln!(self.errors, "{pos}, data.events[{i}]: {e}; skipped")
            }
            _ => writeln!(self.errors, "{pos}: {e}; skipped"),
        }
    }
}

/// One output line: the record, and with `--raw` the event it came from.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    change: &'a MfaChange,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a RawValue>,
}
