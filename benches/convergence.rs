//! Benchmark harness: the real operator binary against a real kube-apiserver and the
//! emulator, measuring what Qlik's rate limits make matter.
//!
//! ```sh
//! cargo bench --bench convergence                       # N = 100 and 1000
//! cargo bench --bench convergence -- --sizes 100,1000,5000 --factor 20
//! cargo bench --bench convergence -- --sizes 1000 --competitor-share 0.5
//! ```
//!
//! After the change latencies, `--drift-edits K` (default 20) edits K automations out of band
//! (as an admin in the Qlik UI would) and measures how long until the operator has set each
//! back, then runs a bench-only per-resource poller (one GET per automation, round robin)
//! spending the same reads per second as the operator's drift watch
//! (`--read-budget-share` of Tier 1) and measures how long it takes to see each edit.
//!
//! `--competitor-share S` adds another tool using the operator's key during the cold phase:
//! a client with a limiter of its own spending S of Tier 2 (idempotent enables). The floor is
//! then computed from what it leaves, and the operator's own 429s are told apart from the
//! competitor's.
//!
//! `--window-seconds W` (default 60, the strict case) is the sliding window both the emulator
//! and the operator count the limits over (the live service's is 300). Next to the rate floor
//! (N writes at the per-minute rate) the table prints the *window floor*: with B writes
//! allowed per window (the per-minute limit times W/60, less what a competitor spends per
//! window), the Nth write cannot go without a 429 before (ceil(N/B) - 1) * W.
//!
//! The operator reaches the emulator through a byte-forwarding proxy of the harness that
//! counts list requests, so the steady state is reported per refresh of the tenant list (a
//! list without `cursor`) as well as per interval. `--drift-edits 0` skips the drift phase.
//!
//! Both the emulator's and the operator's tier limits are scaled up by `--factor` (Qlik's
//! 1000 reads and 100 writes a minute, times the factor), so a run takes minutes; the table
//! prints the limits used. Figures come from one run on a shared machine: compare ratios,
//! not absolute times.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use qlik_automations_operator::{
    crd::{ConditionStatus, QlikAutomation},
    emulator::RunningEmulator,
    qlik::Tier,
};
use serde_json::json;

use support::{
    control_plane::ControlPlane,
    operator::{OperatorProcess, TestNamespace, USER_KEY, emulator},
};

/// Command-line settings of a run.
struct Settings {
    sizes: Vec<usize>,
    factor: u32,
    resync_seconds: u64,
    intervals: u32,
    changes: usize,
    competitor_share: f64,
    drift_edits: usize,
    window_seconds: u64,
}

impl Settings {
    fn from_args() -> Settings {
        let mut s = Settings {
            sizes: vec![100, 1000],
            factor: 10,
            resync_seconds: 30,
            intervals: 3,
            changes: 25,
            competitor_share: 0.0,
            drift_edits: 20,
            window_seconds: 60,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let value = args.get(i + 1).cloned().unwrap_or_default();
            match args[i].as_str() {
                "--sizes" => {
                    s.sizes = value
                        .split(',')
                        .filter_map(|v| v.trim().parse().ok())
                        .collect();
                    i += 1;
                }
                "--factor" => {
                    s.factor = value.parse().unwrap_or(s.factor);
                    i += 1;
                }
                "--resync-seconds" => {
                    s.resync_seconds = value.parse().unwrap_or(s.resync_seconds);
                    i += 1;
                }
                "--intervals" => {
                    s.intervals = value.parse().unwrap_or(s.intervals);
                    i += 1;
                }
                "--competitor-share" => {
                    s.competitor_share = value
                        .parse::<f64>()
                        .map(|v| v.clamp(0.0, 0.9))
                        .unwrap_or(s.competitor_share);
                    i += 1;
                }
                "--drift-edits" => {
                    s.drift_edits = value.parse().unwrap_or(s.drift_edits);
                    i += 1;
                }
                "--window-seconds" => {
                    s.window_seconds = value
                        .parse::<u64>()
                        .map(|v| v.max(1))
                        .unwrap_or(s.window_seconds);
                    i += 1;
                }
                "--changes" => {
                    s.changes = value.parse().unwrap_or(s.changes);
                    i += 1;
                }
                // `cargo bench` passes `--bench` to harness-less benches.
                _ => {}
            }
            i += 1;
        }
        s
    }

