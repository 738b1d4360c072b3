//! The OpenAPI document, generated from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::{
    admin, auth, committees, directory, documents, error, events, indicators, meetings, pagination, public, startup,
    tasks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "dcports", description = "The API of the D&C Ports Network portal (SELA)."),
    paths(
        startup::healthz,
        startup::readyz,
        auth::routes::login,
        auth::routes::refresh,
        auth::routes::logout,
        auth::routes::accept_invitation,
        auth::routes::forgot_password,
        auth::routes::reset_password,
        auth::routes::get_me,
        auth::routes::update_me,
        admin::routes::create_member,
        admin::routes::list_members,
        admin::routes::get_member,
        admin::routes::update_member,
        admin::routes::resend_invitation,
        admin::routes::send_password_reset,
        admin::routes::list_audit,
        committees::routes::list_committees,
        committees::routes::get_committee,
        committees::routes::create_committee,
        committees::routes::update_committee,
        committees::routes::put_membership,
        committees::routes::delete_membership,
        events::routes::list_events,
        documents::routes::list_documents,
        documents::routes::create_document,
        documents::routes::get_document,
        documents::routes::download_document,
        documents::routes::add_version,
        documents::routes::update_document,
        documents::routes::delete_document,
        documents::routes::share_document,
        documents::routes::unshare_document,
        documents::routes::request_publication,
        documents::routes::list_publications,
        documents::routes::get_publication,
        documents::routes::approve_publication,
        documents::routes::reject_publication,
        documents::routes::withdraw_publication,
        tasks::routes::list_tasks,
        tasks::routes::create_task,
        tasks::routes::get_task,
        tasks::routes::update_task,
        tasks::routes::delete_task,
        tasks::routes::list_comments,
        tasks::routes::get_comment,
        tasks::routes::create_comment,
        meetings::routes::list_meetings,
        meetings::routes::create_meeting,
        meetings::routes::get_meeting,
        meetings::routes::update_meeting,
        meetings::routes::get_agenda,
        meetings::routes::get_agenda_item,
        meetings::routes::add_agenda_item,
        meetings::routes::update_agenda_item,
        meetings::routes::delete_agenda_item,
        meetings::routes::reorder_agenda,
        meetings::routes::finalize_agenda,
        meetings::routes::publish_agenda,
        meetings::routes::get_live,
        meetings::routes::command_live,
        meetings::routes::rsvp,
        meetings::routes::record_presence,
        meetings::routes::add_action_item,
        meetings::routes::get_minutes,
        meetings::routes::file_minutes,
        meetings::routes::meeting_calendar,
        meetings::routes::personal_calendar,
        meetings::routes::create_calendar_token,
        meetings::routes::revoke_calendar_token,
        public::routes::list_publications,
        public::routes::get_publication,
        public::routes::download_publication,
        public::routes::list_countries,
        public::routes::list_port_communities,
        public::routes::get_port,
        public::routes::directory,
        public::routes::public_meetings,
        public::routes::list_indicators,
        public::routes::get_indicator,
        public::routes::indicator_values,
        directory::routes::list_organizations,
        directory::routes::create_organization,
        directory::routes::get_organization,
        directory::routes::update_organization,
        directory::routes::delete_organization,
        directory::routes::list_contacts,
        directory::routes::create_contact,
        directory::routes::get_contact,
        directory::routes::update_contact,
        directory::routes::delete_contact,
        directory::routes::export_directory,
        directory::routes::import_directory,
        indicators::routes::submit_value,
        indicators::routes::create_definition,
        indicators::routes::list_definitions,
        indicators::routes::update_definition,
        indicators::routes::list_values_for_review,
        indicators::routes::validate_value,
        indicators::routes::reject_value,
    ),
    components(schemas(error::Problem, error::FieldError, pagination::Paginated<auth::dto::MemberResponse>)),
    modifiers(&BearerAuth, &ProblemResponses)
)]
pub struct ApiDoc;

/// Error responses as they are sent, `application/problem+json` (the handlers' annotations name
/// the `Problem` schema, which utoipa files under `application/json`); and the refusals every
/// body and every query can meet, on each operation that takes one: 400 (malformed, or failing
/// validation) and, for a body, 415 (not of the documented type).
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let takes_query = operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|parameter| parameter.parameter_in == ParameterIn::Query);
                let responses = &mut operation.responses.responses;
                for (status, response) in responses.iter_mut() {
                    if let (true, RefOr::T(response)) = (status.starts_with(['4', '5']), response)
                        && let Some(content) = response.content.shift_remove("application/json")
                    {
                        response.content.insert("application/problem+json".to_owned(), content);
                    }
                }
                if operation.request_body.is_some() || takes_query {
                    responses
                        .entry("400".to_owned())
                        .or_insert_with(|| problem("The request is malformed or fails validation"));
                }
                if operation.request_body.is_some() {
                    responses
                        .entry("415".to_owned())
                        .or_insert_with(|| problem("The body is not of the documented media type"));
                }
            }
        }
    }
}

fn problem(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", content)
        .build()
        .into()
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
