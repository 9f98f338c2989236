//! 2,000 orgs over three replicas of the release binary on PostgreSQL (`scripts/bench/cluster.sh`):
//! how long until every org is held, each replica's CPU and memory while polling them all
//! (default 15 s interval), and how long a killed replica's orgs take to move (default lease).
//!
//! Environment: `BENCH_ORGS` (2000), `BENCH_STEADY_S` (60), `FACTORWATCH_TEST_POSTGRES`
//! (`postgres://postgres@127.0.0.1:5432/test`), `BENCH_BIN` (`target/release/factorwatch`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use factorwatch::store::Store;
use factorwatch::store::postgres::{Connect, PgStore};
use okta_sim::server::{Local, RateLimits};

const TOKEN: &str = "bench-token";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (CPU seconds, resident MiB) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ")".
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, rss_kib / 1024.0)
}

async fn held(store: &PgStore) -> HashMap<String, usize> {
    let (leases, _) = store.cluster().await.unwrap();
    let now = chrono::Utc::now();
    let mut by = HashMap::new();
    for l in leases.into_iter().filter(|l| l.expires_at > now) {
        *by.entry(l.owner).or_default() += 1;
    }
    by
}

#[tokio::main]
async fn main() {
    let orgs: usize = env_or("BENCH_ORGS", 2000);
    let steady = Duration::from_secs(env_or("BENCH_STEADY_S", 60));
    let url = std::env::var("FACTORWATCH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let bin = std::env::var("BENCH_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/release/factorwatch"
        )
        .into()
    });
    let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL");
    let schema = format!("fw_bench_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let store = PgStore::connect(&Connect {
        url: url.clone(),
        password: None,
        ca_file: None,
        max_connections: 2,
        schema: Some(schema.clone()),
        replica: Some("observer".into()),
    })
    .await
    .unwrap();

    // The orgs: one simulated Okta each.
    let mut sims = Vec::new();
    for i in 0..orgs {
        sims.push(
            Local::start(TOKEN, RateLimits::default(), i as u64)
                .await
                .unwrap(),
        );
    }
    let dir = std::env::temp_dir().join(format!("fw-bench-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut org_text = String::new();
    for (i, s) in sims.iter().enumerate() {
        org_text.push_str(&format!(
            "[[orgs]]\nname = \"org{i:04}\"\nurl = \"{}\"\ntoken_env = \"BENCH_OKTA_TOKEN\"\n[orgs.system_log]\nsince = \"1h\"\n",
            s.base
        ));
    }
    let mut children: Vec<Child> = Vec::new();
    let started = Instant::now();
    for r in 0..3 {
        let rdir = dir.join(format!("r{r}"));
        std::fs::create_dir_all(&rdir).unwrap();
        let config = rdir.join("factorwatch.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\nurl = \"{url}?options=-csearch_path%3D{schema}\"\n[[sinks]]\nname = \"file\"\ntype = \"file\"\npath = \"{d}/siem.ndjson\"\n[email]\ndir = \"{d}/mail\"\n[hooks]\nlisten = \"127.0.0.1:0\"\n{org_text}",
                d = rdir.display()
            ),
        )
        .unwrap();
        children.push(
            Command::new(&bin)
                .args(["run", "--config"])
                .arg(&config)
                .env("BENCH_OKTA_TOKEN", TOKEN)
                .env("FACTORWATCH_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the release binary: cargo build --release"),
        );
    }
    let wait_all_held = |store: PgStore, want: usize| async move {
        let t = Instant::now();
        loop {
            let h = held(&store).await;
            if h.values().sum::<usize>() == orgs && h.len() == want {
                return (t.elapsed(), h);
            }
            assert!(
                t.elapsed() < Duration::from_secs(300),
                "orgs not all held: {h:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (_, spread) = wait_all_held(store.clone(), 3).await;
    let all_held = started.elapsed();
    let mut counts: Vec<usize> = spread.values().copied().collect();
    counts.sort();
    println!(
        "{orgs} orgs, 3 replicas of {bin} on PostgreSQL; polling every 15 s (the default), lease 15 s (the default)"
    );
    println!(
        "all orgs held {:.1} s after the replicas started (orgs per replica then: {counts:?}; the first to start takes many, then hands them over)",
        all_held.as_secs_f64()
    );

    // Steady state: CPU and memory per replica.
    let before: Vec<(f64, f64)> = children.iter().map(|c| usage(c.id())).collect();
    tokio::time::sleep(steady).await;
    let after: Vec<(f64, f64)> = children.iter().map(|c| usage(c.id())).collect();
    println!("steady state over {} s:", steady.as_secs());
    println!("| replica | CPU (share of one core) | RSS MiB |");
    println!("|---|---|---|");
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        println!(
            "| {i} | {:.1}% | {:.1} |",
            (a.0 - b.0) / steady.as_secs_f64() * 100.0,
            a.1
        );
    }
    let mut counts: Vec<usize> = held(&store).await.values().copied().collect();
    counts.sort();
    println!("orgs per replica after the steady state: {counts:?}");
    let polls: usize = sims
        .iter()
        .map(|s| s.org.polls().map(|p| p.len()).unwrap_or(0))
        .sum();
    println!(
        "requests to /api/v1/logs so far: {polls} ({:.1}/s over {:.0} s)",
        polls as f64 / started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // A replica dies: how long until its orgs are held again.
    let victim = 0;
    let _ = children[victim].kill();
    let _ = children[victim].wait();
    let killed = Instant::now();
    let (moved, spread) = wait_all_held(store.clone(), 2).await;
    let mut counts: Vec<usize> = spread.values().copied().collect();
    counts.sort();
    println!(
        "replica {victim} SIGKILLed: its orgs held by the other two {:.1} s later (lease 15 s); orgs per replica: {counts:?}",
        moved.as_secs_f64()
    );
    let _ = killed;
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&admin)
    .await;
}
