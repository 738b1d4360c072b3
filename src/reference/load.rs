//! Loads the shipped reference data into the database, idempotently, at every start.

use entity::{country, port, port_community};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use super::{countries, port_communities};
use crate::db::Db;
use crate::search;

/// Inserts whatever reference rows are missing; existing rows are left as they are.
pub async fn ensure_loaded(db: &Db) -> anyhow::Result<()> {
    let txn = db.begin_write().await?;
    for c in countries() {
        country::Entity::insert(country::ActiveModel {
            code: Set(c.code.to_owned()),
            name_en: Set(c.name_en.to_owned()),
            name_es: Set(c.name_es.to_owned()),
        })
        .on_conflict_do_nothing_on([country::Column::Code])
        .exec(&*txn)
        .await?;
    }
    for community in port_communities() {
        port_community::Entity::insert(port_community::ActiveModel {
            name: Set(community.name.to_owned()),
            country_code: Set(community.country_code.to_owned()),
            status: Set(community.status.to_owned()),
            search_text: Set(search::index_text(&[community.name, community.unlocode])),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([port_community::Column::Name])
        .exec(&*txn)
        .await?;
        let Some(row) = port_community::Entity::find()
            .filter(port_community::Column::Name.eq(community.name))
            .one(&*txn)
            .await?
        else {
            continue;
        };
        port::Entity::insert(port::ActiveModel {
            port_community_id: Set(row.id),
            name: Set(community.name.to_owned()),
            unlocode: Set(community.unlocode.to_owned()),
            ..Default::default()
        })
        .on_conflict_do_nothing_on([port::Column::Unlocode])
        .exec(&*txn)
        .await?;
    }
    txn.commit().await?;
    Ok(())
}
