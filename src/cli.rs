//! The command line: `smsctx serve` and its options (each also an environment variable),
//! `smsctx migrate`, and `smsctx channel add|list` (the SMS channels).

use clap::{Parser, Subcommand};

use crate::app::{shutdown_signal, Application, ChannelAdmin, ServeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "smsctx",
    version,
    about = "A self-hosted Dataverse Web API for SMS engagement contexts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Web API.
    Serve(Box<ServeArgs>),
    /// Mint a bearer token (HS256) for a user, for local use.
    Token(TokenArgs),
    /// Copy a whole store (every table, ids, versions, settings) into PostgreSQL and verify it
    /// by row counts and checksums; safe to run again to resume or catch up.
    Migrate(MigrateArgs),
    /// Copy a SQLite store to a new file while it serves (one consistent snapshot, verified by
    /// row counts and checksums).
    Backup(BackupArgs),
    /// Put a backup file in place as a SQLite store (stop the server first), verified.
    Restore(RestoreArgs),
    /// The administrator's bearer token (generated on the first start, kept across restarts).
    #[command(subcommand)]
    AdminToken(AdminTokenCommand),
    /// Configure the SMS channels: the organisation numbers smsctx receives SMS for.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Write a development certificate authority and a localhost certificate it signs, for
    /// `serve --tls-cert/--tls-key`, and print how to make clients trust it.
    DevCert(DevCertArgs),
}

#[derive(Debug, clap::Args)]
pub struct DevCertArgs {
    /// The directory to write ca.pem, cert.pem and key.pem into.
    #[arg(long, default_value = "smsctx-dev-cert")]
    pub out: std::path::PathBuf,
    /// Another host name or IP address the certificate is for (besides localhost, 127.0.0.1
    /// and ::1); may be repeated.
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Replace the admin token with a new one (printed, and written next to the database with
    /// mode 600); servers on the store accept it, and stop accepting the old one, once restarted.
    Rotate(AdminTokenArgs),
}

#[derive(Debug, clap::Args)]
pub struct AdminTokenArgs {
    /// The store: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
    /// Where to write the new token (as `serve --admin-token-file`).
    #[arg(long, env = "SMSCTX_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Add an organisation number with its provider and credentials.
    Add(Box<ChannelAddArgs>),
    /// List the channels (secrets masked) and their webhook paths.
    List(ChannelListArgs),
    /// Change a channel: rotate its secret, set its account, URL, name, reply or owner.
    Update(Box<ChannelUpdateArgs>),
    /// Remove a channel (its number stops receiving; contexts it opened stay).
    Remove(ChannelRemoveArgs),
}

/// Which channel: by its number or its id.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct ChannelSelector {
    /// The channel's organisation number in E.164 (+14252306549).
    #[arg(long)]
    pub number: Option<String>,
    /// The channel's id (smsctx_smschannelid, as `channel list` shows it).
    #[arg(long)]
    pub id: Option<uuid::Uuid>,
}

#[derive(Debug, clap::Args)]
pub struct ChannelUpdateArgs {
    /// The store: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
    #[command(flatten)]
    pub channel: ChannelSelector,
    /// A new Twilio auth token, or TeleSign API key (base64).
    #[arg(long, env = "SMSCTX_CHANNEL_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// The Twilio account SID (AC...) or TeleSign customer id; '' clears it.
    #[arg(long)]
    pub account: Option<String>,
    /// The exact URL the provider calls; '' clears it.
    #[arg(long)]
    pub public_url: Option<String>,
    /// A readable name.
    #[arg(long)]
    pub name: Option<String>,
    /// Text answered in TwiML to every inbound message (Twilio); '' clears it.
    #[arg(long)]
    pub auto_reply: Option<String>,
    /// The provider API's base URL for outbound messages; '' clears it.
    #[arg(long)]
    pub api_base_url: Option<String>,
    /// Minutes without a message after which a conversation is closed; 0 turns it off.
    #[arg(long)]
    pub inactivity_timeout: Option<i64>,
    /// The team that owns the contexts and conversations the number opens.
    #[arg(long, conflicts_with = "owner_user")]
    pub owner_team: Option<uuid::Uuid>,
    /// The user that owns them.
    #[arg(long)]
    pub owner_user: Option<uuid::Uuid>,
}

