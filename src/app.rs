//! Building and running the server: open the store, seed it on first start, bind the
//! listener, serve until a shutdown signal, then let in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use uuid::Uuid;

use crate::authorize::{Directory, Relationship};
use crate::edge::auth::{generate_token, Authenticator};
use crate::edge::console::{watch_other_nodes, ConsoleState, DevLogin};
pub use crate::edge::limits::LimitConfig;
use crate::edge::limits::Limiter;
use crate::edge::{router, AppState};
use crate::execute::organization::Organization;
use crate::execute::{Caller, ExecError, Service};
use crate::metadata::system::{
    BUSINESS_UNIT, DOMAIN_NAME, FIRST_NAME, LAST_NAME, NAME, SYSTEM_USER,
};
use crate::metadata::Catalog;
use crate::parse::body::{Bind, Payload};
use crate::security::jwt::JwtVerifier;
use crate::security::role::{builtin_role_id, SYSTEM_ADMINISTRATOR};
use crate::store::postgres::{PostgresStore, DEFAULT_POOL_SIZE};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError, Value};

/// How long inbound deliveries are kept for replay detection, by default.
pub const DEFAULT_DELIVERY_RETENTION_DAYS: u32 = 30;

/// How long the change log (delta tokens, audit history) is kept, by default: 30 days.
pub const DEFAULT_CHANGE_LOG_RETENTION_SECS: u64 = 30 * 86_400;

/// A change-log row outlives the retention by this much before it is purged, so a token
/// issued just inside the retention never misses a row of a transaction that was committing
/// as the token was read.
const CHANGE_LOG_PURGE_MARGIN_SECS: i64 = 600;

/// How often the deliveries past their retention are looked for.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// How often the job worker looks for jobs it was not woken for.
const JOB_POLL_INTERVAL: Duration = Duration::from_secs(3);

/// How often the SMS channels' inactivity timeouts are checked, by default.
pub const DEFAULT_INACTIVITY_CHECK_SECONDS: u64 = 60;

/// Deliveries deleted per transaction by the retention task.
const RETENTION_BATCH: usize = 500;

/// What `smsctx serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    pub database: String,
    /// `None`: the token generated on the store's first start (printed once, its hash stored).
    pub admin_token: Option<String>,
    /// Where a generated token is written; `None`: [`DatabaseUrl::token_file`].
    pub admin_token_file: Option<std::path::PathBuf>,
    pub max_body_bytes: usize,
    /// Connections to PostgreSQL this node keeps at most (unused with SQLite).
    pub pool_size: usize,
    /// SMS webhook requests per second per peer address; 0: no limit.
    pub sms_rate_limit: u32,
    /// Inbound deliveries (the replay-detection rows) older than this many days are deleted in
    /// the background; 0 keeps them forever.
    pub sms_delivery_retention_days: u32,
    /// Bearer JWTs: the shared HS256 secret, the RS256/ES256 key set (a JWKS document's
    /// text), and the `iss`/`aud` they must carry when set.
    pub jwt: JwtConfig,
    /// Per-user service protection limits (off by default).
    pub limits: LimitConfig,
    /// HTTPS: the certificate chain and key to serve with; `None` serves plain HTTP.
    pub tls: Option<crate::tls::TlsFiles>,
    /// How many reads run at once, how many may wait, and the memory of each connection.
    pub capacity: CapacityConfig,
    /// Open connections at most, and how long a connection may stay silent.
    pub connections: crate::listen::ConnectionLimits,
    /// Rows a BulkDelete job deletes per transaction.
    pub bulk_delete_batch: usize,
    /// Seconds between two checks of the channels' inactivity timeouts (a channel without a
    /// timeout, the default, closes nothing).
    pub sms_inactivity_check_seconds: u64,
    /// Seconds the change log is kept: older delta tokens are refused as expired, older rows
    /// (and so audit history) are purged in the background. 0 keeps it forever.
    pub change_log_retention_secs: u64,
    /// The console's development login (`--console-dev-login`): hands the bootstrap admin
    /// token to a browser on this machine. Off by default.
    pub console_dev_login: bool,
}

/// The bound on database work: reader connections (SQLite; PostgreSQL has `pool_size`), the
/// requests that may wait for a connection before the next gets a 503, and each SQLite
/// connection's page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityConfig {
    pub readers: usize,
    pub queue: usize,
    pub cache_kib: u32,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        let sqlite = crate::store::sqlite::SqliteOptions::default();
        CapacityConfig {
            readers: sqlite.readers,
            queue: sqlite.queue,
            cache_kib: sqlite.cache_kib,
        }
    }
}

