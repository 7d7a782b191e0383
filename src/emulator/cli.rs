//! The `emulator` subcommand:
//! `qlik-automations-operator emulator --listen 127.0.0.1:PORT --api-key KEY=USERID[:admin]
//! --oauth-client ID=SECRET --space SPACE_ID ...`
//!
//! Prints one line with the base URL once it accepts connections, then serves until SIGINT or
//! SIGTERM. Every flag can also come from a `QLIK_EMULATOR_...` environment variable.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use super::{ApiKey, EmulatorConfig, FaultConfig, FaultRule, OAuthClient, RunningEmulator};

/// Command-line arguments of the emulator.
#[derive(Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, env = "QLIK_EMULATOR_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// An accepted API key and the user it belongs to: KEY=USERID, or KEY=USERID:admin for a
    /// tenant admin. Repeat for more keys (comma-separated in the environment variable).
    /// Required unless an OAuth client is given.
    // Kept as text here and parsed in `config` so that a malformed key is never echoed in
    // clap's error message.
    #[arg(
        long = "api-key",
        env = "QLIK_EMULATOR_API_KEYS",
        value_name = "KEY=USERID[:admin]",
        value_delimiter = ',',
        required_unless_present = "oauth_clients",
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// An OAuth2 client that may get access tokens from POST /oauth/token: ID=SECRET. Its
    /// tokens act as the tenant-admin bot user bot-ID. Repeat for more clients
    /// (comma-separated in the environment variable).
    // Text for the same reason as the keys: a malformed value holds a secret.
    #[arg(
        long = "oauth-client",
        env = "QLIK_EMULATOR_OAUTH_CLIENTS",
        value_name = "ID=SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub oauth_clients: Vec<String>,

    /// How long an OAuth access token lives, in seconds (Qlik's default is six hours).
    #[arg(
        long,
        env = "QLIK_EMULATOR_OAUTH_TOKEN_TTL_SECONDS",
        default_value_t = 21600
    )]
    pub oauth_token_ttl_seconds: u64,

    /// A shared space automations may be created in or moved to (workflows `spaceId`).
    /// Repeat for more (comma-separated in the environment variable).
    #[arg(
        long = "space",
        env = "QLIK_EMULATOR_SPACES",
        value_name = "SPACE_ID",
        value_delimiter = ','
    )]
    pub spaces: Vec<String>,

    /// Tier 1 (read) requests allowed per user per minute.
    #[arg(long, env = "QLIK_EMULATOR_TIER1_PER_MINUTE", default_value_t = 1000)]
    pub tier1_per_minute: u32,

    /// Tier 2 (write and action) requests allowed per user per minute.
    #[arg(long, env = "QLIK_EMULATOR_TIER2_PER_MINUTE", default_value_t = 100)]
    pub tier2_per_minute: u32,

    /// The window the tiers are counted over, in seconds (the per-minute limits scaled to
    /// it): 300 as on the live service, 60 for the strict case.
    #[arg(long, env = "QLIK_EMULATOR_RATE_WINDOW_SECONDS", default_value_t = 300)]
    pub rate_window_seconds: u64,

    /// How long a run takes from creation to its final status, in milliseconds.
    #[arg(long, env = "QLIK_EMULATOR_RUN_DURATION_MS", default_value_t = 2000)]
    pub run_duration_ms: u64,

    /// How long export URLs stay valid, in seconds.
    #[arg(long, env = "QLIK_EMULATOR_EXPORT_TTL_SECS", default_value_t = 300)]
    pub export_ttl_secs: u64,

    /// Normalise schedules like the live service reportedly does (interval rounded to whole
    /// minutes, only the first schedule kept).
    #[arg(long, env = "QLIK_EMULATOR_NORMALIZE_SCHEDULES")]
    pub normalize_schedules: bool,

    /// Restrict the start-up fault rule to one endpoint (e.g. create_automation).
    #[arg(long, env = "QLIK_EMULATOR_FAULT_ENDPOINT")]
    pub fault_endpoint: Option<String>,

    /// Probability (0-1) of answering an injected error status.
    #[arg(long, env = "QLIK_EMULATOR_FAULT_ERROR_RATE", default_value_t = 0.0)]
    pub fault_error_rate: f64,

    /// Status of injected errors.
    #[arg(long, env = "QLIK_EMULATOR_FAULT_STATUS", default_value_t = 503)]
    pub fault_status: u16,

    /// Probability (0-1) of dropping the connection.
    #[arg(long, env = "QLIK_EMULATOR_FAULT_DROP_RATE", default_value_t = 0.0)]
    pub fault_drop_rate: f64,

    /// Process dropped requests before dropping them (ambiguous failures).
    #[arg(long, env = "QLIK_EMULATOR_FAULT_DROP_AFTER_PROCESSING")]
    pub fault_drop_after_processing: bool,

    /// Extra latency per request, uniformly random in MIN-MAX milliseconds (or one number).
    #[arg(long, env = "QLIK_EMULATOR_FAULT_LATENCY_MS", value_parser = parse_latency, value_name = "MIN-MAX")]
    pub fault_latency_ms: Option<(u64, u64)>,

    /// Probability (0-1) of a synthetic 429 with Retry-After: 1.
    #[arg(
        long,
        env = "QLIK_EMULATOR_FAULT_RATE_LIMIT_RATE",
        default_value_t = 0.0
    )]
    pub fault_rate_limit_rate: f64,
}