#[derive(Debug, clap::Args)]
pub struct ChannelRemoveArgs {
    /// The store: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
    #[command(flatten)]
    pub channel: ChannelSelector,
}

#[derive(Debug, clap::Args)]
pub struct ChannelAddArgs {
    /// The store: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
    /// twilio or telesign.
    #[arg(long)]
    pub provider: String,
    /// The organisation number in E.164 (+14252306549).
    #[arg(long)]
    pub number: String,
    /// The Twilio auth token, or the TeleSign API key (base64).
    #[arg(long, env = "SMSCTX_CHANNEL_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The Twilio account SID (AC followed by 32 hex digits), or the TeleSign customer id
    /// (required for both: outbound messages are sent under it).
    #[arg(long)]
    pub account: Option<String>,
    /// The exact URL the provider calls, e.g. https://sms.example.com/channels/sms/twilio
    /// (Twilio signs it; without it the request's Host header is used).
    #[arg(long)]
    pub public_url: Option<String>,
    /// A readable name (default: provider and number).
    #[arg(long)]
    pub name: Option<String>,
    /// Text answered in TwiML to every inbound message (Twilio).
    #[arg(long)]
    pub auto_reply: Option<String>,
    /// The team that owns the contexts and conversations the number opens.
    #[arg(long, conflicts_with = "owner_user")]
    pub owner_team: Option<uuid::Uuid>,
    /// The user that owns them (default: the administrator).
    #[arg(long)]
    pub owner_user: Option<uuid::Uuid>,
    /// The provider API's base URL for outbound messages (default: the provider's own).
    #[arg(long)]
    pub api_base_url: Option<String>,
    /// Minutes without a message after which a conversation is closed (default: never).
    #[arg(long)]
    pub inactivity_timeout: Option<i64>,
}

