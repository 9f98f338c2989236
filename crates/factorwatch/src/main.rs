//! The `factorwatch` command line.

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use factorwatch::classify::{self, Classifier};
use factorwatch::commands;
use factorwatch::okta::factors::Provider;

#[derive(Parser)]
#[command(
    name = "factorwatch",
    version,
    about = "Tells users and the SIEM when an Okta MFA factor changes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print one MFA change record per line (NDJSON) for the Okta events in FILE.
    ///
    /// Reads System Log events (one event, a JSON array or NDJSON), Event Hook deliveries and
    /// legacy Events API events, auto-detected. Values that are not valid JSON or not Okta events
    /// are reported on stderr with their position and skipped; the exit status is then 1.
    Classify {
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
    },
    /// Run the daemon: poll Okta, receive its Event Hooks, deliver to the SIEM and users.
    ///
    /// Every config key can also be set by an environment variable: FACTORWATCH__ then the key's
    /// path, steps joined by `__` (FACTORWATCH__STORE__PATH, FACTORWATCH__ORGS__0__URL).
    /// Secrets come only from environment variables or files the config names.
    Run {
        /// The TOML configuration file.
        #[arg(long, short, env = "FACTORWATCH_CONFIG")]
        config: Option<PathBuf>,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// Poll every source until caught up, deliver what is due, then exit (for cron or a
        /// systemd timer). Event Hooks are received only while it runs; deliveries put off to
        /// later (retries, the email coalescing window), and deliveries to a destination that made
        /// no progress for a minute (it is down), wait for the next run.
        #[arg(long)]
        once: bool,
    },
    /// Replay a past window of the System Log (up to 90 days) through the pipeline, without
    /// handling anything twice; resumable; progress on stderr.
    Backfill {
        /// The org, by its name in the configuration.
        #[arg(long)]
        org: String,
        /// The window's start: a date (2026-10-01) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        /// The window's end (default: now).
        #[arg(long)]
        until: Option<String>,
        /// Also email users about the changes found (off: old news).
        #[arg(long)]
        email: bool,
        #[arg(long, short, env = "FACTORWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Feed exported Okta events (any layout `classify` reads) through the pipeline: their changes
    /// are stored (once, whatever was handled before) and delivered by `run`.
    Replay {
        /// The events; `-` reads standard input.
        file: PathBuf,
        /// The org (by its config name) the events belong to.
        #[arg(long)]
        org: String,
        #[arg(long, short, env = "FACTORWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Set up and list the org's Event Hook through Okta's API.
    Okta {
        #[arg(long, short, env = "FACTORWATCH_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// The org, by its name in the configuration (before the action: `okta --org acme hooks`).
        #[arg(long)]
        org: String,
        #[command(subcommand)]
        action: OktaAction,
    },
    /// Check the configuration and every connection (Okta, SIEM sinks, email); exit 1 if any fails.
    Check {
        #[arg(long, short, env = "FACTORWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff: `factorwatch man | man -l -`), or with --dir write one page per
    /// command there (factorwatch.1, factorwatch-run.1, …) for /usr/share/man/man1.
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Where each source resumes, and starting one again from its configured `since`.
    Cursor {
        #[arg(long, short, env = "FACTORWATCH_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: CursorAction,
    },
    /// Inspect and re-drive failed deliveries (dead letters).
    Outbox {
        /// The TOML configuration file (for the store's path).
        #[arg(long, short, env = "FACTORWATCH_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Print the complete email each change record would produce (headers and MIME parts), without
    /// sending; it writes to the record's user.login (no Okta lookup).
    RenderEmail {
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
    },
    /// See it work with no Okta org: a simulated org, the whole pipeline, a live summary.
    ///
    /// Writes SIEM records, emails (.eml) and its store under DIR. Stops at Ctrl-C, or after
    /// --duration.
    Demo {
        /// Stop after this long (`30s`, `2m`).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Where the demo writes.
        #[arg(long, default_value = "factorwatch-demo")]
        dir: PathBuf,
        /// Seeds the simulated org.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum OktaAction {
    /// Create, verify and activate an Event Hook for the MFA event types, posting to URL (where
    /// factorwatch's receiver is reachable); its new secret goes to the org's hook.secret_file.
    RegisterHook {
        #[arg(long)]
        url: String,
    },
    /// List the org's Event Hooks.
    Hooks,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print a commented configuration with every option and its default.
    Example,
    /// Check a configuration file (and FACTORWATCH__ variables) and say what is wrong.
    Validate {
        #[arg(long, short, env = "FACTORWATCH_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CursorAction {
    /// Every org's sources: events read, newest event, where the cursor points.
    List,
    /// Forget a source's cursor (after the org's url changed): it starts again from `since`.
    Reset {
        #[arg(long)]
        org: String,
        /// system_log, events_api or backfill.
        #[arg(long)]
        source: String,
    },
}

#[derive(Subcommand)]
enum OutboxAction {
    /// List dead letters (all, or one destination's).
    List {
        #[arg(long)]
        destination: Option<String>,
    },
    /// Put dead letters back in line: the ids given, or all (of --destination).
    Retry {
        ids: Vec<i64>,
        #[arg(long)]
        destination: Option<String>,
    },
    /// Give dead letters up for good (kept in the store, marked dropped).
    Drop {
        ids: Vec<i64>,
        #[arg(long)]
        destination: Option<String>,
    },
}

fn init_logging(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FACTORWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs a command's future on a fresh runtime; an error is printed and exits with `failure`.
fn block_on(f: impl std::future::Future<Output = Result<(), String>>, failure: u8) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("factorwatch: {e}");
            ExitCode::from(failure)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("factorwatch: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Classify {
            file,
            raw,
            okta_authoritative,
            format,
            org,
        } => {
            let config = classify::Config {
                okta_authoritative: okta_authoritative.into_iter().collect(),
            };
            let context = factorwatch::formats::Context {
                org,
                hostname: factorwatch::formats::local_hostname(),
            };
            let encoding = match format.as_str() {
                "record" => None,
                "syslog" => Some(commands::classify::Encoding {
                    format: factorwatch::formats::Format::Record,
                    syslog: true,
                    context,
                }),
                other => match factorwatch::formats::Format::parse(other) {
                    Ok(format) => Some(commands::classify::Encoding {
                        format,
                        syslog: false,
                        context,
                    }),
                    Err(e) => {
                        eprintln!("factorwatch: --format: {e}, or syslog");
                        return ExitCode::from(2);
                    }
                },
            };
            classify_command(
                &Classifier::new(config),
                file,
                commands::classify::Options { raw, encoding },
            )
        }
        Command::Run {
            config,
            log_json,
            once,
        } => {
            init_logging(log_json, "info");
            block_on(commands::run::run(config.as_deref(), once), 2)
        }
        Command::Backfill {
            org,
            since,
            until,
            email,
            config,
        } => block_on(backfill_command(org, since, until, email, config), 2),
        Command::Replay { file, org, config } => block_on(replay_command(&file, &org, config), 2),
        Command::Okta {
            config,
            org,
            action,
        } => {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let config =
                match factorwatch::config::Config::load(config.as_deref(), std::env::vars()) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("factorwatch: {e}");
                        return ExitCode::from(2);
                    }
                };
            let env = |name: &str| std::env::var(name).ok();
            let mut out = io::stdout();
            let result = rt.block_on(async {
                match action {
                    OktaAction::RegisterHook { url } => {
                        commands::okta::register_hook(&config, &org, &url, &env, &mut out).await
                    }
                    OktaAction::Hooks => {
                        commands::okta::list_hooks(&config, &org, &env, &mut out).await
                    }
                }
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("factorwatch: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check { config } => {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let config =
                match factorwatch::config::Config::load(config.as_deref(), std::env::vars()) {
                    Ok(c) => c,
                    Err(e) => {
                        println!("FAIL  configuration  {e}");
                        return ExitCode::from(1);
                    }
                };
            let env = |name: &str| std::env::var(name).ok();
            let checks = rt.block_on(commands::check::run(&config, &env));
            match commands::check::print(&checks, &mut io::stdout()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(_) => ExitCode::from(2),
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "factorwatch", &mut io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            let written = match dir {
                Some(dir) => std::fs::create_dir_all(&dir)
                    .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
                    .map_err(|e| {
                        format!("cannot write the manual pages to {}: {e}", dir.display())
                    }),
                None => match clap_mangen::Man::new(Cli::command()).render(&mut io::stdout()) {
                    // `factorwatch man | head`: the reader left, nothing is wrong.
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
                    r => r.map_err(|e| format!("cannot print the manual page: {e}")),
                },
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("factorwatch: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Config { action } => match action {
            ConfigAction::Example => {
                print!("{}", commands::outbox::EXAMPLE_CONFIG);
                ExitCode::SUCCESS
            }
            ConfigAction::Validate { config } => {
                match factorwatch::config::Config::load(config.as_deref(), std::env::vars()) {
                    Ok(c) => {
                        println!(
                            "ok: {} org(s), {} sink(s), email {}",
                            c.orgs.len(),
                            c.sinks.len(),
                            if c.email.enabled {
                                c.email.transport.as_str()
                            } else {
                                "off"
                            }
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("factorwatch: {e}");
                        ExitCode::from(2)
                    }
                }
            }
        },
        Command::Outbox { config, action } => block_on(outbox_command(config, action), 2),
        Command::Cursor { config, action } => block_on(cursor_command(config, action), 2),
        Command::RenderEmail {
            change,
            templates,
            language,
            from,
            help_text,
            org,
        } => {
            let from = match from.parse() {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("factorwatch: --from {from:?}: {e}");
                    return ExitCode::from(2);
                }
            };
            let options = commands::render_email::Options {
                templates,
                language,
                from,
                help: help_text,
                org,
            };
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            let mut errors = io::stderr().lock();
            let result = if change.as_os_str() == "-" {
                commands::render_email::run(&options, io::stdin().lock(), &mut out, &mut errors)
            } else {
                match File::open(&change) {
                    Ok(f) => commands::render_email::run(
                        &options,
                        BufReader::new(f),
                        &mut out,
                        &mut errors,
                    ),
                    Err(e) => {
                        eprintln!("factorwatch: cannot read {}: {e}", change.display());
                        return ExitCode::from(2);
                    }
                }
            };
            match result {
                Ok((_, 0)) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("factorwatch: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo {
            duration,
            dir,
            seed,
        } => {
            init_logging(false, "warn");
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let options = commands::demo::Options {
                dir,
                duration,
                seed,
            };
            let mut out = io::stdout();
            match rt.block_on(commands::demo::run(options, &mut out)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("factorwatch: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| format!("{s:?} is neither a date (2026-10-01) nor an RFC 3339 time"))
}

async fn backfill_command(
    org: String,
    since: String,
    until: Option<String>,
    email: bool,
    config: Option<PathBuf>,
) -> Result<(), String> {
    let config = factorwatch::config::Config::load(config.as_deref(), std::env::vars())
        .map_err(|e| e.to_string())?;
    let options = commands::backfill::Options {
        org,
        since: parse_time(&since)?,
        until: until
            .as_deref()
            .map(parse_time)
            .transpose()?
            .unwrap_or_else(chrono::Utc::now),
        email,
        max_pages: None,
    };
    let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
        .await
        .map_err(|e| e.to_string())?;
    let env = |name: &str| std::env::var(name).ok();
    let result = commands::backfill::run(&config, &store, &options, &env, &mut io::stderr()).await;
    store.close().await;
    let summary = result?;
    println!(
        "{} events read, {} new MFA changes owed to the sinks, {} already handled{}",
        summary.events,
        summary.new_changes,
        summary.known_changes,
        if summary.finished {
            ""
        } else {
            " (not finished: run again to resume)"
        }
    );
    Ok(())
}

async fn replay_command(
    file: &std::path::Path,
    org: &str,
    config: Option<PathBuf>,
) -> Result<(), String> {
    use factorwatch::store::Store;
    let config = factorwatch::config::Config::load(config.as_deref(), std::env::vars())
        .map_err(|e| e.to_string())?;
    if !config.orgs.iter().any(|o| o.name == org) {
        return Err(format!("no org named {org:?} in the configuration"));
    }
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        io::Read::read_to_string(&mut io::stdin(), &mut s).map_err(|e| e.to_string())?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?
    };
    let ingest = factorwatch::daemon::ingest_for(&config);
    let batch = ingest.batch(factorwatch::store::SourceKind::SystemLog, &text, None);
    let (events, rejects) = (batch.events_seen, batch.rejects.len());
    let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
        .await
        .map_err(|e| e.to_string())?;
    let committed = store
        .commit(org, &batch, chrono::Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    store.close().await;
    println!(
        "{events} events read: {} new MFA changes stored for delivery, {} already known, {rejects} values rejected (kept with their error)",
        committed.new, committed.duplicates
    );
    Ok(())
}

async fn cursor_command(config: Option<PathBuf>, action: CursorAction) -> Result<(), String> {
    let config = factorwatch::config::Config::load(config.as_deref(), std::env::vars())
        .map_err(|e| e.to_string())?;
    let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = io::stdout().lock();
    let result = match action {
        CursorAction::List => commands::cursor::list(&store, &mut out).await,
        CursorAction::Reset { org, source } => {
            commands::cursor::reset(&store, &org, &source, &mut out).await
        }
    };
    store.close().await;
    result
}

async fn outbox_command(config: Option<PathBuf>, action: OutboxAction) -> Result<(), String> {
    use factorwatch::store::Store;
    let config = factorwatch::config::Config::load(config.as_deref(), std::env::vars())
        .map_err(|e| e.to_string())?;
    let store = factorwatch::store::sqlite::SqliteStore::open(&config.store.path)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = io::stdout().lock();
    let result = match action {
        OutboxAction::List { destination } => {
            let dead = store
                .dead_letters(destination.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            commands::outbox::list(&dead, &mut out).map_err(|e| e.to_string())
        }
        OutboxAction::Retry { ids, destination } => {
            let chosen = commands::outbox::select(&store, &ids, destination.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let ids: Vec<i64> = chosen.iter().map(|d| d.id).collect();
            let n = store
                .redrive(&ids, chrono::Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            writeln!(out, "{n} dead letter(s) back in line").map_err(|e| e.to_string())
        }
        OutboxAction::Drop { ids, destination } => {
            let chosen = commands::outbox::select(&store, &ids, destination.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let ids: Vec<i64> = chosen.iter().map(|d| d.id).collect();
            let n = store.drop_dead(&ids).await.map_err(|e| e.to_string())?;
            writeln!(out, "{n} dead letter(s) dropped").map_err(|e| e.to_string())
        }
    };
    store.close().await;
    result
}

fn classify_command(
    classifier: &Classifier,
    file: Option<PathBuf>,
    options: commands::classify::Options,
) -> ExitCode {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut errors = io::stderr().lock();
    let result = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => match File::open(&path) {
            Ok(f) => commands::classify::run(
                classifier,
                options,
                BufReader::new(f),
                &mut out,
                &mut errors,
            ),
            Err(e) => {
                eprintln!("factorwatch: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => commands::classify::run(
            classifier,
            options,
            io::stdin().lock(),
            &mut out,
            &mut errors,
        ),
    };
    match result {
        Ok(summary) if summary.skipped > 0 => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        // A reader that stopped listening (`| head`) is not a failure of ours.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("factorwatch: {e}");
            ExitCode::from(2)
        }
    }
}