/// How bearer JWTs are validated; nothing configured accepts only the admin token.
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    pub secret: Option<String>,
    pub jwks: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl JwtConfig {
    pub fn verifier(&self) -> Result<JwtVerifier, AppError> {
        let mut verifier = JwtVerifier::new();
        if let Some(secret) = &self.secret {
            verifier = verifier.with_secret(secret.as_bytes());
        }
        if let Some(jwks) = &self.jwks {
            verifier = verifier
                .with_jwks(jwks)
                .map_err(|e| AppError::Jwks(e.to_string()))?;
        }
        if let Some(issuer) = &self.issuer {
            verifier = verifier.with_issuer(issuer.clone());
        }
        if let Some(audience) = &self.audience {
            verifier = verifier.with_audience(audience.clone());
        }
        Ok(verifier)
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            database: "sqlite://smsctx.db".into(),
            admin_token: None,
            admin_token_file: None,
            max_body_bytes: 1024 * 1024,
            pool_size: DEFAULT_POOL_SIZE,
            sms_rate_limit: crate::edge::sms::DEFAULT_RATE_LIMIT,
            sms_delivery_retention_days: DEFAULT_DELIVERY_RETENTION_DAYS,
            change_log_retention_secs: DEFAULT_CHANGE_LOG_RETENTION_SECS,
            jwt: JwtConfig::default(),
            limits: LimitConfig::default(),
            capacity: CapacityConfig::default(),
            connections: Default::default(),
            tls: None,
            bulk_delete_batch: crate::execute::jobs::DEFAULT_BATCH,
            sms_inactivity_check_seconds: DEFAULT_INACTIVITY_CHECK_SECONDS,
            console_dev_login: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the entity metadata did not load: {0}")]
    Metadata(#[from] crate::metadata::markdown::ImportError),
    #[error("the store did not open: {0}")]
    Store(#[from] StoreError),
    #[error("seeding the store failed: {0}")]
    Seed(#[from] ExecError),
    #[error("the SMS channel did not start: {0}")]
    Sms(#[from] crate::execute::sms::SmsError),
    #[error(
        "unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
    )]
    DatabaseUrl(String),
    #[error("{0}")]
    User(String),
    #[error("the JWKS key set is not usable: {0}")]
    Jwks(String),
    #[error("HTTPS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(
        "no database at {0}: `smsctx serve --database sqlite://{0}` creates it on its first \
         start; or pass the --database the server uses"
    )]
    NoDatabase(String),
    #[error("cannot listen on '{address}': {reason}")]
    ListenAddress { address: String, reason: String },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

/// The ids seeded on first start.
const ROOT_BUSINESS_UNIT: &str = "root_business_unit_id";
const ADMIN_USER: &str = "admin_user_id";
const ORGANIZATION: &str = "organization_id";

/// The name of the organisation and root business unit seeded on first start.
const SEEDED_NAME: &str = "smsctx";

/// The SHA-256 (hex) of the admin token generated on the first start (never the token).
const ADMIN_TOKEN_HASH: &str = "admin_token_sha256";

/// Every store setting, for copying a store.
pub const SETTING_KEYS: &[&str] = &[
    ROOT_BUSINESS_UNIT,
    ADMIN_USER,
    ORGANIZATION,
    ADMIN_TOKEN_HASH,
];

/// The database a `--database` URL names, checked before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(std::path::PathBuf),
    /// The URL as given (with its password, to connect).
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://PATH` (or a plain path) or `postgres://`/`postgresql://`.
    pub fn parse(url: &str) -> Result<DatabaseUrl, AppError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_string()))
        } else if url.starts_with("sqlite:") || !url.contains("://") {
            Ok(DatabaseUrl::Sqlite(SqliteStore::path_from_url(url)))
        } else {
            Err(AppError::DatabaseUrl(url.to_string()))
        }
    }

    /// As [`DatabaseUrl::parse`], refusing a SQLite file that does not exist: every command but
    /// `serve` works on a store the server already created, and must not create a new one.
    pub fn existing(url: &str) -> Result<DatabaseUrl, AppError> {
        let database = DatabaseUrl::parse(url)?;
        match &database {
            DatabaseUrl::Sqlite(path) if !path.exists() => {
                Err(AppError::NoDatabase(path.display().to_string()))
            }
            _ => Ok(database),
        }
    }

    /// Whether the SQLite file is still to be created (never for PostgreSQL: its schema is).
    pub fn is_new(&self) -> bool {
        matches!(self, DatabaseUrl::Sqlite(path) if !path.exists())
    }

    /// Where the generated admin token is written: next to the SQLite file
    /// (`smsctx.db.admin-token`), or `smsctx.admin-token` in the working directory.
    pub fn token_file(&self) -> std::path::PathBuf {
        match self {
            DatabaseUrl::Sqlite(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push(".admin-token");
                name.into()
            }
            DatabaseUrl::Postgres(_) => "smsctx.admin-token".into(),
        }
    }
}

