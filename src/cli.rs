//! The command line: `smsctx serve` and its options, each also an environment variable.

use clap::{Parser, Subcommand};

use crate::app::{shutdown_signal, Application, ServeConfig};

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
    Serve(ServeArgs),
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
    /// Bearer token that acts as the seeded administrator; generated and printed when unset.
    #[arg(long, env = "SMSCTX_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SMSCTX_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Connections to PostgreSQL this node keeps at most.
    #[arg(long, env = "SMSCTX_POOL_SIZE", default_value_t = crate::store::postgres::DEFAULT_POOL_SIZE)]
    pub pool_size: usize,
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> i32 {
    let config = ServeConfig {
        listen: args.listen,
        database: args.database,
        admin_token: args.admin_token.filter(|t| !t.is_empty()),
        max_body_bytes: args.max_body_bytes,
        pool_size: args.pool_size,
    };
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("smsctx: {e}");
            return 1;
        }
    };
    if app.token_generated() {
        println!("smsctx: generated admin token (pass it as 'Authorization: Bearer <token>'; set --admin-token to choose one): {}", app.admin_token());
    }
    println!(
        "smsctx: listening on http://{}/api/data/v9.2/",
        app.local_addr()
    );
    match app.run_until(shutdown_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("smsctx: {e}");
            1
        }
    }
}
