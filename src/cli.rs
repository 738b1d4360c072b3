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
    /// Load the reference data, and with --demo a demo data set.
    Seed {
        #[arg(long)]
        demo: bool,
    },
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
            Command::Seed { demo } => {
                let mut settings = settings;
                // The seed needs the application's services, not its listener.
                settings.server.port = 0;
                settings.server.host = "127.0.0.1".to_owned();
                let app = Application::build(settings).await?;
                println!("reference data loaded");
                if demo {
                    let state = app.state();
                    let actor = demo_author(&state).await?;
                    if crate::seed::demo(&state, &actor).await? {
                        println!("demo data loaded");
                    } else {
                        println!("demo data already present");
                    }
                }
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

/// The secretariat account that authors the demo: the first one, or a new invited one.
async fn demo_author(state: &crate::state::AppState) -> anyhow::Result<entity::member::Model> {
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
    let existing = entity::member::Entity::find()
        .filter(entity::member::Column::Role.eq(crate::domain::Role::Secretariat.as_str()))
        .order_by_asc(entity::member::Column::Id)
        .one(state.db.conn())
        .await?;
    if let Some(member) = existing {
        return Ok(member);
    }
    let now = chrono::Utc::now();
    let author = entity::member::ActiveModel {
        email: Set("demo-secretariat@example.org".to_owned()),
        name: Set("Demo Secretariat".to_owned()),
        search_text: Set(crate::search::member_text(
            "Demo Secretariat",
            "demo-secretariat@example.org",
        )),
        password_hash: Set(None),
        role: Set(crate::domain::Role::Secretariat.as_str().to_owned()),
        status: Set(crate::domain::MemberStatus::Invited.as_str().to_owned()),
        locale: Set("en".to_owned()),
        organization_id: Set(None),
        token_version: Set(0),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    Ok(state.db.write(|txn| Box::pin(author.insert(txn))).await?)
}