impl std::fmt::Display for DatabaseUrl {
    /// The SQLite file's absolute path, or the PostgreSQL URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => {
                let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                write!(f, "SQLite file {}", shown.display())
            }
            DatabaseUrl::Postgres(url) => {
                write!(
                    f,
                    "PostgreSQL {}",
                    crate::store::postgres::without_password(url)
                )
            }
        }
    }
}

/// Binds the listener, or a message that says what `--listen` wants.
async fn bind(listen: &str) -> Result<TcpListener, AppError> {
    let address = |reason: String| AppError::ListenAddress {
        address: listen.to_string(),
        reason,
    };
    if let Ok(port) = listen.trim().parse::<u16>() {
        return Err(address(format!(
            "it is a port alone; give HOST:PORT, e.g. 127.0.0.1:{port} (this machine only) or \
             0.0.0.0:{port} (every interface)"
        )));
    }
    TcpListener::bind(listen)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::InvalidInput => address(
                "it is not HOST:PORT; e.g. 127.0.0.1:8080 (this machine only), 0.0.0.0:8080 \
             (every interface), [::1]:8080, localhost:8080"
                    .into(),
            ),
            std::io::ErrorKind::AddrInUse => address(
                "the port is in use (another smsctx?); stop that process or choose another \
             --listen, e.g. 127.0.0.1:0 for any free port"
                    .into(),
            ),
            _ => AppError::Listen {
                address: listen.to_string(),
                source,
            },
        })
}

/// How the administrator's bearer token was settled at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `--admin-token` (not stored).
    Given,
    /// Generated now, on the store's first start without `--admin-token`: the plaintext, shown
    /// once, and the file it was written to (`None` when writing it failed: the reason).
    Generated {
        token: String,
        file: Result<std::path::PathBuf, String>,
    },
    /// The token generated on an earlier start (only its hash is stored).
    Kept { file: std::path::PathBuf },
}

/// The admin token: its SHA-256 (what requests are compared against) and its origin.
#[derive(Debug, Clone)]
pub struct AdminToken {
    pub hash: [u8; 32],
    pub origin: TokenOrigin,
}

impl AdminToken {
    /// `--admin-token` when given; else the token of an earlier start (its stored hash); else a
    /// new one, its hash stored and its plaintext written to [`DatabaseUrl::token_file`].
    async fn settle(
        store: &dyn Store,
        token_file: std::path::PathBuf,
        given: Option<String>,
    ) -> Result<AdminToken, AppError> {
        if let Some(token) = given {
            return Ok(AdminToken {
                hash: token_hash(&token),
                origin: TokenOrigin::Given,
            });
        }
        if let Some(stored) = store.setting(ADMIN_TOKEN_HASH).await? {
            return Ok(AdminToken {
                hash: parse_hash(&stored)?,
                origin: TokenOrigin::Kept {
                    file: token_file.clone(),
                },
            });
        }
        let token = generate_token();
        let hash = token_hash(&token);
        let set = store.init_setting(ADMIN_TOKEN_HASH, &hex(&hash)).await?;
        if set != hex(&hash) {
            // Another node of the same PostgreSQL store generated one first: that one holds.
            return Ok(AdminToken {
                hash: parse_hash(&set)?,
                origin: TokenOrigin::Kept {
                    file: token_file.clone(),
                },
            });
        }
        let file = write_token_file(&token_file, &token);
        Ok(AdminToken {
            hash,
            origin: TokenOrigin::Generated { token, file },
        })
    }
}

