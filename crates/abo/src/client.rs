//! The JSON API client behind `abo force`, `abo builds`, `abo log` and `abo demo`: a small
//! blocking HTTP client (ureq, plain HTTP) on the master's `/api/v1`, typed answers, and
//! error messages that say what to do.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// How to reach the master and who to be: shared by every API command.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// The master's web address
    #[arg(
        long,
        value_name = "URL",
        env = "ABO_MASTER",
        default_value = "http://127.0.0.1:8010"
    )]
    pub master: String,
    /// User for commands that change something (added with `abo user add`)
    #[arg(long, value_name = "NAME", env = "ABO_USER")]
    pub user: Option<String>,
    /// That user's password (prefer ABO_PASSWORD: a command line is visible in `ps`)
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "ABO_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
}

/// What can go wrong talking to the master.
#[derive(Debug)]
pub enum ApiError {
    /// The master could not be reached, or the exchange broke off.
    Transport { url: String, reason: String },
    /// The master answered with an error status.
    Status {
        status: u16,
        url: String,
        reason: String,
    },
    /// The master answered something that is not what the API promises.
    Invalid { url: String, reason: String },
}

impl ApiError {
    /// The HTTP status, when the master answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Transport { url, reason } => write!(
                f,
                "cannot reach the master at {url}: {reason} (is `abo start` running there? \
                 --master URL or ABO_MASTER name another one)"
            ),
            ApiError::Status {
                status: 401,
                reason,
                ..
            } => write!(
                f,
                "the master refused the credentials ({reason}): give --user and --password \
                 (or ABO_USER and ABO_PASSWORD) of a user added with `abo user add DIR NAME`"
            ),
            ApiError::Status {
                status,
                url,
                reason,
            } => write!(f, "{url}: {reason} (HTTP {status})"),
            ApiError::Invalid { url, reason } => {
                write!(f, "{url}: unexpected answer from the master: {reason}")
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// A connection to the master's API (keeps connections alive between calls).
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port/api/v1`
    base: String,
    /// The `Authorization` header value, when a user was given.
    auth: Option<String>,
    user: Option<String>,
}

/// One page of a step's log.
pub struct LogPage {
    /// The bytes from the requested offset.
    pub bytes: Vec<u8>,
    /// Whether the log is finished (`X-Abo-Log-Complete`).
    pub complete: bool,
    /// The log's size so far (`X-Abo-Log-Size`), when the master said it.
    pub size: Option<u64>,
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.rsplit_once('@') {
        Some((_, h)) => h,
        None => host,
    };
    host.starts_with("127.")
        || host.starts_with("localhost")
        || host.starts_with("[::1]")
        || host.is_empty()
}

impl Client {
    /// A client for `args.master`; fails on an address it cannot use.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        Client::with_timeout(args, Duration::from_secs(30))
    }

    /// Same, with a timeout for each request.
    pub fn with_timeout(args: &ClientArgs, timeout: Duration) -> anyhow::Result<Client> {
        let master = args.master.trim().trim_end_matches('/');
        if master.starts_with("https://") {
            anyhow::bail!(
                "--master {master}: this abo speaks plain HTTP only; reach an HTTPS master \
                 through a tunnel (ssh -L 8010:127.0.0.1:8010 ...)"
            );
        }
        let master = if master.contains("://") {
            if !master.starts_with("http://") {
                anyhow::bail!("--master {master}: expected http://HOST:PORT");
            }
            master.to_owned()
        } else {
            // `127.0.0.1:8010` is accepted as it is written in master.toml.
            format!("http://{master}")
        };
        let host = &master["http://".len()..];
        if host.is_empty() || host.starts_with('/') {
            anyhow::bail!("--master {master}: expected http://HOST:PORT");
        }
        let base = if master.ends_with("/api/v1") {
            master.clone()
        } else {
            format!("{master}/api/v1")
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(Duration::from_secs(5)))
            .user_agent(concat!("abo/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(16);
        if is_loopback(&master) {
            // A proxy from the environment never helps reach this machine.
            config = config.proxy(None);
        }
        let agent: ureq::Agent = config.build().into();
        let auth = match (&args.user, &args.password) {
            (Some(user), Some(password)) => {
                if user.contains(':') {
                    anyhow::bail!("--user {user}: a user name cannot contain ':'");
                }
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {token}"))
            }
            (Some(_), None) => {
                anyhow::bail!("--user without a password: give --password or ABO_PASSWORD")
            }
            (None, Some(_)) => {
                anyhow::bail!("a password without a user: give --user or ABO_USER")
            }
            (None, None) => None,
        };
        Ok(Client {
            agent,
            base,
            auth,
            user: args.user.clone(),
        })
    }

    /// The user the client acts as, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The master's address (`http://host:port`).
    pub fn master(&self) -> &str {
        self.base.trim_end_matches("/api/v1")
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    fn transport(url: &str, e: ureq::Error) -> ApiError {
        let reason = match e {
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                _ => io.to_string(),
            },
            ureq::Error::Timeout(t) => format!("no answer in time ({t})"),
            other => other.to_string(),
        };
        ApiError::Transport {
            url: url.to_owned(),
            reason,
        }
    }

    /// Reads an error answer's reason: the `error` of its JSON body, else its text.
    fn status_error(url: &str, status: u16, body: &str) -> ApiError {
        let reason = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?.as_str()?.to_owned();
                Some(match v.get("reason").and_then(Value::as_str) {
                    Some(r) if !r.is_empty() => format!("{error}: {r}"),
                    _ => error,
                })
            })
            .unwrap_or_else(|| {
                let text = body.trim();
                if text.is_empty() {
                    "no reason given".to_owned()
                } else {
                    text.chars().take(300).collect()
                }
            });
        ApiError::Status {
            status,
            url: url.to_owned(),
            reason,
        }
    }

    fn finish(
        url: &str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<Value, ApiError> {
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| Client::transport(url, e))?;
        if !(200..300).contains(&status) {
            return Err(Client::status_error(url, status, &body));
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|e| ApiError::Invalid {
            url: url.to_owned(),
            reason: format!("not JSON: {e}"),
        })
    }

    /// `GET path` as raw JSON.
    pub fn get_value(&self, path: &str) -> Result<Value, ApiError> {
        let url = self.url(path);
        let response = self
            .agent
            .get(&url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| Client::transport(&url, e))?;
        Client::finish(&url, response)
    }

    /// `GET path` decoded into `T`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let url = self.url(path);
        let value = self.get_value(path)?;
        serde_json::from_value(value).map_err(|e| ApiError::Invalid {
            url,
            reason: e.to_string(),
        })
    }

    /// `POST path` with a JSON body and the user's credentials.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let url = self.url(path);
        let mut request = self
            .agent
            .post(&url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json");
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        let response = request
            .send(body.to_string())
            .map_err(|e| Client::transport(&url, e))?;
        Client::finish(&url, response)
    }

    /// `GET builders`.
    pub fn builders(&self) -> Result<Vec<Builder>, ApiError> {
        self.get("builders")
    }

    /// `GET workers`.
    pub fn workers(&self) -> Result<Vec<Worker>, ApiError> {
        self.get("workers")
    }

    /// `GET builds?...`: newest first.
    pub fn builds(
        &self,
        builder: Option<&str>,
        limit: Option<u64>,
        before: Option<u64>,
    ) -> Result<Vec<Build>, ApiError> {
        let mut query = Vec::new();
        if let Some(b) = builder {
            query.push(format!("builder={}", percent_encode(b)));
        }
        if let Some(l) = limit {
            query.push(format!("limit={l}"));
        }
        if let Some(b) = before {
            query.push(format!("before={b}"));
        }
        let path = if query.is_empty() {
            "builds".to_owned()
        } else {
            format!("builds?{}", query.join("&"))
        };
        self.get(&path)
    }

    /// `GET builds/{id}`: the build with its steps.
    pub fn build(&self, id: u64) -> Result<BuildDetail, ApiError> {
        self.get(&format!("builds/{id}"))
    }

    /// `GET requests/{id}`.
    pub fn request(&self, id: u64) -> Result<Request, ApiError> {
        self.get(&format!("requests/{id}"))
    }

    /// `POST builders/{name}/force`: the new request's id.
    pub fn force(
        &self,
        builder: &str,
        properties: &Map<String, Value>,
        reason: &str,
    ) -> Result<u64, ApiError> {
        let path = format!("builders/{}/force", percent_encode(builder));
        let body = serde_json::json!({"properties": properties, "reason": reason});
        let answer = self.post(&path, &body)?;
        answer
            .get("request")
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::Invalid {
                url: self.url(&path),
                reason: format!("no request id in {answer}"),
            })
    }

    /// `GET builds/{id}/steps/{n}/logs/{name}?offset=&limit=`: one page of a log.
    pub fn log_page(
        &self,
        build: u64,
        step: u64,
        log: &str,
        offset: u64,
        limit: u64,
    ) -> Result<LogPage, ApiError> {
        let url = self.url(&format!(
            "builds/{build}/steps/{step}/logs/{}?offset={offset}&limit={limit}",
            percent_encode(log)
        ));
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| Client::transport(&url, e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let complete = header("X-Abo-Log-Complete").is_none_or(|v| v.trim() == "true");
        let size = header("X-Abo-Log-Size").and_then(|v| v.trim().parse().ok());
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(limit.saturating_add(64 * 1024))
            .read_to_end(&mut bytes)
            .map_err(|e| ApiError::Transport {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        if !(200..300).contains(&status) {
            return Err(Client::status_error(
                &url,
                status,
                &String::from_utf8_lossy(&bytes),
            ));
        }
        Ok(LogPage {
            bytes,
            complete,
            size,
        })
    }
}

/// Percent-encodes a path segment or query value (builder names are mostly plain).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET builders` entry.
#[allow(dead_code)] // the API's fields; not every command reads each
#[derive(Debug, Clone, Deserialize)]
pub struct Builder {
    pub name: String,
    #[serde(default)]
    pub buildout: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub workers: Vec<String>,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub last_build: Option<LastBuild>,
    #[serde(default)]
    pub pending: u64,
}

/// A builder's last build.
#[allow(dead_code)] // the API's fields; not every command reads each
#[derive(Debug, Clone, Deserialize)]
pub struct LastBuild {
    pub id: u64,
    #[serde(default)]
    pub number: Option<u64>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// `GET workers` entry (the fields the CLI uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Worker {
    pub name: String,
    #[serde(default)]
    pub connected: bool,
}

/// `GET builds` entry.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Build {
    pub id: u64,
    pub builder: String,
    #[serde(default)]
    pub number: Option<u64>,
    #[serde(default)]
    pub worker: Option<String>,
    #[serde(default)]
    pub request: Option<u64>,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

impl Build {
    /// `builder #number` (or the build id when the number is unknown).
    pub fn label(&self) -> String {
        match self.number {
            Some(n) => format!("{} #{n}", self.builder),
            None => format!("{} (build {})", self.builder, self.id),
        }
    }

    /// Whether it is over.
    pub fn finished(&self) -> bool {
        self.state == "finished" || (self.state.is_empty() && self.result.is_some())
    }
}

/// `GET builds/{id}`.
#[allow(dead_code)] // the API's fields; not every command reads each
#[derive(Debug, Clone, Deserialize)]
pub struct BuildDetail {
    #[serde(flatten)]
    pub build: Build,
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// A step of a build.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub index: u64,
    pub name: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub description: Value,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub logs: Vec<LogInfo>,
}

impl Step {
    /// Whether it is over.
    pub fn finished(&self) -> bool {
        self.state == "finished" || (self.state.is_empty() && self.result.is_some())
    }

    /// The description as one line (a string, or a list of words).
    pub fn description_text(&self) -> String {
        match &self.description {
            Value::String(s) => s.clone(),
            Value::Array(words) => words
                .iter()
                .map(|w| w.as_str().map_or_else(|| w.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" "),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// Seconds from start to finish (or to `now` while running).
    pub fn seconds(&self, now: f64) -> Option<f64> {
        duration(self.started_at.as_deref(), self.finished_at.as_deref(), now)
    }
}

/// A log of a step.
#[derive(Debug, Clone, Deserialize)]
pub struct LogInfo {
    pub name: String,
    #[serde(default)]
    pub bytes: u64,
}

/// `GET requests/{id}`.
#[allow(dead_code)] // the API's fields; not every command reads each
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(default)]
    pub builder: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub builds: Vec<u64>,
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2026-11-25T15:38:36.123Z`,
/// `...+01:00`); `None` when it is not one.
pub fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut fraction = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = &rest[1..];
            let (h, m) = hm.split_once(':').unwrap_or((hm.get(..2)?, hm.get(2..)?));
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hour * 3600 + minute * 60 + second - offset;
    Some(secs as f64 + fraction)
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds between two API times; a missing end means `now`.
pub fn duration(start: Option<&str>, end: Option<&str>, now: f64) -> Option<f64> {
    let start = parse_time(start?)?;
    let end = match end {
        Some(e) => parse_time(e)?,
        None => now,
    };
    Some((end - start).max(0.0))
}

/// `0.6s`, `12s`, `3m05s`, `1h02m`.
pub fn human_duration(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.1}s")
    } else if seconds < 60.0 {
        format!("{}s", seconds.round() as u64)
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

/// An API time shown to a person: `2026-11-25 15:38:36` (UTC, as the master gives it).
pub fn short_time(s: &str) -> String {
    let s = s.trim();
    match (s.get(..10), s.get(11..19)) {
        (Some(d), Some(t)) if s.len() >= 19 => format!("{d} {t}"),
        _ => s.to_owned(),
    }
}

/// The exit status of `abo force --wait` for a set of results: 0 when every one is
/// `success` or `warnings`, 1 when the worst is `failure`, 2 otherwise.
pub fn exit_status<'a>(results: impl IntoIterator<Item = Option<&'a str>>) -> u8 {
    let mut status = 0;
    for r in results {
        let s = match r {
            Some("success") | Some("warnings") => 0,
            Some("failure") => 1,
            _ => 2,
        };
        status = status.max(s);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_time("1970-01-02T00:00:01Z"), Some(86401.0));
        assert_eq!(parse_time("2026-11-25T15:38:36Z"), Some(1_795_621_116.0));
        let t = parse_time("2026-11-25T15:38:36.250Z").unwrap();
        assert!((t - 1_795_621_116.25).abs() < 1e-6);
        assert_eq!(
            parse_time("2026-11-25T16:38:36+01:00"),
            parse_time("2026-11-25T15:38:36Z")
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-13-25T15:38:36Z"), None);
        assert_eq!(parse_time("2026-11-25T15:38:36."), None);
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("2026-11-25T15:38:36+x"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0.61), "0.6s");
        assert_eq!(human_duration(12.4), "12s");
        assert_eq!(human_duration(185.0), "3m05s");
        assert_eq!(human_duration(3720.0), "1h02m");
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(exit_status([Some("success"), Some("warnings")]), 0);
        assert_eq!(exit_status([Some("success"), Some("failure")]), 1);
        assert_eq!(exit_status([Some("failure"), Some("exception")]), 2);
        assert_eq!(exit_status([None]), 2);
        assert_eq!(exit_status([]), 0);
    }

    #[test]
    fn encoding_and_loopback() {
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
        assert_eq!(percent_encode("standin-pass_7.0"), "standin-pass_7.0");
        assert!(is_loopback("http://127.0.0.1:8010"));
        assert!(is_loopback("http://localhost:8010/api/v1"));
        assert!(!is_loopback("http://ci.example.org:8010"));
    }
}
