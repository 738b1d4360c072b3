//! First start: the secretariat account that administers everything else.

use chrono::Utc;
use entity::member;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use secrecy::SecretString;

use crate::auth::service::issue_one_time;
use crate::auth::tokens::OpaqueKind;
use crate::db::Db;
use crate::domain::{Email, Locale, MemberStatus, Role};
use crate::settings::Settings;

/// With no secretariat account yet and `bootstrap.admin_email` set, creates that account as
/// `invited` and logs a one-time link to choose its password (never a password).
///
/// Nodes started together all find no account: the first to commit creates it and logs the link,
/// and the others, refused by the unique email, find it made and go on starting.
pub async fn ensure_secretariat(db: &Db, settings: &Settings) -> anyhow::Result<()> {
    if secretariat_exists(db).await? {
        return Ok(());
    }
    if settings.bootstrap.admin_email.trim().is_empty() {
        tracing::warn!(
            "no secretariat account exists: set bootstrap.admin_email (DCPORTS__BOOTSTRAP__ADMIN_EMAIL) or run `dcports admin create`"
        );
        return Ok(());
    }
    let email = Email::parse("bootstrap.admin_email", &settings.bootstrap.admin_email)
        .map_err(|error| anyhow::anyhow!("setting {} {}", error.field, error.message))?;
    let txn = db.begin_write().await?;
    let now = Utc::now();
    let member = member::ActiveModel {
        search_text: Set(crate::search::member_text(
            &settings.bootstrap.admin_name,
            email.as_str(),
        )),
        email: Set(email.as_str().to_owned()),
        name: Set(settings.bootstrap.admin_name.clone()),
        password_hash: Set(None),
        role: Set(Role::Secretariat.as_str().to_owned()),
        status: Set(MemberStatus::Invited.as_str().to_owned()),
        locale: Set(Locale::En.as_str().to_owned()),
        organization_id: Set(None),
        token_version: Set(0),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*txn)
    .await;
    let member = match member {
        Ok(member) => member,
        Err(error) => {
            drop(txn);
            if secretariat_exists(db).await? {
                tracing::info!("another node created the secretariat account first");
                return Ok(());
            }
            return Err(error.into());
        }
    };
    let hours = settings.auth.invitation_ttl_hours;
    let token = issue_one_time(&*txn, member.id, OpaqueKind::Invitation, chrono::Duration::hours(hours))
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    txn.commit().await?;
    tracing::warn!(
        email = %member.email,
        link = %settings.link("/invitation", &token),
        "created the secretariat account; set its password within {hours} hours with POST /api/auth/invitations/accept and this token"
    );
    Ok(())
}

async fn secretariat_exists(db: &Db) -> anyhow::Result<bool> {
    let accounts = member::Entity::find()
        .filter(member::Column::Role.eq(Role::Secretariat.as_str()))
        .count(db.conn())
        .await?;
    Ok(accounts > 0)
}

/// `dcports admin create`: an active secretariat account with the given password.
pub async fn create_secretariat(
    db: &Db,
    settings: &Settings,
    email: &str,
    name: &str,
    password: SecretString,
) -> anyhow::Result<member::Model> {
    let email = Email::parse("email", email).map_err(|error| anyhow::anyhow!("--email {}", error.message))?;
    let password = crate::domain::Password::parse("password", &password)
        .map_err(|error| anyhow::anyhow!("the password {}", error.message))?;
    let name =
        crate::domain::required_line("name", name, 200).map_err(|error| anyhow::anyhow!("--name {}", error.message))?;
    let passwords = crate::auth::password::Passwords::new(&settings.auth)?;
    let hash = passwords.hash(password.secret()).await?;
    let now = Utc::now();
    let account = member::ActiveModel {
        search_text: Set(crate::search::member_text(&name, email.as_str())),
        email: Set(email.as_str().to_owned()),
        name: Set(name),
        password_hash: Set(Some(hash)),
        role: Set(Role::Secretariat.as_str().to_owned()),
        status: Set(MemberStatus::Active.as_str().to_owned()),
        locale: Set(Locale::En.as_str().to_owned()),
        organization_id: Set(None),
        token_version: Set(0),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    db.write(|txn| Box::pin(account.insert(txn)))
        .await
        .map_err(|error| match error.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                anyhow::anyhow!("an account with this email already exists")
            }
            _ => anyhow::Error::new(error).context("Failed to create the account"),
        })
}
