//! Who belongs where, and what that lets them do.

use entity::{committee, committee_membership, member};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::auth::dto::{MemberResponse, MembershipSummary};
use crate::error::ApiResult;
use crate::state::AppState;

/// The member as `/api/me` shows it: with the committees they belong to and their role in each.
pub async fn with_committees(state: &AppState, member: member::Model) -> ApiResult<MemberResponse> {
    let rows = committee_membership::Entity::find()
        .filter(committee_membership::Column::MemberId.eq(member.id))
        .order_by_asc(committee_membership::Column::CommitteeId)
        .all(state.db.conn())
        .await?;
    let ids: Vec<i32> = rows.iter().map(|row| row.committee_id).collect();
    let committees = committee::Entity::find()
        .filter(committee::Column::Id.is_in(ids))
        .all(state.db.conn())
        .await?;
    let summaries = rows
        .into_iter()
        .filter_map(|row| {
            let committee = committees.iter().find(|c| c.id == row.committee_id)?;
            Some(MembershipSummary {
                id: committee.id,
                name: committee.name.clone(),
                role: row.role,
            })
        })
        .collect();
    let mut response = MemberResponse::from(member);
    response.committees = Some(summaries);
    Ok(response)
}