/// `smsctx admin-token rotate`: a new admin token for the store at `url` (which must exist);
/// the old one stops working when the servers on the store restart. Returns the new token and
/// the file it was written to (or why it could not be).
pub async fn rotate_admin_token(
    url: &str,
    token_file: Option<std::path::PathBuf>,
) -> Result<(String, Result<std::path::PathBuf, String>), AppError> {
    let database = DatabaseUrl::existing(url)?;
    let token_file = token_file.unwrap_or_else(|| database.token_file());
    let catalog = Catalog::with_channels()?;
    let backend = Backend::open(url, &catalog, 2).await?;
    let token = generate_token();
    let result = backend
        .as_store()
        .set_setting(ADMIN_TOKEN_HASH, &hex(&token_hash(&token)))
        .await;
    backend.close();
    result?;
    let file = write_token_file(&token_file, &token);
    Ok((token, file))
}

/// The SHA-256 of an admin token.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(text: &str) -> Result<[u8; 32], StoreError> {
    let bad = || StoreError::Unexpected(format!("stored admin token hash '{text}'"));
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(hash)
}

/// Writes the token (and a newline) to `path`, readable by its owner only.
fn write_token_file(path: &std::path::Path, token: &str) -> Result<std::path::PathBuf, String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(path).and_then(|mut file| {
        // A file that existed keeps its mode through open(): set it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()
    });
    written
        .map(|()| path.to_path_buf())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    store: Backend,
    admin_token: AdminToken,
    database: DatabaseUrl,
    created: bool,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: crate::listen::ConnectionLimits,
    retention_days: u32,
    bulk_delete_batch: usize,
    inactivity_check: Duration,
}

impl Application {
    /// Checks the configuration and binds the listener (port 0 picks a free port), then opens
    /// the store, seeds it if new, and settles the admin token: a bad argument or a busy port
    /// fails before any database is created.
    pub async fn build(config: ServeConfig) -> Result<Application, AppError> {
        let catalog = Arc::new(Catalog::builtin()?);
        // The store also holds the SMS channel's internal tables, which the Web API does not serve.
        let store_catalog = Arc::new(Catalog::with_channels()?);
        let verifier = config.jwt.verifier()?;
        let tls = config
            .tls
            .as_ref()
            .map(crate::tls::TlsFiles::acceptor)
            .transpose()?;
        let database = DatabaseUrl::parse(&config.database)?;
        let listener = bind(&config.listen).await?;
        let created = database.is_new();
        let store = Backend::open_with(
            &config.database,
            &store_catalog,
            config.pool_size,
            config.capacity,
        )
        .await?;
        let service = Service::new(Arc::clone(&catalog), store.as_store());
        let directory = Arc::new(Directory::new(Arc::clone(&catalog)));
        let (admin, organization) = seed(&service, &directory).await?;
        // The stored alternate keys, for requests that address records by one (a change set
        // cannot read them again inside its transaction).
        catalog.set_alternate_keys(service.system().store().entity_keys().await?);
        catalog.set_tracking(service.system().store().tracking_settings().await?);
        let token_file = config
            .admin_token_file
            .clone()
            .unwrap_or_else(|| database.token_file());
        let admin_token =
            AdminToken::settle(&*store.as_store(), token_file, config.admin_token).await?;
        let sms = crate::execute::sms::Sms::new(&store_catalog)?;
        let dev_login = match (&admin_token.origin, config.console_dev_login) {
            (TokenOrigin::Generated { token, .. }, true) => DevLogin::Token(token.clone()),
            (TokenOrigin::Kept { file }, true) => DevLogin::File(file.clone()),
            _ => DevLogin::Off,
        };
        let state = Arc::new(AppState {
            service,
            auth: Authenticator::new(admin_token.hash, admin.user_id, verifier, directory),
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.connections.body_timeout,
            limiter: Limiter::new(config.limits.clone()),
            organization,
            sms: crate::edge::sms::SmsState::new(sms, admin, config.sms_rate_limit),
            jobs: Arc::new(tokio::sync::Notify::new()),
            change_log_retention_secs: match config.change_log_retention_secs {
                0 => i64::MAX,
                secs => i64::try_from(secs).unwrap_or(i64::MAX),
            },
            console: ConsoleState::new(dev_login),
        });
        Ok(Application {
            listener,
            state,
            store,
            admin_token,
            database,
            created,
            tls,
            connections: config.connections,
            retention_days: config.sms_delivery_retention_days,
            bulk_delete_batch: config.bulk_delete_batch.max(1),
            inactivity_check: Duration::from_secs(config.sms_inactivity_check_seconds.max(1)),
        })
    }

