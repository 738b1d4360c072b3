//! The command line: `serve` (default), `migrate`, `admin create`.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use migration::MigratorTrait as _;
use secrecy::SecretString;

use crate::db::Db;
use crate::settings::Settings;
use crate::startup::Application;
use crate::{bootstrap, telemetry};

#[derive(Parser)]
#[command(name = "dcports", version, about = "The D&C Ports Network portal backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP and WebSocket server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage secretariat accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an active secretariat account.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load()?;
    telemetry::init(&settings.log);
    actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => Application::build(settings)
                .await?
                .run_until_stopped()
                .await
                .map_err(Into::into),
            Command::Migrate => {
                let db = Db::connect(&settings.database).await?;
                migration::Migrator::up(db.conn(), None)
                    .await
                    .context("Failed to run the migrations")?;
                println!("migrations applied");
                Ok(())
            }
            Command::Admin {
                command:
                    AdminCommand::Create {
                        email,
                        name,
                        password_stdin,
                    },
            } => {
                let password = read_password(password_stdin)?;
                let db = Db::connect(&settings.database).await?;
                migration::Migrator::up(db.conn(), None)
                    .await
                    .context("Failed to run the migrations")?;
                let member = bootstrap::create_secretariat(&db, &settings, &email, &name, password).await?;
                println!("created secretariat account {} (id {})", member.email, member.id);
                Ok(())
            }
        }
    })
}

fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    if from_stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("Failed to read the password from stdin")?;
        let password = input
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(&input);
        return Ok(SecretString::from(password.to_owned()));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to prompt for the password: use --password-stdin");
    }
    let first = rpassword::prompt_password("Password (12 to 128 characters): ")?;
    let second = rpassword::prompt_password("Repeat the password: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(SecretString::from(first))
}