#[derive(Debug, clap::Args)]
pub struct ChannelListArgs {
    /// The store: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The store to copy: sqlite://PATH (the server may be running on it).
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
    /// The new file to write (refused if it exists).
    #[arg(long)]
    pub to: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    pub from: std::path::PathBuf,
    /// The store to restore into: sqlite://PATH (no server may be running on it).
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
    /// Replace an existing store.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The store to copy: sqlite://PATH (or postgres://...).
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL database to copy into: postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long)]
    pub to: String,
    /// Rows per page (one transaction each).
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The user: a systemuserid or an Entra object id (azureactivedirectoryobjectid).
    #[arg(long)]
    pub user: uuid::Uuid,
    /// The HS256 secret the server validates tokens with (`serve --jwt-secret`).
    #[arg(long, env = "SMSCTX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// The store that knows the user (to map a systemuserid to its object id).
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
    /// `iss` to put in the token (when the server checks one).
    #[arg(long, env = "SMSCTX_JWT_ISSUER")]
    pub issuer: Option<String>,
    /// `aud` to put in the token (when the server checks one).
    #[arg(long, env = "SMSCTX_JWT_AUDIENCE")]
    pub audience: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "SMSCTX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Database URL: sqlite://PATH (created on first start) or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (schema created on first start).
    #[arg(long, env = "SMSCTX_DATABASE", default_value = "sqlite://smsctx.db")]
    pub database: String,
    /// Bearer token that acts as the seeded administrator; when unset, the one generated (and
    /// printed) on the store's first start, kept until `smsctx admin-token rotate`.
    #[arg(long, env = "SMSCTX_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Where the admin token generated on the first start is written (mode 600); default: next
    /// to the SQLite file (smsctx.db.admin-token), or ./smsctx.admin-token for PostgreSQL.
    #[arg(long, env = "SMSCTX_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SMSCTX_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Connections to PostgreSQL this node keeps at most.
    #[arg(long, env = "SMSCTX_POOL_SIZE", default_value_t = crate::store::postgres::DEFAULT_POOL_SIZE)]
    pub pool_size: usize,
    /// SMS webhook requests per second per peer address (0: no limit).
    #[arg(long, env = "SMSCTX_SMS_RATE_LIMIT", default_value_t = crate::edge::sms::DEFAULT_RATE_LIMIT)]
    pub sms_rate_limit: u32,
    /// Days inbound SMS deliveries are kept for replay detection (0: forever).
    #[arg(long, env = "SMSCTX_SMS_DELIVERY_RETENTION_DAYS", default_value_t = crate::app::DEFAULT_DELIVERY_RETENTION_DAYS)]
    pub sms_delivery_retention_days: u32,
    /// Seconds the change log (delta tokens, audit history) is kept (0: forever).
    #[arg(long, env = "SMSCTX_CHANGE_LOG_RETENTION_SECS", default_value_t = crate::app::DEFAULT_CHANGE_LOG_RETENTION_SECS)]
    pub change_log_retention_secs: u64,
    /// Rows a BulkDelete job deletes per transaction.
    #[arg(long, env = "SMSCTX_BULK_DELETE_BATCH", default_value_t = crate::execute::jobs::DEFAULT_BATCH, value_parser = clap::value_parser!(usize))]
    pub bulk_delete_batch: usize,
    /// Seconds between two checks of the SMS channels' inactivity timeouts.
    #[arg(long, env = "SMSCTX_SMS_INACTIVITY_CHECK_SECONDS", default_value_t = crate::app::DEFAULT_INACTIVITY_CHECK_SECONDS)]
    pub sms_inactivity_check_seconds: u64,
    /// Development only: the web console's "development login" hands the generated admin
    /// token to a browser on this machine (not with --admin-token).
    #[arg(long, env = "SMSCTX_CONSOLE_DEV_LOGIN")]
    pub console_dev_login: bool,
    /// Accept HS256 bearer JWTs signed with this secret (`oid` names the user).
    #[arg(long, env = "SMSCTX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Accept RS256/ES256 bearer JWTs signed by a key of this JWKS document (a file, or an
    /// http(s):// URL read once at start).
    #[arg(long, env = "SMSCTX_JWKS")]
    pub jwks: Option<String>,
    /// Require this `iss` in bearer JWTs.
    #[arg(long, env = "SMSCTX_JWT_ISSUER")]
    pub issuer: Option<String>,
    /// Require this `aud` in bearer JWTs.
    #[arg(long, env = "SMSCTX_JWT_AUDIENCE")]
    pub audience: Option<String>,
    /// Service protection: at most this many requests per user in the window (off when unset).
    #[arg(long, env = "SMSCTX_RATE_LIMIT_REQUESTS")]
    pub rate_limit_requests: Option<usize>,
    /// The sliding window of `--rate-limit-requests`, in seconds (Dataverse: 300).
    #[arg(long, env = "SMSCTX_RATE_LIMIT_WINDOW", default_value_t = 300)]
    pub rate_limit_window: u64,
    /// Service protection: at most this many requests per user at once (off when unset).
    #[arg(long, env = "SMSCTX_RATE_LIMIT_CONCURRENT")]
    pub rate_limit_concurrent: Option<usize>,
    /// SQLite reader connections (reads at once); default: the machine's cores, 2 to 16.
    #[arg(long, env = "SMSCTX_READERS", default_value_t = crate::store::sqlite::default_readers())]
    pub readers: usize,
    /// Requests that may wait for a database connection; the next gets a 503 with Retry-After.
    #[arg(long, env = "SMSCTX_QUEUE", default_value_t = crate::store::admission::DEFAULT_QUEUE)]
    pub queue: usize,
    /// The page cache of each SQLite connection, in KiB.
    #[arg(long, env = "SMSCTX_CACHE_KIB", default_value_t = crate::store::sqlite::DEFAULT_CACHE_KIB)]
    pub cache_kib: u32,
    /// Open connections at most; past that, new ones wait in the kernel's backlog.
    #[arg(long, env = "SMSCTX_MAX_CONNECTIONS", default_value_t = crate::listen::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds from the first byte of a request head (or TLS handshake) to the whole head.
    #[arg(long, env = "SMSCTX_HEADER_TIMEOUT", default_value_t = crate::listen::DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout: u64,
    /// Seconds from a request's head to the last byte of its body (then 408).
    #[arg(long, env = "SMSCTX_BODY_TIMEOUT", default_value_t = crate::listen::DEFAULT_BODY_TIMEOUT_SECS)]
    pub body_timeout: u64,
    /// Seconds a connection may stay open with no request (keep-alive), then it is closed.
    #[arg(long, env = "SMSCTX_IDLE_TIMEOUT", default_value_t = crate::listen::DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout: u64,
    /// Serve HTTPS with this PEM certificate chain (leaf first; `smsctx dev-cert` writes one).
    #[arg(long, env = "SMSCTX_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, env = "SMSCTX_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// The text of a JWKS document: a file, or fetched from an http(s) URL.