    fn tier1(&self) -> u32 {
        Tier::Tier1.default_per_minute() * self.factor
    }

    fn tier2(&self) -> u32 {
        Tier::Tier2.default_per_minute() * self.factor
    }

    /// The sliding window both sides count the limits over.
    fn window(&self) -> Duration {
        Duration::from_secs(self.window_seconds)
    }

    /// `per_minute` scaled to the window: what may go within any one window.
    fn per_window(&self, per_minute: u32) -> f64 {
        f64::from(per_minute) * self.window_seconds as f64 / 60.0
    }
}

/// The earliest the last of `n` writes can go without a 429 when `budget` writes are allowed
/// per sliding `window`: the first `budget` at once, each later one a window after the one
/// `budget` before it. Zero when `n` fits one window (then processing bounds the figure).
fn window_floor(n: usize, budget: f64, window: Duration) -> Duration {
    let budget = budget.floor().max(1.0);
    let windows = (n as f64 / budget).ceil() - 1.0;
    window.mul_f64(windows.max(0.0))
}

/// List requests the proxy saw: the pages of each refresh of the tenant list (a first page,
/// without `cursor`, starts one; the pages after it belong to it).
#[derive(Default)]
struct ListCounts {
    /// Pages per refresh, in the order the refreshes started.
    refreshes: std::sync::Mutex<Vec<u64>>,
}

impl ListCounts {
    /// How many refreshes have started so far.
    fn started(&self) -> usize {
        self.refreshes.lock().unwrap().len()
    }

    /// The page counts of the refreshes that started at or after refresh `from` and before
    /// `to` (counts from [`ListCounts::started`]): a refresh still going at `to` is left out, as is
    /// one that started before `from`, so each counted refresh is whole.
    fn pages_per_refresh(&self, from: usize, to: usize) -> Vec<u64> {
        let refreshes = self.refreshes.lock().unwrap();
        refreshes[from.min(refreshes.len())..to.min(refreshes.len())].to_vec()
    }

    /// Counts the request line `line` if it lists the automations collection.
    fn record(&self, line: &[u8]) {
        let Some(target) = line
            .strip_prefix(b"GET ")
            .and_then(|rest| rest.split(|&b| b == b' ').next())
        else {
            return;
        };
        let target = String::from_utf8_lossy(target);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path.starts_with("/api/") && path.ends_with("/automations") {
            let mut refreshes = self.refreshes.lock().unwrap();
            if query.split('&').any(|p| p.starts_with("cursor=")) {
                if let Some(last) = refreshes.last_mut() {
                    *last += 1;
                }
            } else {
                refreshes.push(1);
            }
        }
    }
}

/// A TCP proxy in front of `upstream` that forwards bytes unchanged both ways and counts the
/// list requests of the HTTP/1.1 requests going up. Returns its base URL.
async fn counting_proxy(
    upstream: std::net::SocketAddr,
    counts: std::sync::Arc<ListCounts>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counts = counts.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                });
                // Request lines start a line; bodies are JSON and never hold "\r\nGET /api/".
                let mut line: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let read = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => read,
                    };
                    for &b in &buf[..read] {
                        if b == b'\n' {
                            counts.record(&line);
                            line.clear();
                        } else if line.len() < 8192 {
                            line.push(b);
                        }
                    }
                    if server_write.write_all(&buf[..read]).await.is_err() {
                        break;
                    }
                }
                let _ = server_write.shutdown().await;
                let _ = down.await;
            });
        }
    });
    format!("http://{addr}")
}

