//! The command line: clap definitions and the dispatch to commands.
//!
//! This is the only importer of clap. The commands live by topic in the
//! submodules; each returns a [`CliError`], which [`main`] prints with its
//! causes and a hint, and turns into a stable exit code ([`exit`]). The
//! help, the man page (`exsec man`) and the shell completions (`exsec
//! completions SHELL`) are all generated from the definitions below.
//!
//! Secret values never come from arguments (they would show in `ps` and
//! shell history): only from standard input or a no-echo prompt.

mod admin;
mod audit;
mod backup;
pub mod client;
mod deploy;
mod doctor;
pub mod dotenv;
mod error;
mod history;
mod keys;
pub mod output;
pub mod problems;
mod secrets;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::audit::Anchor;
use crate::model::{EnvKey, Provider};
use client::{Client, DEFAULT_URL};
pub use error::{CliError, exit};
use output::{Format, Output};

/// exsec keeps external secrets (provider credentials such as
/// OPENAI_API_KEY) sealed in one database and injects them into
/// Kubernetes apps when they are deployed.
///
/// Client commands talk to the daemon over HTTP, HTTPS or its local
/// socket: point them at it with --url (or EXSEC_URL), trust its
/// certificate with --cacert (or EXSEC_CACERT) and give a token with
/// --token-file (or the token text in EXSEC_TOKEN). `serve`, `keys
/// generate`, `tls generate`, `audit verify --db` and `restore` work
/// offline on files.
#[derive(Debug, Parser)]
#[command(
    name = "exsec",
    version,
    about,
    long_about,
    after_help = exit::TABLE,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options of every client command.
