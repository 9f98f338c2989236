//! `factorwatch render-email --change FILE`: for each record in FILE (the NDJSON `classify`
//! prints), the complete message as it would be sent — RFC 5322 headers and MIME parts — without
//! sending and without any Okta lookup (it writes to `user.login`). For template authors and
//! reviewers.

use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use lettre::message::Mailbox;

use super::CommandError;

use crate::email::templates::Templates;
use crate::email::{message, message_id, notice};
use crate::enrich::Enrichment;
use crate::record::MfaChange;

#[derive(clap::Args)]
pub struct Args {
    /// Records as `classify` prints them (NDJSON); `-` reads standard input.
    #[arg(long = "change")]
    change: PathBuf,
    /// A folder of templates overriding the built-in ones.
    #[arg(long)]
    templates: Option<PathBuf>,
    /// en or fr.
    #[arg(long, default_value = "en")]
    language: String,
    #[arg(long, default_value = "Security <security@localhost>")]
    from: String,
    /// What to do if it wasn't them.
    #[arg(long, default_value = "contact your help desk right away.")]
    help_text: String,
    #[arg(long, default_value = "your organization")]
    org: String,
}

/// `factorwatch render-email`: exit 1 when some record could not be rendered.
pub fn main(args: Args) -> Result<ExitCode, CommandError> {
    let from = args
        .from
        .parse()
        .map_err(|e| CommandError::Usage(format!("--from {:?}: {e}", args.from)))?;
    let options = Options {
        templates: args.templates,
        language: args.language,
        from,
        help: args.help_text,
        org: args.org,
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut errors = io::stderr().lock();
    let (_, failed) = if args.change.as_os_str() == "-" {
        run(&options, io::stdin().lock(), &mut out, &mut errors)
    } else {
        let f = std::fs::File::open(&args.change).map_err(CommandError::io(format!(
            "cannot read {}",
            args.change.display()
        )))?;
        run(&options, BufReader::new(f), &mut out, &mut errors)
    }
    .map_err(CommandError::io("render-email"))?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub struct Options {
    pub templates: Option<PathBuf>,
    pub language: String,
    pub from: Mailbox,
    pub help: String,
    pub org: String,
}

/// Renders every record of `input` to `out`; problems (not a record, no user login, a template
/// error) go to `errors`. Returns how many messages were printed and how many records failed.
pub fn run(
    options: &Options,
    input: impl BufRead,
    out: &mut impl Write,
    errors: &mut impl Write,
) -> io::Result<(usize, usize)> {
    let templates = Templates::new(options.templates.clone(), &options.language);
    let (mut printed, mut failed) = (0, 0);
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let change: MfaChange = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => {
                writeln!(errors, "line {}: not an MFA change record: {e}", n + 1)?;
                failed += 1;
                continue;
            }
        };
        let Some(login) = change.user.as_ref().and_then(|u| u.login.clone()) else {
            writeln!(
                errors,
                "line {}: the change names no user login to write to",
                n + 1
            )?;
            failed += 1;
            continue;
        };
        let enrichment = Enrichment {
            email: Some(login.clone()),
            locale: Some(options.language.clone()),
            ..Enrichment::default()
        };
        let to = vec![login.clone()];
        let notice = notice::notice(
            &[(change.clone(), enrichment)],
            &to,
            &options.org,
            &options.help,
            &[],
        );
        let rendered = match templates.render(&options.language, &notice) {
            Ok(r) => r,
            Err(e) => {
                writeln!(errors, "line {}: {e}", n + 1)?;
                failed += 1;
                continue;
            }
        };
        let id = message_id(&options.org, &change.id.to_wire(), &login);
        match message(&options.from, &login, &rendered, id) {
            Ok(m) => {
                out.write_all(&m.formatted())?;
                writeln!(out, "\n")?;
                printed += 1;
            }
            Err(e) => {
                writeln!(errors, "line {}: {e}", n + 1)?;
                failed += 1;
            }
        }
    }
    Ok((printed, failed))
}