/// Peak resident memory in MiB (`VmHWM`) of process `pid`.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User plus system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// The operator binary watching `namespace` with the run's limits and resync.
fn start_operator(namespace: &str, settings: &Settings, n: usize) -> OperatorProcess {
    let args: Vec<String> = [
        "run",
        "--namespaces",
        namespace,
        "--listen",
        "127.0.0.1:0",
        "--concurrency",
        "16",
        "--resync-seconds",
        &settings.resync_seconds.to_string(),
        "--tier1-per-minute",
        &settings.tier1().to_string(),
        "--tier2-per-minute",
        &settings.tier2().to_string(),
        // The same window on both sides: 60 s (the default here) is the strict case the
        // earlier figures in BENCHMARKS.md were measured with; the live service's 300 s
        // window is a burst of five minutes' budget, then the same pace.
        "--rate-window-seconds",
        &settings.window_seconds.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    OperatorProcess::start(
        &format!("bench-{n}"),
        &ControlPlane::shared().kubeconfig_path(),
        &args,
        // `QAO_BENCH_LOG` sets the operator's log filter (e.g. `info,kube_runtime=debug`)
        // when a run needs explaining; its log is `<temp>/qao-e2e-logs/bench-N.log`.
        &[(
            "RUST_LOG".to_string(),
            std::env::var("QAO_BENCH_LOG").unwrap_or_else(|_| "warn".to_string()),
        )],
    )
}

fn manifest(name: &str) -> QlikAutomation {
    serde_json::from_value(json!({
        "apiVersion": "automations.qlik.dev/v1alpha1",
        "kind": "QlikAutomation",
        "metadata": {"name": name},
        "spec": {
            "connection": {"secretRef": {"name": "qlik"}},
            "description": "benchmark",
            "schedules": [{"startAt": "2026-01-01 00:00:00", "interval": 3600, "timezone": "UTC"}],
            "workspace": {"blocks": [{"id": "start", "type": "StartBlock", "runMode": "manual"}]}
        }
    }))
    .unwrap()
}

fn ready(a: &QlikAutomation) -> bool {
    a.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
            && s.observed_generation == a.metadata.generation
    })
}

/// The objects of `api` as a watch keeps them: the harness counts Ready ones in it instead of
/// listing N objects every poll, which at N = 10 000 made the harness the apiserver's
/// largest client, competing with the operator it measures. The task ends with the runtime.
fn watch_objects(api: &Api<QlikAutomation>) -> kube::runtime::reflector::Store<QlikAutomation> {
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (reader, writer) = reflector::store();
    let stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    tokio::spawn(stream.for_each(|_| std::future::ready(())));
    reader
}

async fn count_ready(api: &Api<QlikAutomation>) -> usize {
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.iter().filter(|a| ready(a)).count())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Row {
    n: usize,
    cold: Duration,
    floor: Duration,
    window_floor: Duration,
    cold_429: u64,
    cold_writes: u64,
    competitor: Option<Competed>,
    steady_tier1: f64,
    steady_tier2: f64,
    /// Refreshes of the tenant list per interval, and the fewest and most list pages one
    /// whole refresh took.
    steady_refreshes: f64,
    steady_pages_per_refresh: (u64, u64),
    /// The operator's CPU seconds over the steady phase, scaled to one hour.
    idle_cpu_per_hour: f64,
    change_median: Duration,
    change_p99: Duration,
    drift: Option<Drift>,
    peak_rss_mib: f64,
    cpu_seconds: f64,
}

/// The operator's read budget for drift detection: the default `--read-budget-share`.
const READ_BUDGET_SHARE: f64 = 0.1;

/// Drift-detection latencies: the operator's (edit until set back) and a per-resource
/// poller's at the same read spend (edit until its GET sees it).
#[derive(Debug, Clone)]
struct Drift {
    operator: Vec<Duration>,
    poller: Vec<Duration>,
    poller_reads_per_second: f64,
}