async fn read_jwks(location: &str) -> Result<String, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        let response = reqwest::get(location)
            .await
            .map_err(|e| format!("cannot fetch {location}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{location} answered {}", response.status()));
        }
        return response
            .text()
            .await
            .map_err(|e| format!("cannot read {location}: {e}"));
    }
    std::fs::read_to_string(location).map_err(|e| format!("cannot read {location}: {e}"))
}

async fn token(args: TokenArgs) -> i32 {
    let object_id = match crate::app::object_id_of(&args.database, args.user).await {
        Ok(id) => id,
        Err(e) => {
            eprintln!("smsctx: {e}");
            return 1;
        }
    };
    let options = crate::security::jwt::MintOptions {
        issuer: args.issuer.as_deref(),
        audience: args.audience.as_deref(),
    };
    println!(
        "{}",
        crate::security::jwt::mint_with(
            args.jwt_secret.as_bytes(),
            object_id,
            std::time::Duration::from_secs(args.ttl),
            &options,
        )
    );
    0
}

async fn rotate_admin_token(args: AdminTokenArgs) -> i32 {
    match crate::app::rotate_admin_token(&args.database, args.admin_token_file).await {
        Ok((token, file)) => {
            println!("smsctx: new admin token (restart the servers on this store to use it; the old one stops working then): {token}");
            match file {
                Ok(path) => println!(
                    "smsctx: admin token written to {} (mode 600)",
                    path.display()
                ),
                Err(e) => eprintln!("smsctx: warning: {e}; copy the token above"),
            }
            0
        }
        Err(e) => {
            eprintln!("smsctx: admin-token rotate failed: {e}");
            1
        }
    }
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Backup(args) => {
            report_copy("backed up", crate::backup::backup(&args.database, &args.to))
        }
        Command::Restore(args) => report_copy(
            "restored",
            crate::backup::restore(&args.from, &args.database, args.force),
        ),
        Command::Token(args) => token(args).await,
        Command::AdminToken(AdminTokenCommand::Rotate(args)) => rotate_admin_token(args).await,
        Command::Channel(ChannelCommand::Add(args)) => channel_add(*args).await,
        Command::Channel(ChannelCommand::List(args)) => channel_list(args).await,
        Command::Channel(ChannelCommand::Update(args)) => channel_update(*args).await,
        Command::Channel(ChannelCommand::Remove(args)) => channel_remove(args).await,
        Command::DevCert(args) => dev_cert(args),
    }
}