impl fmt::Debug for EmulatorArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are credentials: show how many there are, never what they are.
        f.debug_struct("EmulatorArgs")
            .field("listen", &self.listen)
            .field(
                "api_keys",
                &format_args!("<{} redacted>", self.api_keys.len()),
            )
            .field(
                "oauth_clients",
                &format_args!("<{} redacted>", self.oauth_clients.len()),
            )
            .field("oauth_token_ttl_seconds", &self.oauth_token_ttl_seconds)
            .field("spaces", &self.spaces)
            .field("tier1_per_minute", &self.tier1_per_minute)
            .field("tier2_per_minute", &self.tier2_per_minute)
            .field("rate_window_seconds", &self.rate_window_seconds)
            .field("run_duration_ms", &self.run_duration_ms)
            .field("export_ttl_secs", &self.export_ttl_secs)
            .field("normalize_schedules", &self.normalize_schedules)
            .finish_non_exhaustive()
    }
}

fn parse_latency(s: &str) -> Result<(u64, u64), String> {
    let parse = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("{t:?} is not a number of milliseconds"))
    };
    let (min, max) = match s.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let n = parse(s)?;
            (n, n)
        }
    };
    if min > max {
        return Err("MIN must not exceed MAX".to_owned());
    }
    Ok((min, max))
}