    /// The database in use, for the start-up lines (a PostgreSQL URL without its password).
    pub fn database(&self) -> &DatabaseUrl {
        &self.database
    }

    /// Whether this start created the SQLite file.
    pub fn database_created(&self) -> bool {
        self.created
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// How the admin token was settled at start (given, generated now, or kept from before).
    pub fn admin_token(&self) -> &AdminToken {
        &self.admin_token
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serves until `shutdown` completes; in-flight requests finish, then the writer drains.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = router(Arc::clone(&self.state));
        let retention = (self.retention_days > 0).then(|| {
            tokio::spawn(purge_deliveries(
                Arc::clone(&self.state),
                self.retention_days,
            ))
        });
        let worker = crate::execute::jobs::Worker {
            host: format!("smsctx-{}", Uuid::new_v4()),
            batch: self.bulk_delete_batch,
            sole_node: matches!(self.store, Backend::Sqlite(_)),
        };
        let jobs = tokio::spawn(run_jobs(Arc::clone(&self.state), worker));
        let idle = tokio::spawn(close_idle_conversations(
            Arc::clone(&self.state),
            self.inactivity_check,
        ));
        let change_log = (self.state.change_log_retention_secs < i64::MAX)
            .then(|| tokio::spawn(purge_change_log(Arc::clone(&self.state))));
        // Several nodes share a PostgreSQL database: a console here learns of the others'
        // writes by polling (one SQLite node sees every write itself).
        let other_nodes = matches!(self.store, Backend::Postgres(_))
            .then(|| tokio::spawn(watch_other_nodes(Arc::clone(&self.state))));
        let stopping = Arc::clone(&self.state);
        let shutdown = async move {
            shutdown.await;
            // The event streams never end by themselves: end them so in-flight requests drain.
            stopping.console.close();
        };
        let result =
            crate::listen::serve(self.listener, self.tls, router, self.connections, shutdown).await;
        if let Some(task) = other_nodes {
            task.abort();
            let _ = task.await;
        }
        if let Some(task) = retention {
            task.abort();
            let _ = task.await;
        }
        // A job stopped between batches resumes on the next start (or on another node once
        // its lease runs out): every batch it finished is committed with its progress.
        jobs.abort();
        let _ = jobs.await;
        // A close is one transaction: stopped between two, the next pass finds the rest.
        idle.abort();
        let _ = idle.await;
        if let Some(task) = change_log {
            task.abort();
            let _ = task.await;
        }
        drop(self.state);
        self.store.close();
        result
    }
}

/// Deletes the inbound deliveries older than `days`, at start and then every
/// [`RETENTION_INTERVAL`], until the server stops. Deliveries inside the window stay, so a
/// provider's retry of a message inside it is still recognised as a replay.
async fn purge_deliveries(state: Arc<AppState>, days: u32) {
    loop {
        let before = time::OffsetDateTime::now_utc().unix_timestamp() - i64::from(days) * 86_400;
        let store = state.service.system().store();
        match state
            .sms
            .sms
            .purge_deliveries(store, before, RETENTION_BATCH)
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, days, "deleted inbound deliveries past retention"),
            Err(e) => tracing::warn!("deleting deliveries past retention failed: {e}"),
        }
        tokio::time::sleep(RETENTION_INTERVAL).await;
    }
}

/// Deletes the change-log rows past the retention (and a margin), at start and then every
/// [`RETENTION_INTERVAL`]: the bound on the log's growth. A delta token older than the
/// retention is refused before it could need a purged row.
async fn purge_change_log(state: Arc<AppState>) {
    loop {
        let before = time::OffsetDateTime::now_utc().unix_timestamp()
            - state.change_log_retention_secs
            - CHANGE_LOG_PURGE_MARGIN_SECS;
        match state.service.system().store().purge_changes(before).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "deleted change-log rows past retention"),
            Err(e) => tracing::warn!("deleting change-log rows past retention failed: {e}"),
        }
        tokio::time::sleep(RETENTION_INTERVAL).await;
    }
}