#[derive(Debug, Args)]
struct Global {
    /// The daemon's URL: http://HOST:PORT, https://HOST:PORT, or
    /// unix:/PATH for its local socket (server.unix_socket).
    #[arg(help_heading = "Global options", long, global = true, env = "EXSEC_URL", default_value = DEFAULT_URL, value_name = "URL")]
    url: String,
    /// A file holding the token (admin token file, or a minted tenant
    /// token). Without it, the token text is read from EXSEC_TOKEN. There
    /// is no --token: arguments are visible to every user.
    #[arg(
        help_heading = "Global options",
        long,
        global = true,
        env = "EXSEC_TOKEN_FILE",
        value_name = "FILE"
    )]
    token_file: Option<PathBuf>,
    /// CA certificate(s) to trust for an https:// daemon URL (PEM): the
    /// CA that issued the daemon's certificate, or a self-signed
    /// certificate from `exsec tls generate` itself. Without it, the
    /// system's CA store (/etc/ssl/certs) is used.
    #[arg(
        help_heading = "Global options",
        long,
        global = true,
        env = "EXSEC_CACERT",
        value_name = "FILE"
    )]
    cacert: Option<PathBuf>,
    /// Output format: aligned tables for people, or JSON for scripts.
    #[arg(help_heading = "Global options", long, short = 'o', global = true, value_enum, default_value_t = Format::Human)]
    output: Format,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: HTTP API, deploys, audit log (offline: needs the config).
    Serve {
        /// The configuration file (see config.example.toml).
        #[arg(long, short, value_name = "FILE", env = "EXSEC_CONFIG")]
        config: PathBuf,
    },
    /// Tenants: owners of apps (admin creates and deletes).
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Apps: each belongs to one tenant forever (admin registers and deletes).
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Tenant tokens: mint (shown once), list, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// External secrets: tenant defaults (--tenant) and app overrides (--app).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Deploy an app: inject its secrets as a Kubernetes Secret and roll
    /// out its Deployment.
    ///
    /// The answer always says what happened to the secrets: injected (with
    /// the key names), skipped (no secrets, or no master key) or failed (a
    /// value could not be opened); injection never fails the deploy.
    Deploy(DeployArgs),
    /// Deploy history of an app, newest first, or one deploy with its rollout.
    Deploys {
        /// The app.
        app: String,
        /// One deploy (e.g. dep_000000000007).
        deploy_id: Option<String>,
        /// Most deploys listed.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Roll an app back to an earlier deploy: its image, replicas, port and
    /// exactly the secret versions it injected.
    ///
    /// Prints what will change (env var names, never values) and applies
    /// with --yes or after a y at the prompt; without a terminal it
    /// refuses unless --yes is given. The app is then pinned: automatic
    /// redeploys wait until `exsec unpin APP` or a normal deploy. Refused
    /// (exit 5, `snapshot_unavailable`) when a version it needs was pruned.
    Rollback {
        /// The app.
        app: String,
        /// The deploy to return to (e.g. dep_000000000007).
        deploy_id: String,
        /// Apply without asking.
        #[arg(long)]
        yes: bool,
    },
    /// End a rollback's pin: the app follows its current secrets again
    /// (the next deploy injects them).
    Unpin {
        /// The app.
        app: String,
    },
    /// Check why an app does not get the secrets it should.
    ///
    /// Runs the troubleshooting table as checks, each printed ok, warning,
    /// problem or skipped, with the fix: secrets exist; master key loaded
    /// and nothing waits for a missing key (admin token); redeploy needed
    /// after a change; the Secret in the cluster holds the expected keys;
    /// the Deployment reads it through envFrom; an app override shadows a
    /// tenant default; required env vars missing; rollout status. Exits
    /// with 6 when a problem is found.
    Doctor {
        /// The app.
        app: String,
    },
    /// The audit log: list events, verify the hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Master keys: status, retire an old key, generate a new one.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// TLS certificates for the daemon (offline).
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Download a consistent backup of the daemon's store (admin).
    ///
    /// Values stay sealed: a backup is useless without the key directory,
    /// so back that up too, separately. The backup is authenticated with a
    /// key derived from the daemon's active master key (restore checks it).
    /// The file is written atomically with mode 0600 and checked (every
    /// record, the counts) before it is kept.
    Backup {
        /// Where to write the backup.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup into a data directory (offline: stop the daemon).
    ///
    /// Checks the backup's MAC with the master key it names (from
    /// --keys-dir) before anything else, and refuses a backup that was
    /// altered or made with a key you don't have, one from a newer exsec,
    /// an unauthenticated backup of an older exsec unless
    /// --accept-unauthenticated, and an existing database unless --force
    /// (the old file is then kept beside the new one). Verifies the
    /// restored audit chain and that it ends at the backup's anchor before
    /// putting the file in place. Memory stays bounded whatever the size.
    Restore {
        /// The backup file (a regular file).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The daemon's data directory; the database is DIR/exsec.redb
        /// (the directory of storage.path).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The key directory holding the master key that was active when
        /// the backup was taken (the `keys.dir` of the config).
        #[arg(long, value_name = "DIR")]
        keys_dir: PathBuf,
        /// Restore a backup made by an older exsec (format 1), which only
        /// has a checksum: anyone able to edit the file could have changed
        /// it. Only for a file you know was kept out of others' reach.
        #[arg(long)]
        accept_unauthenticated: bool,
        /// Replace an existing database.
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// e.g. `exsec completions bash > /etc/bash_completion.d/exsec`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `exsec man | man -l -`.
    Man,
}

#[derive(Debug, Subcommand)]
enum TenantsCommand {
    /// List tenants (a tenant token sees its own).
    List,
    /// Create a tenant (admin; creating an existing one is a no-op).
    Create {
        /// Tenant id: a DNS label of 1-42 characters.
        tenant: String,
    },
    /// Show a tenant.
    Get {
        /// The tenant.
        tenant: String,
    },
    /// Delete a tenant without apps (admin; also revokes its tokens).
    Delete {
        /// The tenant.
        tenant: String,
    },
    /// Rotate a tenant's data key (admin): a new data key, wrapped under
    /// the active master key, seals the tenant's values from now on; the
    /// daemon re-seals the existing ones (every kept version too) in the
    /// background and then deletes the older keys. Follow it with `exsec
    /// tenants get TENANT` or `exsec keys status`.
    RotateKey {
        /// The tenant.
        tenant: String,
    },
    /// Crypto-shred a tenant (admin): the tenant, its apps (their cluster
    /// objects best-effort), secrets with every kept version, tokens and
    /// its wrapped data keys, in one transaction. Copies of its sealed
    /// values open no more; older backups still hold its data keys until
    /// they expire (rotate the master key and retire the old one to close
    /// that).
    Shred {
        /// The tenant.
        tenant: String,
        /// Confirm: shredding cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AppsCommand {
    /// List apps (a tenant token sees its own).
    List {
        /// Only the apps of this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Register an app under a tenant (admin), or update its required env.
    Register {
        /// App id: a DNS label of 1-42 characters.
        app: String,
        /// The owning tenant (fixed forever).
        #[arg(long)]
        tenant: String,
        /// An env var name the app needs (repeatable): a deploy lacking one warns.
        #[arg(long = "require-env", value_name = "NAME")]
        require_env: Vec<String>,
        /// Redeploy the app (its last successful image, replicas and port)
        /// whenever a secret write changes its effective set.
        #[arg(long, conflicts_with = "no_auto_redeploy")]
        auto_redeploy: bool,
        /// Stop redeploying it automatically. With neither flag an existing
        /// app keeps its setting and a new one gets the daemon's default.
        #[arg(long)]
        no_auto_redeploy: bool,
    },
    /// Show an app.
    Get {
        /// The app.
        app: String,
    },
    /// Delete an app with its app-level secrets and deploy history (admin).
    ///
    /// Its cluster objects are removed best-effort; its audit events stay.
    Delete {
        /// The app.
        app: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Mint a tenant token (admin). The token is printed once, on
    /// standard output: `exsec tokens mint acme > acme.token`.
    Mint {
        /// The tenant.
        tenant: String,
    },
    /// List a tenant's tokens (ids and times, never the tokens).
    List {
        /// The tenant.
        tenant: String,
    },
    /// Revoke a token.
    Revoke {
        /// The tenant.
        tenant: String,
        /// The token id (the part after `exs_`, as listed).
        token_id: String,
    },
}

/// Which scope a secret command acts on.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct ScopeArgs {
    /// A tenant-wide default, inherited by every app of the tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// An app-specific override: wins over the tenant default.
    #[arg(long)]
    app: Option<String>,
}

/// Words after the last expected argument, and `--value`: only there to
/// refuse a secret value on the command line with an explanation instead
/// of clap's error (which would echo the value).
#[derive(Debug, Args)]
struct RefusedValue {
    #[arg(hide = true, num_args = 0.., allow_hyphen_values = true, trailing_var_arg = true)]
    rest: Vec<String>,
    #[arg(long = "value", hide = true, allow_hyphen_values = true)]
    value: Option<String>,
}

impl RefusedValue {
    fn given(&self) -> bool {
        !self.rest.is_empty() || self.value.is_some()
    }
}

/// The secret a value is read for (`secrets set`, `secrets verify`); the
/// value itself comes only from standard input or the prompt.
#[derive(Debug, Args)]
struct ValueArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// Provider, e.g. openai.
    provider: String,
    /// Env var name, e.g. OPENAI_API_KEY.
    key: String,
    #[command(flatten)]
    refused: RefusedValue,
}

impl ValueArgs {
    /// Refuses a value given as an argument, then parses the names.
    fn parse(&self) -> Result<secrets::SecretName, CliError> {
        refuse_value(&self.refused)?;
        Ok(secrets::SecretName {
            scope: self.scope.parse()?,
            provider: Provider::parse(&self.provider)?,
            key: EnvKey::parse(&self.key)?,
        })
    }
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Set a value: from standard input, or a no-echo prompt in a terminal.
    ///
    /// Never from an argument. One trailing newline of standard input is
    /// dropped: `printf %s "$V" | exsec secrets set ...` and `exsec secrets
    /// set ... < file` both work.
    Set(ValueArgs),
    /// List a scope's secrets: names, versions and times, never values.
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Remove a secret (the next deploy removes it from the cluster).
    ///
    /// Its kept versions stay (`secrets history`, `secrets restore`) unless
    /// `--purge` drops them too, e.g. after a value was pasted into the
    /// wrong place.
    Rm {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Provider.
        provider: String,
        /// Env var name.
        key: String,
        /// Also drop every kept value (works on a secret already removed;
        /// a rollback to a deploy that used one is then refused).
        #[arg(long)]
        purge: bool,
    },
    /// The merged set an app gets: per env var its source, whether an app
    /// override wins over a tenant default, and whether a redeploy is due.
    Effective {
        /// The app.
        #[arg(long)]
        app: String,
    },
    /// Check a candidate value against the stored one without reading it
    /// back (standard input or prompt; audited, rate-limited). Exits 6 on
    /// no match.
    Verify(ValueArgs),
    /// The kept versions of a secret, newest first: number, time, actor,
    /// and whether it holds a value or records a deletion (never a value).
    History {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Provider.
        provider: String,
        /// Env var name.
        key: String,
    },
    /// Write a kept version again, as a new version (deploy to inject it).
    #[command(disable_version_flag = true)]
    Restore {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Provider.
        provider: String,
        /// Env var name.
        key: String,
        /// The version to restore, as `exsec secrets history` lists it.
        #[arg(long, value_name = "N")]
        version: u64,
    },
    /// Set every KEY=VALUE of a dotenv file under one provider, all or
    /// nothing (one write on the daemon).
    ///
    /// Accepts `export ` prefixes, comments, blank lines, single quotes
    /// (literal) and double quotes (\n \t \" \\ \$ escapes). The whole file
    /// is checked first; a malformed line is named by number, never
    /// printed. `-` reads standard input.
    Import {
        #[command(flatten)]
        scope: ScopeArgs,
        /// The provider of every key, e.g. openai.
        #[arg(long)]
        provider: String,
        /// The dotenv file.
        #[arg(long, value_name = "FILE")]
        from_env_file: PathBuf,
        /// Also delete the scope's secrets (of every provider) that the
        /// file does not list, in the same all-or-nothing write.
        #[arg(long)]
        replace: bool,
    },
}

/// `exsec deploy`.
#[derive(Debug, Args)]
struct DeployArgs {
    /// The app.
    app: String,
    /// The image to roll out, e.g. registry.example/web:1.4.2.
    #[arg(long, value_name = "REF")]
    image: String,
    /// The app's tenant; inferred when left out (with a warning).
    #[arg(long)]
    tenant: Option<String>,
    /// Replicas; left out, an autoscaler keeps ownership.
    #[arg(long, value_name = "N")]
    replicas: Option<i32>,
    /// Container port.
    #[arg(long, value_name = "P")]
    port: Option<u16>,
    /// Report which env vars would be added, removed or changed; apply nothing.
    #[arg(long)]
    dry_run: bool,
    /// Roll the pods even if the image, port and secrets are unchanged.
    #[arg(long)]
    restart: bool,
    /// Makes a retry after a lost answer return the original deploy (24 h).
    #[arg(long, value_name = "K")]
    idempotency_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// List events, oldest first.
    List {
        /// Only this event type, e.g. external_secret.injected.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this app's events.
        #[arg(long)]
        app: Option<String>,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Most events listed (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Verify the hash chain and name the first broken event.
    ///
    /// Online through the daemon (admin token), or offline on the database
    /// file with --db (stop the daemon first, or use a copy). --anchor
    /// checks the head against an anchor logged earlier by the daemon
    /// (`exsec::audit::anchor` lines) or stored in a backup, which catches
    /// events cut from the end.
    Verify {
        /// Verify this redb file instead of asking the daemon.
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
        /// An anchor recorded earlier, as SEQ:HASH.
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Option<Anchor>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Write a new random master key into the key directory (offline).
    ///
    /// The key is named after the current UTC time (YYYYMMDDTHHMMSSZ), so
    /// the newest key sorts last and becomes the active key. The file is
    /// written with mode 0600 and given the owner of the directory; an
    /// existing file is never overwritten. Back the key up: values sealed
    /// under it cannot be opened without it.
    Generate {
        /// The key directory (the `keys.dir` of the config).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// The keyring: active key, keys present or missing, records per key,
    /// rotation progress (admin). Exits 5 when degraded (no key) or
    /// records wait for a missing key.
    Status,
    /// Retire an old master key once no record needs it (admin).
    ///
    /// Refuses while the key is active or records are still sealed under
    /// it. With --dir, moves DIR/ID.key to DIR/ID.key.retired (the daemon
    /// ignores it); archive that file with your backups, which may still
    /// need it.
    Retire {
        /// The key id (its file name without .key).
        id: String,
        /// The key directory on this host; without it, only the check runs.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Write a self-signed certificate and key for the daemon (offline).
    ///
    /// For sites without a CA: an ECDSA P-256 certificate naming every
    /// --host (DNS names and IP addresses, as clients will write them in
    /// --url), valid for --days, written as DIR/tls.crt (0644) and
    /// DIR/tls.key (0600), both owned by the directory's owner. Existing
    /// files are never overwritten. Point server.tls_cert and
    /// server.tls_key at them, and give clients the certificate with
    /// --cacert DIR/tls.crt.
    Generate {
        /// A name clients use to reach the daemon (repeatable), e.g.
        /// --host exsec.internal --host 10.0.0.5 --host localhost.
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
        /// Where to write tls.crt and tls.key (created if missing).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// Days of validity (1-3650).
        #[arg(long, value_name = "N", default_value_t = crate::tls::generate::DEFAULT_DAYS)]
        days: u32,
    },
}

/// What a client command gets: the daemon client and the output format.
struct Context {
    client: Client,
    output: Output,
}

/// Parses the command line, runs the command, prints any error, and
/// returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = Output::new(cli.global.output);
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(CliError::Stdout(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(exit::OK)
        }
        Err(error) => {
            report(&error, output);
            ExitCode::from(error.exit_code())
        }
    }
}

/// Prints an error with its causes and hint to standard error (as JSON
/// with `--output json`).
fn report(error: &CliError, output: Output) {
    let causes: Vec<String> = crate::error_chain::causes(error)
        .map(|cause| cause.to_string())
        .collect();
    let hint = error.hint();
    if output.json() {
        let mut body = serde_json::json!({
            "error": error.to_string(),
            "causes": causes,
            "hint": hint,
            "exit_code": error.exit_code(),
        });
        if let CliError::Client(client::ClientError::Problem(problem)) = error {
            body["problem"] = problem.body.clone();
        }
        eprintln!("{body}");
        return;
    }
    eprintln!("error: {error}");
    for cause in causes {
        eprintln!("  caused by: {cause}");
    }
    if let Some(hint) = hint {
        eprintln!("  hint: {hint}");
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let Cli { global, command } = cli;
    let output = Output::new(global.output);
    match command {
        Command::Serve { config } => {
            let config = crate::config::Config::load(&config)?;
            init_logging(config.log.format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(CliError::Runtime)?;
            runtime
                .block_on(crate::app::serve(&config))
                .map_err(CliError::Start)
        }
        Command::Keys(KeysCommand::Generate { dir }) => keys::generate(&dir, output),
        Command::Tls(TlsCommand::Generate {
            hosts,
            out_dir,
            days,
        }) => tls::generate(&out_dir, &hosts, days, output),
        Command::Audit(AuditCommand::Verify {
            db: Some(db),
            anchor,
        }) => audit::verify_offline(&db, anchor, output),
        Command::Restore {
            from,
            data_dir,
            keys_dir,
            accept_unauthenticated,
            force,
        } => backup::restore(
            &backup::RestoreArgs {
                from,
                data_dir,
                keys_dir,
                accept_unauthenticated,
                force,
            },
            output,
        ),
        Command::Completions { shell } => {
            let mut stdout = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "exsec", &mut stdout);
            Ok(())
        }
        Command::Man => {
            let mut stdout = std::io::stdout().lock();
            clap_mangen::Man::new(Cli::command())
                .render(&mut stdout)
                .map_err(CliError::Stdout)
        }
        command => {
            if global.cacert.is_some() && !global.url.starts_with("https://") {
                output::note("note: --cacert is used only with an https:// URL");
            }
            let client = Client::new(
                &global.url,
                global.token_file.as_deref(),
                global.cacert.as_deref(),
            )?;
            let context = Context { client, output };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(CliError::Runtime)?;
            runtime.block_on(dispatch(&context, command))
        }
    }
}

/// Runs a client command (one that talks to the daemon).
async fn dispatch(context: &Context, command: Command) -> Result<(), CliError> {
    match command {
        Command::Tenants(command) => match command {
            TenantsCommand::List => admin::tenants_list(context).await,
            TenantsCommand::Create { tenant } => admin::tenant_create(context, &tenant).await,
            TenantsCommand::Get { tenant } => admin::tenant_get(context, &tenant).await,
            TenantsCommand::Delete { tenant } => admin::tenant_delete(context, &tenant).await,
            TenantsCommand::RotateKey { tenant } => {
                admin::tenant_rotate_key(context, &tenant).await
            }
            TenantsCommand::Shred { tenant, yes } => {
                admin::tenant_shred(context, &tenant, yes).await
            }
        },
        Command::Apps(command) => match command {
            AppsCommand::List { tenant } => admin::apps_list(context, tenant.as_deref()).await,
            AppsCommand::Register {
                app,
                tenant,
                require_env,
                auto_redeploy,
                no_auto_redeploy,
            } => {
                let auto_redeploy = (auto_redeploy || no_auto_redeploy).then_some(auto_redeploy);
                admin::app_register(context, &app, &tenant, &require_env, auto_redeploy).await
            }
            AppsCommand::Get { app } => admin::app_get(context, &app).await,
            AppsCommand::Delete { app } => admin::app_delete(context, &app).await,
        },
        Command::Tokens(command) => match command {
            TokensCommand::Mint { tenant } => admin::token_mint(context, &tenant).await,
            TokensCommand::List { tenant } => admin::tokens_list(context, &tenant).await,
            TokensCommand::Revoke { tenant, token_id } => {
                admin::token_revoke(context, &tenant, &token_id).await
            }
        },
        Command::Secrets(command) => match command {
            SecretsCommand::Set(value) => secrets::set(context, &value.parse()?).await,
            SecretsCommand::List { scope } => secrets::list(context, &scope.parse()?).await,
            SecretsCommand::Rm {
                scope,
                provider,
                key,
                purge,
            } => secrets::remove(context, &scope.parse()?, &provider, &key, purge).await,
            SecretsCommand::Effective { app } => secrets::effective(context, &app).await,
            SecretsCommand::Verify(value) => secrets::verify(context, &value.parse()?).await,
            SecretsCommand::History {
                scope,
                provider,
                key,
            } => history::history(context, &scope.parse()?, &provider, &key).await,
            SecretsCommand::Restore {
                scope,
                provider,
                key,
                version,
            } => history::restore(context, &scope.parse()?, &provider, &key, version).await,
            SecretsCommand::Import {
                scope,
                provider,
                from_env_file,
                replace,
            } => {
                secrets::import(context, &scope.parse()?, &provider, &from_env_file, replace).await
            }
        },
        Command::Deploy(args) => {
            let request = deploy::Request {
                app: args.app,
                image: args.image,
                tenant: args.tenant,
                replicas: args.replicas,
                port: args.port,
                dry_run: args.dry_run,
                restart: args.restart,
                idempotency_key: args.idempotency_key,
            };
            deploy::deploy(context, request).await
        }
        Command::Deploys {
            app,
            deploy_id,
            limit,
        } => deploy::history(context, &app, deploy_id.as_deref(), limit).await,
        Command::Rollback {
            app,
            deploy_id,
            yes,
        } => history::rollback(context, &app, &deploy_id, yes).await,
        Command::Unpin { app } => history::unpin(context, &app).await,
        Command::Doctor { app } => doctor::doctor(context, &app).await,
        Command::Audit(AuditCommand::List {
            event_type,
            tenant,
            app,
            after,
            limit,
        }) => {
            let filter = audit::ListFilter {
                event_type,
                tenant,
                app,
                after,
                limit,
            };
            audit::list(context, &filter).await
        }
        Command::Audit(AuditCommand::Verify { db: _, anchor }) => {
            audit::verify_online(context, anchor).await
        }
        Command::Keys(KeysCommand::Status) => keys::status(context).await,
        Command::Keys(KeysCommand::Retire { id, dir }) => {
            keys::retire(context, &id, dir.as_deref()).await
        }
        Command::Backup { out } => backup::backup(context, &out).await,
        Command::Serve { .. }
        | Command::Keys(KeysCommand::Generate { .. })
        | Command::Tls(_)
        | Command::Restore { .. }
        | Command::Completions { .. }
        | Command::Man => Err(CliError::Usage(
            "this command runs offline, not through the daemon".to_owned(),
        )),
    }
}

/// Refuses a secret value given as an argument, before anything is sent.
fn refuse_value(refused: &RefusedValue) -> Result<(), CliError> {
    if refused.given() {
        return Err(CliError::ValueOnArgv);
    }
    Ok(())
}

/// Logs to stderr (journald picks it up), human or JSON; `EXSEC_LOG` or
/// `RUST_LOG` set the filter (default `info`).
fn init_logging(format: crate::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("EXSEC_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Human => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Whether `argv` parses as `secrets set|verify` with a value refused.
    fn value_refused(argv: &str) -> bool {
        let cli = Cli::try_parse_from(argv.split(' ')).unwrap();
        match cli.command {
            Command::Secrets(SecretsCommand::Set(value) | SecretsCommand::Verify(value)) => {
                value.refused.given()
            }
            _ => panic!("{argv}: parsed as another command"),
        }
    }

    #[test]
    fn a_value_after_the_key_is_caught_not_echoed_by_clap() {
        assert!(value_refused(
            "exsec secrets set --app web openai OPENAI_API_KEY --not-a-flag-sk-123"
        ));
        assert!(value_refused(
            "exsec secrets verify --tenant acme openai K --value=sk-123"
        ));
        assert!(!value_refused("exsec secrets set --app web openai K"));
    }
}