impl EmulatorArgs {
    /// The emulator configuration these arguments describe.
    pub fn config(&self) -> anyhow::Result<EmulatorConfig> {
        let keys = self
            .api_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                k.parse::<ApiKey>()
                    .with_context(|| format!("--api-key number {} is malformed", i + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let oauth_clients = self
            .oauth_clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.parse::<OAuthClient>()
                    .with_context(|| format!("--oauth-client number {} is malformed", i + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if self.oauth_token_ttl_seconds == 0 {
            anyhow::bail!("--oauth-token-ttl-seconds must be at least 1");
        }
        let spaces = self
            .spaces
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let rule = FaultRule {
            endpoint: self.fault_endpoint.clone(),
            error_rate: self.fault_error_rate,
            status: self.fault_status,
            drop_rate: self.fault_drop_rate,
            drop_after_processing: self.fault_drop_after_processing,
            latency_ms: self.fault_latency_ms,
            rate_limit_rate: self.fault_rate_limit_rate,
            times: None,
        };
        let active = rule.error_rate > 0.0
            || rule.drop_rate > 0.0
            || rule.rate_limit_rate > 0.0
            || rule.latency_ms.is_some();
        let faults = FaultConfig {
            rules: if active { vec![rule] } else { Vec::new() },
        };
        faults
            .validate()
            .map_err(|e| anyhow::anyhow!("fault flags: {e}"))?;
        Ok(EmulatorConfig {
            listen: self.listen,
            keys,
            oauth_clients,
            oauth_token_ttl: Duration::from_secs(self.oauth_token_ttl_seconds),
            spaces,
            tier1_per_minute: self.tier1_per_minute,
            tier2_per_minute: self.tier2_per_minute,
            rate_window: Duration::from_secs(self.rate_window_seconds),
            run_duration: Duration::from_millis(self.run_duration_ms),
            export_ttl: Duration::from_secs(self.export_ttl_secs),
            normalize_schedules: self.normalize_schedules,
            faults,
        })
    }
}

/// Runs the emulator until SIGINT or SIGTERM.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let emulator = RunningEmulator::start(config).await?;
    let stop = shutdown_signal()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "qlik automations emulator listening on {}",
            emulator.base_url()
        )?;
        out.flush()?;
    }
    tracing::info!(url = %emulator.base_url(), "emulator ready");
    stop.await;
    tracing::info!("emulator shutting down");
    emulator.shutdown().await;
    Ok(())
}

/// Registers the signal handlers now (so a signal right after the ready line is not lost) and
/// returns a future that completes on the first of SIGINT / SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    #[test]
    fn parses_the_documented_command_line() {
        let cli = Cli::try_parse_from([
            "x",
            "--listen",
            "127.0.0.1:8181",
            "--api-key",
            "k1=u1",
            "--api-key",
            "k2=u2:admin",
            "--tier1-per-minute",
            "50",
            "--tier2-per-minute",
            "5",
            "--fault-latency-ms",
            "10-20",
            "--fault-endpoint",
            "create_automation",
        ])
        .unwrap();
        let config = cli.args.config().unwrap();
        assert_eq!(config.listen.port(), 8181);
        assert_eq!(config.keys[1], ApiKey::admin("k2", "u2"));
        assert_eq!(config.tier2_per_minute, 5);
        assert_eq!(config.faults.rules.len(), 1);
        assert_eq!(config.faults.rules[0].latency_ms, Some((10, 20)));
        let shown = format!("{:?}", cli.args);
        assert!(!shown.contains("k1") && !shown.contains("k2"), "{shown}");
        assert!(config.oauth_clients.is_empty() && config.spaces.is_empty());
        assert_eq!(config.oauth_token_ttl, Duration::from_secs(21600));
    }

    #[test]
    fn oauth_clients_and_spaces_parse_and_secrets_stay_hidden() {
        let cli = Cli::try_parse_from([
            "x",
            "--oauth-client",
            "op=hunter2==",
            "--oauth-client",
            "ci=s3cr3t",
            "--oauth-token-ttl-seconds",
            "5",
            "--space",
            "sp-a",
            "--space",
            "sp-b",
        ])
        .unwrap();
        let config = cli.args.config().unwrap();
        assert!(config.keys.is_empty(), "OAuth clients alone are enough");
        assert_eq!(config.oauth_clients[0], OAuthClient::new("op", "hunter2=="));
        assert_eq!(config.oauth_clients[1].bot_user_id(), "bot-ci");
        assert_eq!(config.oauth_token_ttl, Duration::from_secs(5));
        assert_eq!(config.spaces, vec!["sp-a".to_owned(), "sp-b".to_owned()]);
        for shown in [format!("{:?}", cli.args), format!("{config:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("s3cr3t"),
                "{shown}"
            );
        }
        let bad = Cli::try_parse_from(["x", "--oauth-client", "hunter2"]).unwrap();
        let err = format!("{:#}", bad.args.config().unwrap_err());
        assert!(err.contains("--oauth-client number 1"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let zero = Cli::try_parse_from(["x", "--api-key", "k=u", "--oauth-token-ttl-seconds", "0"])
            .unwrap();
        assert!(zero.args.config().is_err());
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_them() {
        let cli = Cli::try_parse_from(["x", "--api-key", "supersecret"]).unwrap();
        let err = format!("{:#}", cli.args.config().unwrap_err());
        assert!(!err.contains("supersecret"), "{err}");
        assert!(Cli::try_parse_from(["x"]).is_err());
    }

    #[test]
    fn latency_accepts_a_range_or_a_number() {
        assert_eq!(parse_latency("5-9"), Ok((5, 9)));
        assert_eq!(parse_latency("7"), Ok((7, 7)));
        assert!(parse_latency("9-5").is_err());
        assert!(parse_latency("a-b").is_err());
    }
}