/// The system job worker: a pass over the unfinished jobs at start, whenever a request on this
/// node records one, and every [`JOB_POLL_INTERVAL`] (jobs recorded on other nodes, and jobs
/// whose node died, once their lease runs out), until the server stops.
/// Closes the conversations whose channel's inactivity timeout ran out, every `interval`.
/// Every node may run it: each close is compared-and-set on the conversation's version.
async fn close_idle_conversations(state: Arc<AppState>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        match state
            .sms
            .sms
            .close_idle_conversations(&state.service, &state.sms.admin)
            .await
        {
            Ok(0) => {}
            Ok(closed) => {
                tracing::info!(closed, "closed idle SMS conversations");
                state.console.notify(crate::edge::console::Event::Changed);
            }
            Err(e) => tracing::warn!("closing idle SMS conversations failed: {e}"),
        }
    }
}

async fn run_jobs(state: Arc<AppState>, worker: crate::execute::jobs::Worker) {
    loop {
        let notified = state.jobs.notified();
        let directory = &state.auth.directory;
        match state.service.run_jobs(directory, &worker).await {
            Ok(0) => {}
            Ok(ran) => tracing::info!(ran, "ran system jobs"),
            Err(e) => tracing::warn!("running system jobs failed: {e}"),
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(JOB_POLL_INTERVAL) => {}
        }
    }
}

/// The store, its service and the SMS channel, for `smsctx channel` (no listener).
pub struct ChannelAdmin {
    pub store: Backend,
    pub service: Service,
    pub admin: Caller,
    pub sms: crate::execute::sms::Sms,
}

impl ChannelAdmin {
    /// Opens the store a `--database` URL names (seeding what an older store lacks).
    /// A SQLite file that does not exist is refused (naming it), never created.
    pub async fn open(database: &str) -> Result<ChannelAdmin, AppError> {
        DatabaseUrl::existing(database)?;
        let catalog = Arc::new(Catalog::builtin()?);
        let store_catalog = Arc::new(Catalog::with_channels()?);
        let store = Backend::open(database, &store_catalog, 4).await?;
        let directory = Directory::new(Arc::clone(&catalog));
        let service = Service::new(catalog, store.as_store());
        let (admin, _) = seed(&service, &directory).await?;
        let sms = crate::execute::sms::Sms::new(&store_catalog)?;
        Ok(ChannelAdmin {
            store,
            service,
            admin,
            sms,
        })
    }
}

/// The store a `--database` URL selects.
pub enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PostgresStore>),
}

impl Backend {
    /// `sqlite://PATH` (or a plain path) opens the embedded store; `postgres://` and
    /// `postgresql://` connect to PostgreSQL.
    pub async fn open(url: &str, catalog: &Catalog, pool_size: usize) -> Result<Backend, AppError> {
        Backend::open_with(url, catalog, pool_size, CapacityConfig::default()).await
    }

    /// As [`Backend::open`], with the reader pool, queue and cache sized by `capacity`.
    pub async fn open_with(
        url: &str,
        catalog: &Catalog,
        pool_size: usize,
        capacity: CapacityConfig,
    ) -> Result<Backend, AppError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let store =
                PostgresStore::open_with_queue(url, catalog, pool_size, capacity.queue).await?;
            Ok(Backend::Postgres(Arc::new(store)))
        } else if url.starts_with("sqlite:") || !url.contains("://") {
            let path = SqliteStore::path_from_url(url);
            let options = crate::store::sqlite::SqliteOptions {
                readers: capacity.readers,
                queue: capacity.queue,
                cache_kib: capacity.cache_kib,
                ..Default::default()
            };
            Ok(Backend::Sqlite(Arc::new(SqliteStore::open_with(
                &path, catalog, options,
            )?)))
        } else {
            Err(AppError::DatabaseUrl(url.to_string()))
        }
    }

    pub fn as_store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(store) => Arc::clone(store) as Arc<dyn Store>,
            Backend::Postgres(store) => Arc::clone(store) as Arc<dyn Store>,
        }
    }

    /// SQLite: waits for the writer to drain. PostgreSQL: closes the pool (every write has
    /// committed by the time its request finished).
    pub fn close(&self) {
        match self {
            Backend::Sqlite(store) => store.close(),
            Backend::Postgres(store) => store.close(),
        }
    }
}