fn dev_cert(args: DevCertArgs) -> i32 {
    match crate::tls::dev_cert(&args.out, &args.names, args.days) {
        Ok(written) => {
            let (ca, cert, key) = (
                written.ca.display(),
                written.cert.display(),
                written.key.display(),
            );
            println!(
                "smsctx: wrote the development CA {ca}, the certificate {cert} and its key {key}"
            );
            println!();
            println!("Serve HTTPS with it:");
            println!("  smsctx serve --tls-cert {cert} --tls-key {key}");
            println!();
            println!(
                "Make clients trust the CA (only this machine's clients; keep {key} private):"
            );
            println!("  Python (requests, httpx, azure-core):  export REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca}");
            println!("  Node.js:                               export NODE_EXTRA_CA_CERTS={ca}");
            println!("  curl:                                  curl --cacert {ca} https://localhost:8080/api/data/v9.2/");
            0
        }
        Err(e) => {
            eprintln!("smsctx: dev-cert failed: {e}");
            1
        }
    }
}

/// The owner `--owner-team`/`--owner-user` name.
fn owner_of(
    team: Option<uuid::Uuid>,
    user: Option<uuid::Uuid>,
) -> Option<crate::execute::sms::Owner> {
    match (team, user) {
        (Some(id), _) => Some(crate::execute::sms::Owner {
            table: crate::metadata::system::TEAM.to_owned(),
            id,
        }),
        (None, Some(id)) => Some(crate::execute::sms::Owner {
            table: crate::metadata::system::SYSTEM_USER.to_owned(),
            id,
        }),
        (None, None) => None,
    }
}

/// A Twilio account SID: `AC` and 32 hexadecimal digits.
fn check_twilio_account(account: Option<&str>) -> Result<(), String> {
    let example = "e.g. --account AC0123456789abcdef0123456789abcdef (the Account SID on the \
                   Twilio console's dashboard)";
    match account.map(str::trim) {
        None | Some("") => Err(format!(
            "a Twilio channel needs its account SID, which replies are sent under: {example}"
        )),
        Some(sid)
            if sid.len() == 34
                && sid.starts_with("AC")
                && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(())
        }
        Some(sid) => Err(format!(
            "'{sid}' is not a Twilio account SID (AC followed by 32 hexadecimal digits): {example}"
        )),
    }
}

/// The channel id a `--number`/`--id` names.
fn selected_channel(selector: &ChannelSelector) -> Result<uuid::Uuid, String> {
    match (&selector.id, &selector.number) {
        (Some(id), _) => Ok(*id),
        (None, Some(number)) => crate::execute::sms::parse_org_number(number)
            .map(|n| crate::execute::sms::Sms::channel_id(&n))
            .map_err(|e| e.to_string()),
        (None, None) => Err("name the channel with --number or --id".into()),
    }
}

/// '' clears an optional column.
fn change(value: Option<String>) -> Option<Option<String>> {
    value.map(|v| Some(v).filter(|v| !v.trim().is_empty()))
}

async fn channel_update(args: ChannelUpdateArgs) -> i32 {
    let id = match selected_channel(&args.channel) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("smsctx: channel update failed: {e}");
            return 1;
        }
    };
    if let Some(account) = args.account.as_deref().filter(|a| a.starts_with("AC")) {
        if let Err(e) = check_twilio_account(Some(account)) {
            eprintln!("smsctx: channel update failed: {e}");
            return 1;
        }
    }
    let admin = match ChannelAdmin::open(&args.database).await {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("smsctx: {e}");
            return 1;
        }
    };
    let owner = owner_of(args.owner_team, args.owner_user);
    let changes = crate::execute::sms::ChannelChanges {
        name: args.name,
        secret: args.secret,
        account: change(args.account),
        public_url: change(args.public_url),
        auto_reply: change(args.auto_reply),
        default_owner: owner.map(Some),
        api_base_url: change(args.api_base_url),
        inactivity_timeout: args.inactivity_timeout.map(|m| Some(m).filter(|m| *m != 0)),
    };
    let result = admin
        .sms
        .update_channel(
            &admin.service,
            admin.service.system().store(),
            &admin.admin,
            id,
            changes,
        )
        .await;
    admin.store.close();
    match result {
        Ok(channel) => {
            println!(
                "smsctx: updated {} channel {} for {} (secret {})",
                channel.provider.label(),
                channel.id,
                channel.number.e164(),
                crate::execute::sms::mask(&channel.secret),
            );
            0
        }
        Err(e) => {
            eprintln!("smsctx: channel update failed: {e}");
            1
        }
    }
}