/// A client of the emulator as its admin, acting in the Qlik UI, sending at most
/// `tier1_per_minute` reads a minute evenly: over the shortest window that holds a whole
/// number of them (60 s / gcd(limit, 60), 3 s at 100 or 1000 a minute), so a poller on it
/// never bursts a minute's budget at once and gets exactly its rate (the limiter rounds a
/// window's share down: over one-second windows 100 a minute would be 60).
fn admin_tenant(
    base_url: &str,
    tier1_per_minute: u32,
) -> qlik_automations_operator::qlik::QlikClient {
    use qlik_automations_operator::qlik::{ApiKey, ClientConfig, QlikClient, RateLimits};
    let mut config = ClientConfig::new(base_url, ApiKey::new(support::operator::ADMIN_KEY));
    config.api = qlik_automations_operator::qlik::Api::V1;
    let per_minute = tier1_per_minute.max(1);
    let gcd = {
        let (mut a, mut b) = (per_minute, 60);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    config.rate_limits = RateLimits {
        tier1_per_minute: per_minute,
        tier2_per_minute: 100_000,
        window: Duration::from_secs(u64::from(60 / gcd)),
    };
    QlikClient::new(config).unwrap()
}

/// Edits `ids` out of band one at a time and measures until the operator has set each back
/// (its description is the manifest's again).
async fn operator_drift(emu: &RunningEmulator, ids: &[String]) -> Vec<Duration> {
    use qlik_automations_operator::qlik::model::AutomationRequest;
    let tenant = admin_tenant(&emu.base_url(), 100_000);
    let mut latencies = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let before = tenant.get_automation(id).await.unwrap().description;
        let t0 = Instant::now();
        tenant
            .update_automation(
                id,
                &AutomationRequest {
                    description: Some(format!("edited by hand {i}")),
                    ..AutomationRequest::default()
                },
            )
            .await
            .unwrap();
        loop {
            let now = emu
                .automations()
                .iter()
                .find(|a| a["id"] == id.as_str())
                .and_then(|a| a["description"].as_str().map(str::to_owned));
            if now == before {
                latencies.push(t0.elapsed());
                break;
            }
            if t0.elapsed() > Duration::from_secs(600) {
                panic!("drift {i} never set back");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    latencies.sort();
    latencies
}

/// A per-resource poller spending `reads_per_second` GETs round robin over `all`: edits
/// every one of `edited` out of band while it runs and measures, for each, until one of its
/// GETs shows the edit. Bench-only, on the project's client.
async fn poller_drift(
    emu: &RunningEmulator,
    all: Vec<String>,
    edited: &[String],
    reads_per_second: f64,
) -> Vec<Duration> {
    use qlik_automations_operator::qlik::model::AutomationRequest;
    use std::{collections::HashMap, sync::Mutex};
    let seen: std::sync::Arc<Mutex<HashMap<String, String>>> = Default::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let client = admin_tenant(&emu.base_url(), (reads_per_second * 60.0).round() as u32);
        let seen = seen.clone();
        let stop = stop.clone();
        // Its own limiter paces it at exactly its budget.
        tokio::spawn(async move {
            let mut next = all.iter().cycle();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = next.next().unwrap();
                if let Ok(a) = client.get_automation(id).await {
                    seen.lock()
                        .unwrap()
                        .insert(id.clone(), a.description.unwrap_or_default());
                }
            }
        })
    };
    // All edits at once (a poller's latency does not depend on the others), each timed from
    // its own edit until a GET of the poller shows it.
    let tenant = admin_tenant(&emu.base_url(), 100_000);
    let mut pending = Vec::new();
    for (i, id) in edited.iter().enumerate() {
        let text = format!("polled edit {i}");
        let t0 = Instant::now();
        tenant
            .update_automation(
                id,
                &AutomationRequest {
                    description: Some(text.clone()),
                    ..AutomationRequest::default()
                },
            )
            .await
            .unwrap();
        pending.push((id.clone(), text, t0));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    while !pending.is_empty() {
        {
            let seen = seen.lock().unwrap();
            pending.retain(|(id, text, t0)| {
                let found = seen.get(id) == Some(text);
                if found {
                    latencies.push(t0.elapsed());
                }
                !found
            });
        }
        if started.elapsed() > Duration::from_secs(3600) {
            panic!("the poller never saw {} edits", pending.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = poller.await;
    latencies.sort();
    latencies
}

/// What the competing tool did during the cold phase.
#[derive(Debug, Clone, Copy)]
struct Competed {
    sent: u64,
    refused: u64,
}

/// Another tool on the operator's key: spends `share` of Tier 2 with idempotent enables of an
/// automation of its own, through a client (and limiter) of its own, until `stop` is set.
async fn compete(
    base_url: String,
    per_minute: u32,
    window: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Competed {
    use qlik_automations_operator::qlik::{
        ApiKey, ClientConfig, QlikClient, RateLimits, RetryPolicy, model::AutomationRequest,
    };
    let mut config = ClientConfig::new(base_url, ApiKey::new(USER_KEY));
    config.api = qlik_automations_operator::qlik::Api::V1;
    config.rate_limits = RateLimits {
        tier1_per_minute: 1000,
        tier2_per_minute: per_minute,
        window,
    };
    config.retry = RetryPolicy::none();
    let client = QlikClient::new(config).unwrap();
    let own = client
        .create_automation(&AutomationRequest {
            name: Some("competitor".into()),
            ..AutomationRequest::default()
        })
        .await
        .unwrap();
    let mut done = Competed {
        sent: 1,
        refused: 0,
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        done.sent += 1;
        if let Err(e) = client.enable_automation(&own.id).await
            && e.class() == qlik_automations_operator::qlik::ErrorClass::RateLimited
        {
            done.refused += 1;
        }
    }
    done
}

async fn run_size(n: usize, settings: &Settings) -> Row {
    eprintln!("[bench] N = {n}: setting up");
    let ns = TestNamespace::new("bench").await;
    let emu: RunningEmulator = emulator(|c| {
        c.tier1_per_minute = settings.tier1();
        c.tier2_per_minute = settings.tier2();
        c.rate_window = settings.window();
    })
    .await;
    // The operator reaches the emulator through the counting proxy.
    let lists = std::sync::Arc::new(ListCounts::default());
    let proxied = counting_proxy(emu.addr(), lists.clone()).await;
    ns.connection_secret("qlik", &proxied, USER_KEY).await;
    let op = start_operator(&ns.name, settings, n);
    let pid = op.pid().unwrap_or_default();
    let api: Api<QlikAutomation> = ns.api();

    // Another tool on the same key, when asked for.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let competitor_per_minute =
        (f64::from(settings.tier2()) * settings.competitor_share).round() as u32;
    let competitor = (competitor_per_minute > 0).then(|| {
        tokio::spawn(compete(
            emu.base_url(),
            competitor_per_minute,
            settings.window(),
            stop.clone(),
        ))
    });

    let watched = watch_objects(&api);
    watched.wait_until_ready().await.unwrap();

    // Cold convergence: N new objects at once.
    eprintln!("[bench] N = {n}: applying {n} QlikAutomations");
    let started = Instant::now();
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &manifest(&format!("bench-{i:05}")))
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let mut reported = Instant::now();
    loop {
        let done = watched.state().iter().filter(|a| ready(a)).count();
        // What the watch shows is confirmed by one list: the figure is the apiserver's.
        if done == n && count_ready(&api).await == n {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            panic!("only {done}/{n} Ready after an hour");
        }
        if reported.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "[bench] N = {n}: {done} Ready after {:.0}s",
                started.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cold = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let competed = match competitor {
        Some(task) => Some(task.await.unwrap()),
        None => None,
    };
    let counters = emu.counters();
    // The operator's writes and 429s: the competitor's are told apart.
    let cold_writes = counters.writes() - competed.map_or(0, |c| c.sent);
    // No faults are injected here, so every 429 is the emulator's rate limiter refusing.
    let cold_429 = counters.rate_limited - competed.map_or(0, |c| c.refused);
    // The floor: every create is one Tier-2 write, and the tier allows tier2() a minute, less
    // what the competitor spends.
    let left = f64::from(settings.tier2()) - f64::from(competitor_per_minute);
    let floor = Duration::from_secs_f64(n as f64 * 60.0 / left);
    // The window floor: what the window lets through, less the competitor's spend per window.
    let window_budget =
        settings.per_window(settings.tier2()) - settings.per_window(competitor_per_minute);
    let window_floor = window_floor(n, window_budget, settings.window());
    eprintln!(
        "[bench] N = {n}: Ready after {:.1}s (floor {:.1}s, window floor {:.1}s)",
        cold.as_secs_f64(),
        floor.as_secs_f64(),
        window_floor.as_secs_f64()
    );

    // Steady state: let it settle one interval, then count requests over several.
    tokio::time::sleep(Duration::from_secs(settings.resync_seconds)).await;
    emu.reset_counters();
    let lists_before = lists.started();
    let cpu_before = cpu_seconds(pid);
    let steady_started = Instant::now();
    let window = Duration::from_secs(settings.resync_seconds * u64::from(settings.intervals));
    eprintln!("[bench] N = {n}: steady state for {}s", window.as_secs());
    tokio::time::sleep(window).await;
    let steady = emu.counters();
    let lists_after = lists.started();
    let idle_cpu_per_hour =
        (cpu_seconds(pid) - cpu_before) / steady_started.elapsed().as_secs_f64() * 3600.0;
    // Whole refreshes only: those that started within the phase and had ended by its end
    // (the last one started may still be going).
    let whole = lists.pages_per_refresh(lists_before, lists_after.saturating_sub(1));
    let refreshes = (lists_after - lists_before) as u64;
    let per_interval = |c: u64| c as f64 / f64::from(settings.intervals);
    let steady_tier1 = per_interval(steady.tier(Tier::Tier1));
    let steady_tier2 = per_interval(steady.tier(Tier::Tier2));
    let steady_refreshes = per_interval(refreshes);
    let steady_pages_per_refresh = (
        whole.iter().copied().min().unwrap_or(0),
        whole.iter().copied().max().unwrap_or(0),
    );

    // Change latency on an idle operator: one spec change at a time.
    eprintln!("[bench] N = {n}: {} single changes", settings.changes);
    let mut latencies = Vec::new();
    for i in 0..settings.changes {
        let name = format!("bench-{:05}", (i * 7919) % n);
        let id = api
            .get(&name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.automation_id)
            .unwrap();
        let description = format!("change {i}");
        let t0 = Instant::now();
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"description": description}})),
        )
        .await
        .unwrap();
        loop {
            let seen = emu
                .automations()
                .iter()
                .any(|a| a["id"] == id.as_str() && a["description"] == description.as_str());
            if seen {
                latencies.push(t0.elapsed());
                break;
            }
            // A change may wait for the window to free a write slot after the cold burst.
            if t0.elapsed() > Duration::from_secs(120) + 2 * settings.window() {
                panic!("change {i} never reached the tenant");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    latencies.sort();
    // The footprint over the phases the tables have always covered.
    let peak_rss_mib = peak_rss_mib(pid);
    let cpu_seconds = cpu_seconds(pid);

    // Drift: the operator's watch, then a per-resource poller at the same read spend.
    let drift = if settings.drift_edits > 0 {
        let mut ids = Vec::new();
        for i in 0..n {
            let a = api.get(&format!("bench-{i:05}")).await.unwrap();
            ids.push(a.status.and_then(|s| s.automation_id).unwrap());
        }
        let edited: Vec<String> = (0..settings.drift_edits)
            .map(|i| ids[(i * 104_729 + 13) % n].clone())
            .collect();
        eprintln!(
            "[bench] N = {n}: {} out-of-band edits, the operator's watch",
            edited.len()
        );
        let operator = operator_drift(&emu, &edited).await;
        // The watch's spend: its share of Tier 1 (the window's budget over the window).
        let reads_per_second = READ_BUDGET_SHARE * f64::from(settings.tier1()) / 60.0;
        drop(op);
        eprintln!(
            "[bench] N = {n}: {} out-of-band edits, a per-resource poller at {reads_per_second:.1} reads/s",
            edited.len()
        );
        let poller = poller_drift(&emu, ids, &edited, reads_per_second).await;
        Some(Drift {
            operator,
            poller,
            poller_reads_per_second: reads_per_second,
        })
    } else {
        drop(op);
        None
    };
    let row = Row {
        n,
        cold,
        floor,
        window_floor,
        cold_429,
        cold_writes,
        competitor: competed,
        steady_tier1,
        steady_tier2,
        steady_refreshes,
        steady_pages_per_refresh,
        idle_cpu_per_hour,
        change_median: percentile(&latencies, 50.0),
        change_p99: percentile(&latencies, 99.0),
        drift,
        peak_rss_mib,
        cpu_seconds,
    };
    emu.shutdown().await;
    row
}

fn main() {
    let settings = Settings::from_args();
    qlik_automations_operator::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows: Vec<Row> = runtime.block_on(async {
        let mut rows = Vec::new();
        for &n in &settings.sizes {
            rows.push(run_size(n, &settings).await);
        }
        rows
    });

    println!();
    println!(
        "limits: emulator and operator at {} reads/min (Tier 1) and {} writes/min (Tier 2) = {}x Qlik's, counted over a sliding {} s window ({:.0} writes per window); resync {}s; steady state over {} intervals; {} changes",
        settings.tier1(),
        settings.tier2(),
        settings.factor,
        settings.window_seconds,
        settings.per_window(settings.tier2()),
        settings.resync_seconds,
        settings.intervals,
        settings.changes
    );
    for r in &rows {
        if r.window_floor.is_zero() {
            println!(
                "N = {}: the {} writes fit one window, so the window floor is 0: cold convergence is bounded by processing, not the budget",
                r.n, r.n
            );
        }
        if let Some(d) = &r.drift {
            println!(
                "drift, N = {}: {} out-of-band edits; the operator (--read-budget-share {READ_BUDGET_SHARE}) set each back, median {:.1} s, p99 {:.1} s; a per-resource poller at the same {:.1} reads/s saw each, median {:.1} s, p99 {:.1} s ({:.0}x slower at the median)",
                r.n,
                d.operator.len(),
                percentile(&d.operator, 50.0).as_secs_f64(),
                percentile(&d.operator, 99.0).as_secs_f64(),
                d.poller_reads_per_second,
                percentile(&d.poller, 50.0).as_secs_f64(),
                percentile(&d.poller, 99.0).as_secs_f64(),
                percentile(&d.poller, 50.0).as_secs_f64()
                    / percentile(&d.operator, 50.0).as_secs_f64().max(1e-3)
            );
        }
    }
    if settings.competitor_share > 0.0 {
        println!(
            "competitor: another client on the operator's key spending {:.0}% of Tier 2 during the cold phase; floor from what it leaves",
            settings.competitor_share * 100.0
        );
        for r in &rows {
            if let Some(c) = r.competitor {
                println!(
                    "N = {}: competitor sent {} writes ({} refused 429); the operator's 429s: {} of its {} Tier 2 requests ({:.2}%)",
                    r.n,
                    c.sent,
                    c.refused,
                    r.cold_429,
                    r.cold_writes,
                    100.0 * r.cold_429 as f64 / r.cold_writes.max(1) as f64
                );
            }
        }
    }
    println!();
    println!(
        "| N | cold: all Ready | floor (N writes / Tier 2) | ratio | window floor | ratio | 429s | writes | steady Tier 1 / interval | steady Tier 2 / interval | refreshes / interval | list pages per whole refresh (min-max) | ceil(N/200) | per-resource polling | change p50 | change p99 | peak RSS | CPU | CPU per idle hour |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (window_floor, window_ratio) = if r.window_floor.is_zero() {
            ("0 s (processing-bound)".to_owned(), "-".to_owned())
        } else {
            (
                format!("{:.1} s", r.window_floor.as_secs_f64()),
                format!("{:.2}", r.cold.as_secs_f64() / r.window_floor.as_secs_f64()),
            )
        };
        println!(
            "| {} | {:.1} s | {:.1} s | {:.2} | {window_floor} | {window_ratio} | {} | {} | {:.1} | {:.1} | {:.1} | {}-{} | {} | {} | {:.0} ms | {:.0} ms | {:.0} MiB | {:.1} s | {:.1} s |",
            r.n,
            r.cold.as_secs_f64(),
            r.floor.as_secs_f64(),
            r.cold.as_secs_f64() / r.floor.as_secs_f64(),
            r.cold_429,
            r.cold_writes,
            r.steady_tier1,
            r.steady_tier2,
            r.steady_refreshes,
            r.steady_pages_per_refresh.0,
            r.steady_pages_per_refresh.1,
            r.n.div_ceil(200),
            r.n,
            r.change_median.as_secs_f64() * 1000.0,
            r.change_p99.as_secs_f64() * 1000.0,
            r.peak_rss_mib,
            r.cpu_seconds,
            r.idle_cpu_per_hour
        );
    }
}