/// On first start: a root business unit with the built-in roles, an administrator who holds
/// System Administrator, and the organisation. Returns the administrator and the organisation.
async fn seed(
    service: &Service,
    directory: &Directory,
) -> Result<(Caller, Organization), AppError> {
    // Seeding runs before any caller exists: system access.
    let store = service.system().store();
    let bu_id = parse_setting(
        store
            .init_setting(ROOT_BUSINESS_UNIT, &Uuid::new_v4().to_string())
            .await?,
    )?;
    let admin_id = parse_setting(
        store
            .init_setting(ADMIN_USER, &Uuid::new_v4().to_string())
            .await?,
    )?;
    let admin = Caller {
        user_id: admin_id,
        business_unit_id: bu_id,
        on_behalf_of: None,
    };
    let catalog = Arc::clone(&service.catalog);
    let business_unit = catalog
        .entity(BUSINESS_UNIT)
        .cloned()
        .ok_or_else(|| StoreError::UnknownTable(BUSINESS_UNIT.into()))?;
    let user = catalog
        .entity(SYSTEM_USER)
        .cloned()
        .ok_or_else(|| StoreError::UnknownTable(SYSTEM_USER.into()))?;
    if store.get(&business_unit, bu_id, false).await?.is_none() {
        let payload = Payload {
            values: vec![named(&business_unit, NAME, SEEDED_NAME)],
            binds: Vec::new(),
        };
        ignore_duplicate(
            service
                .create(store, &admin, &business_unit, payload, Some(bu_id))
                .await,
        )?;
    }
    if store.get(&user, admin_id, false).await?.is_none() {
        let bind = user
            .position(crate::metadata::system::BUSINESS_UNIT_ID)
            .map(|position| Bind {
                position,
                target: Some((Arc::clone(&business_unit), bu_id)),
            });
        let payload = Payload {
            values: vec![
                named(&user, FIRST_NAME, "System"),
                named(&user, LAST_NAME, "Administrator"),
                named(&user, DOMAIN_NAME, "admin"),
            ],
            binds: bind.into_iter().collect(),
        };
        ignore_duplicate(
            service
                .create(store, &admin, &user, payload, Some(admin_id))
                .await,
        )?;
    }
    directory.seed_roles(store, bu_id).await?;
    directory
        .associate(
            store,
            Relationship::UserRoles,
            admin_id,
            builtin_role_id(SYSTEM_ADMINISTRATOR, bu_id),
        )
        .await?;
    let organization_id = parse_setting(
        store
            .init_setting(ORGANIZATION, &Uuid::new_v4().to_string())
            .await?,
    )?;
    crate::execute::views::seed_system_views(service, &admin).await?;
    let organization =
        crate::execute::organization::seed(service, &admin, organization_id, SEEDED_NAME).await?;
    Ok((admin, organization))
}

/// The Entra object id a token for `user` carries: the user's `azureactivedirectoryobjectid`
/// when `user` is a systemuserid, else `user` itself when some user has it as object id.
pub async fn object_id_of(database: &str, user: Uuid) -> Result<Uuid, AppError> {
    DatabaseUrl::existing(database)?;
    let catalog = Arc::new(Catalog::builtin()?);
    let backend = Backend::open(database, &catalog, 2).await?;
    let store = backend.as_store();
    let directory = Directory::new(Arc::clone(&catalog));
    let users = directory.table(SYSTEM_USER)?;
    let result = match store.get(users, user, false).await? {
        Some(record) => record
            .get(crate::metadata::system::AZURE_AD_OBJECT_ID)
            .as_guid()
            .ok_or(AppError::User(format!(
                "the user {user} has no azureactivedirectoryobjectid; set one to sign in with tokens"
            ))),
        None => match directory.user_by_object_id(&*store, user).await? {
            Some(_) => Ok(user),
            None => Err(AppError::User(format!("no user has the id or object id {user}"))),
        },
    };
    backend.close();
    result
}

fn named(entity: &crate::metadata::Entity, column: &str, text: &str) -> (usize, Value) {
    (
        entity.position(column).unwrap_or_default(),
        Value::Text(text.to_string()),
    )
}

fn ignore_duplicate<T>(result: Result<T, ExecError>) -> Result<(), ExecError> {
    match result {
        Ok(_) | Err(ExecError::Duplicate) => Ok(()),
        Err(e) => Err(e),
    }
}

fn parse_setting(text: String) -> Result<Uuid, StoreError> {
    Uuid::parse_str(&text).map_err(|_| StoreError::Unexpected(format!("seeded id '{text}'")))
}

/// Completes on SIGINT or SIGTERM.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // The handlers are installed now, not when the future is first polled: a SIGTERM that
    // arrives right after "listening" is printed must not kill the process.
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(interrupt) => {},
                _ = wait(terminate) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}
