//! Request and response bodies of the task endpoints.

use chrono::{DateTime, NaiveDate, Utc};
use entity::{task, task_comment};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::string_enum;

string_enum!(
    /// Where a task stands.
    TaskStatus { Todo => "todo", InProgress => "in_progress", Blocked => "blocked", Done => "done" }
);

string_enum!(
    /// How urgent a task is.
    TaskPriority { Low => "low", Normal => "normal", High => "high" }
);

impl TaskStatus {
    /// The moves a task may make: forward through the board, into and out of `blocked`, and
    /// back from `done` when it turns out not to be.
    pub fn can_become(self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        self == next
            || matches!(
                (self, next),
                (Todo, InProgress | Blocked | Done)
                    | (InProgress, Todo | Blocked | Done)
                    | (Blocked, Todo | InProgress)
                    | (Done, InProgress)
            )
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub assignee_id: Option<i32>,
    pub due_on: Option<NaiveDate>,
    pub priority: Option<TaskPriority>,
    pub position: Option<i32>,
    pub meeting_id: Option<i32>,
    pub agenda_item_id: Option<i32>,
}

/// `null` clears a field; a missing field leaves it alone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    #[schema(min_length = 1, max_length = 300)]
    pub title: Option<String>,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<TaskPriority>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>)]
    pub assignee_id: Option<Option<i32>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub due_on: Option<Option<NaiveDate>>,
    pub position: Option<i32>,
}

fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskFilter {
    #[param(value_type = Option<TaskStatus>, inline)]
    pub status: Option<String>,
    pub assignee_id: Option<i32>,
    /// Only tasks due before this date.
    pub due_before: Option<NaiveDate>,
    /// Only tasks past their due date and not done.
    pub overdue: Option<bool>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TaskResponse {
    pub id: i32,
    pub committee_id: i32,
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub assignee_id: Option<i32>,
    pub due_on: Option<NaiveDate>,
    pub position: i32,
    pub meeting_id: Option<i32>,
    pub agenda_item_id: Option<i32>,
    pub created_by: i32,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<task::Model> for TaskResponse {
    fn from(row: task::Model) -> Self {
        Self {
            id: row.id,
            committee_id: row.committee_id,
            title: row.title,
            description: row.description,
            status: row.status,
            priority: row.priority,
            assignee_id: row.assignee_id,
            due_on: row.due_on,
            position: row.position,
            meeting_id: row.meeting_id,
            agenda_item_id: row.agenda_item_id,
            created_by: row.created_by,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    #[schema(min_length = 1, max_length = 10000)]
    pub body: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommentResponse {
    pub id: i32,
    pub task_id: i32,
    pub author_id: i32,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl From<task_comment::Model> for CommentResponse {
    fn from(row: task_comment::Model) -> Self {
        Self {
            id: row.id,
            task_id: row.task_id,
            author_id: row.author_id,
            body: row.body,
            created_at: row.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TaskStatus::*;

    #[test]
    fn a_done_task_can_be_reopened_but_not_blocked() {
        assert!(Todo.can_become(Done));
        assert!(Done.can_become(InProgress));
        assert!(!Done.can_become(Blocked));
        assert!(!Blocked.can_become(Done));
    }
}