async fn channel_remove(args: ChannelRemoveArgs) -> i32 {
    let id = match selected_channel(&args.channel) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("smsctx: channel remove failed: {e}");
            return 1;
        }
    };
    let admin = match ChannelAdmin::open(&args.database).await {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("smsctx: {e}");
            return 1;
        }
    };
    let result = admin
        .sms
        .delete_channel(
            &admin.service,
            admin.service.system().store(),
            &admin.admin,
            id,
        )
        .await;
    admin.store.close();
    match result {
        Ok(()) => {
            println!("smsctx: removed channel {id}");
            0
        }
        Err(e) => {
            eprintln!("smsctx: channel remove failed: {e}");
            1
        }
    }
}

async fn channel_add(args: ChannelAddArgs) -> i32 {
    if crate::execute::sms::Provider::parse(&args.provider)
        == Some(crate::execute::sms::Provider::Twilio)
    {
        if let Err(e) = check_twilio_account(args.account.as_deref()) {
            eprintln!("smsctx: channel add failed: {e}");
            return 1;
        }
    }
    let admin = match ChannelAdmin::open(&args.database).await {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("smsctx: {e}");
            return 1;
        }
    };
    let default_owner = owner_of(args.owner_team, args.owner_user);
    let input = crate::execute::sms::NewChannel {
        provider: args.provider,
        number: args.number,
        secret: args.secret,
        account: args.account,
        public_url: args.public_url,
        name: args.name,
        auto_reply: args.auto_reply,
        default_owner,
        api_base_url: args.api_base_url,
        inactivity_timeout: args.inactivity_timeout,
    };
    let result = admin
        .sms
        .add_channel(
            &admin.service,
            admin.service.system().store(),
            &admin.admin,
            input,
        )
        .await;
    admin.store.close();
    match result {
        Ok(channel) => {
            println!(
                "smsctx: added {} channel {} for {} (secret {}); webhook path {}",
                channel.provider.label(),
                channel.id,
                channel.number.e164(),
                crate::execute::sms::mask(&channel.secret),
                webhook_path(channel.provider),
            );
            0
        }
        Err(e) => {
            eprintln!("smsctx: channel add failed: {e}");
            1
        }
    }
}

async fn channel_list(args: ChannelListArgs) -> i32 {
    let admin = match ChannelAdmin::open(&args.database).await {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("smsctx: {e}");
            return 1;
        }
    };
    let result = admin.sms.channels(admin.service.system().store()).await;
    admin.store.close();
    match result {
        Ok(channels) => {
            for c in &channels {
                println!(
                    "{}  {:<8}  {:<16}  account {:<36}  secret {:<8}  url {}",
                    c.id,
                    c.provider.label(),
                    c.number.e164(),
                    c.account.as_deref().unwrap_or("-"),
                    crate::execute::sms::mask(&c.secret),
                    c.public_url.as_deref().unwrap_or(webhook_path(c.provider)),
                );
            }
            println!("smsctx: {} channel(s)", channels.len());
            0
        }
        Err(e) => {
            eprintln!("smsctx: channel list failed: {e}");
            1
        }
    }
}

fn webhook_path(provider: crate::execute::sms::Provider) -> &'static str {
    match provider {
        crate::execute::sms::Provider::Twilio => crate::edge::sms::TWILIO_PATH,
        crate::execute::sms::Provider::TeleSign => crate::edge::sms::TELESIGN_PATH,
    }
}

/// Prints a backup's or restore's tables, or its failure; the exit code.
fn report_copy(
    done: &str,
    result: Result<Vec<crate::backup::TableReport>, crate::backup::BackupError>,
) -> i32 {
    match result {
        Ok(reports) => {
            for report in &reports {
                println!(
                    "smsctx: {:<28} {:>9} rows  sha256 {}  verified",
                    report.table, report.rows, report.checksum
                );
            }
            println!("smsctx: {done} {} tables", reports.len());
            0
        }
        Err(e) => {
            eprintln!("smsctx: {e}");
            1
        }
    }
}

async fn migrate(args: MigrateArgs) -> i32 {
    let progress = crate::migrate::progress_bar();
    match crate::migrate::migrate(&args.from, &args.to, args.batch_size, progress).await {
        Ok(reports) => {
            for report in &reports {
                println!(
                    "smsctx: {:<24} {:>9} rows ({} written)  sha256 {}  verified",
                    report.table, report.rows, report.written, report.checksum
                );
            }
            println!("smsctx: migrated {} tables to PostgreSQL", reports.len());
            0
        }
        Err(e) => {
            eprintln!("smsctx: migrate failed: {e}");
            1
        }
    }
}

async fn serve(args: ServeArgs) -> i32 {
    let config = ServeConfig {
        listen: args.listen,
        database: args.database,
        admin_token: args.admin_token.filter(|t| !t.is_empty()),
        admin_token_file: args.admin_token_file,
        max_body_bytes: args.max_body_bytes,
        pool_size: args.pool_size,
        sms_rate_limit: args.sms_rate_limit,
        sms_delivery_retention_days: args.sms_delivery_retention_days,
        bulk_delete_batch: args.bulk_delete_batch,
        sms_inactivity_check_seconds: args.sms_inactivity_check_seconds,
        change_log_retention_secs: args.change_log_retention_secs,
        console_dev_login: args.console_dev_login,
        jwt: crate::app::JwtConfig {
            secret: args.jwt_secret.filter(|s| !s.is_empty()),
            jwks: match args.jwks.filter(|s| !s.is_empty()) {
                None => None,
                Some(location) => match read_jwks(&location).await {
                    Ok(text) => Some(text),
                    Err(e) => {
                        eprintln!("smsctx: {e}");
                        return 1;
                    }
                },
            },
            issuer: args.issuer,
            audience: args.audience,
        },
        limits: crate::app::LimitConfig {
            requests: args.rate_limit_requests,
            window: std::time::Duration::from_secs(args.rate_limit_window),
            concurrent: args.rate_limit_concurrent,
        },
        capacity: crate::app::CapacityConfig {
            readers: args.readers,
            queue: args.queue,
            cache_kib: args.cache_kib,
        },
        connections: crate::listen::ConnectionLimits {
            max_connections: args.max_connections,
            header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
            body_timeout: std::time::Duration::from_secs(args.body_timeout.max(1)),
            idle_timeout: std::time::Duration::from_secs(args.idle_timeout.max(1)),
        },
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            _ => None,
        },
    };
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("smsctx: {e}");
            return 1;
        }
    };
    // Before "listening" is printed: whoever reads that line may signal at once.
    let shutdown = shutdown_signal();
    println!(
        "smsctx: database: {}{}",
        app.database(),
        if app.database_created() {
            " (created now)"
        } else {
            ""
        }
    );
    match &app.admin_token().origin {
        crate::app::TokenOrigin::Given => {
            println!("smsctx: admin token: the one --admin-token gives");
        }
        crate::app::TokenOrigin::Generated { token, file } => {
            println!("smsctx: generated admin token (shown once; kept across restarts until `smsctx admin-token rotate`; pass it as 'Authorization: Bearer <token>'): {token}");
            match file {
                Ok(path) => println!(
                    "smsctx: admin token written to {} (mode 600)",
                    path.display()
                ),
                Err(e) => eprintln!("smsctx: warning: {e}; copy the token above"),
            }
        }
        crate::app::TokenOrigin::Kept { file } => {
            println!(
                "smsctx: admin token: the one generated on the first start{} (`smsctx admin-token rotate` makes a new one)",
                if file.exists() {
                    format!(", in {}", file.display())
                } else {
                    String::new()
                }
            );
        }
    }
    println!(
        "smsctx: listening on {}://{}/api/data/v9.2/",
        app.scheme(),
        app.local_addr()
    );
    match app.run_until(shutdown).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("smsctx: {e}");
            1
        }
    }
}
