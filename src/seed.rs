//! `dcports seed --demo`: a small, realistic data set so that a new installation shows a living
//! portal. Organizations and ports are the Network's own (see `../shared/reference/`); people
//! are fictional. Safe to run twice: it does nothing when the demo is already there.

use chrono::{TimeZone, Utc};
use entity::{committee, member, port};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::committees::dto::{CommitteeKind, CreateCommitteeRequest};
use crate::directory::dto::{ContactRequest, OrganizationKind, OrganizationRequest};
use crate::documents::dto::{PublicationKind, PublishRequest, SummaryInput};
use crate::documents::upload;
use crate::domain::Role;
use crate::indicators::service::{DefinitionRequest, ValueRequest};
use crate::meetings::dto::{
    AgendaKind, CreateAgendaItemRequest, CreateMeetingRequest, MeetingStatus, UpdateMeetingRequest,
};
use crate::preconditions::IfMatch;
use crate::state::AppState;

const STEERING: &str = "Transitional Steering Committee";

/// Loads the demo data set with `actor` (a secretariat account) as its author.
pub async fn demo(state: &AppState, actor: &member::Model) -> anyhow::Result<bool> {
    let err = |error: crate::error::ApiError| anyhow::anyhow!("{error}");
    if committee::Entity::find()
        .filter(committee::Column::Name.eq(STEERING))
        .one(state.db.conn())
        .await?
        .is_some()
    {
        return Ok(false);
    }
    anyhow::ensure!(
        actor.role == Role::Secretariat.as_str(),
        "the demo is loaded by a secretariat account"
    );
    let current = crate::auth::CurrentMember(actor.clone());

    let mut committees = Vec::new();
    for (name, kind) in [
        (STEERING, CommitteeKind::Steering),
        (
            "Technical Committee on Port Community Systems",
            CommitteeKind::Technical,
        ),
        ("Technical Committee on Logistics Performance", CommitteeKind::Technical),
        (
            "Technical Committee on Digital Trade Facilitation",
            CommitteeKind::Technical,
        ),
        ("Group of Experts", CommitteeKind::Experts),
    ] {
        let request = CreateCommitteeRequest {
            name: name.to_owned(),
            kind,
            description: None,
        };
        committees.push(
            crate::committees::service::create(state, &current, request, None)
                .await
                .map_err(err)?,
        );
    }

    let community_of = |unlocode: &'static str| async move {
        let port = port::Entity::find()
            .filter(port::Column::Unlocode.eq(unlocode))
            .one(state.db.conn())
            .await?;
        Ok::<_, anyhow::Error>(port.map(|p| p.port_community_id))
    };
    let organizations = [
        (
            "Ministerio de Transportes y Comunicaciones",
            OrganizationKind::Ministry,
            Some("PE"),
            None,
            "Directorate of Maritime Transport",
        ),
        (
            "Autoridad Portuaria Nacional",
            OrganizationKind::PortAuthority,
            Some("PE"),
            Some("PECLL"),
            "Head of Port Logistics",
        ),
        (
            "Administración Portuaria Integral de Lázaro Cárdenas",
            OrganizationKind::PortAuthority,
            Some("MX"),
            Some("MXLZC"),
            "Director of Operations",
        ),
        (
            "Comunidad Logística Portuaria de Cartagena",
            OrganizationKind::PortCommunity,
            Some("CO"),
            Some("COCTG"),
            "Coordinator",
        ),
        (
            "Empresa Portuaria San Antonio",
            OrganizationKind::PortAuthority,
            Some("CL"),
            Some("CLSAI"),
            "Manager of Logistics Development",
        ),
        (
            "Port Authority of Jamaica",
            OrganizationKind::PortAuthority,
            Some("JM"),
            Some("JMKIN"),
            "Port Community System Lead",
        ),
        (
            "CAF – development bank of Latin America",
            OrganizationKind::Multilateral,
            None,
            None,
            "LOGRA programme officer",
        ),
        (
            "Sistema Económico Latinoamericano y del Caribe (SELA)",
            OrganizationKind::Secretariat,
            None,
            None,
            "Network coordinator",
        ),
    ];
    for (index, (name, kind, country, unlocode, position)) in organizations.into_iter().enumerate() {
        let port_community_id = match unlocode {
            Some(code) => community_of(code).await?,
            None => None,
        };
        let request = OrganizationRequest {
            name: name.to_owned(),
            kind,
            country_code: country.map(str::to_owned),
            port_community_id,
            website: None,
        };
        let organization = crate::directory::service::save_organization(state, actor.id, None, request)
            .await
            .map_err(err)?;
        let contact = ContactRequest {
            organization_id: organization.id,
            name: format!("Demo Contact {}", index + 1),
            position: Some(position.to_owned()),
            email: Some(format!("contact{}@example.org", index + 1)),
            phone: None,
            public: true,
        };
        crate::directory::service::save_contact(state, actor.id, None, contact)
            .await
            .map_err(err)?;
    }

    let indicators = [
        (
            "vessel_turnaround_hours",
            "Vessel turnaround time",
            "Tiempo de estadía del buque",
            "hours",
            false,
        ),
        (
            "container_dwell_days",
            "Container dwell time (imports)",
            "Tiempo de permanencia de contenedores (importación)",
            "days",
            false,
        ),
        (
            "teu_throughput",
            "Container throughput",
            "Movimiento de contenedores",
            "thousand TEU",
            true,
        ),
    ];
    for (code, name_en, name_es, unit, higher_is_better) in indicators {
        let request = DefinitionRequest {
            code: code.to_owned(),
            name_en: name_en.to_owned(),
            name_es: name_es.to_owned(),
            unit: unit.to_owned(),
            description: None,
            higher_is_better,
        };
        crate::indicators::service::create_definition(state, actor.id, request)
            .await
            .map_err(err)?;
    }
    let ports = port::Entity::find().all(state.db.conn()).await?;
    for (n, port) in ports.iter().enumerate().take(10) {
        for year in 2016..=2018 {
            let k = (n as f64) + f64::from(year - 2016);
            for (code, value) in [
                ("vessel_turnaround_hours", 30.0 + (k * 7.3) % 25.0),
                ("container_dwell_days", 4.0 + (k * 1.7) % 6.0),
                ("teu_throughput", 400.0 + (k * 173.0) % 2600.0),
            ] {
                let value = (value * 10.0).round() / 10.0;
                let submitted = crate::indicators::service::submit(
                    state,
                    actor,
                    code,
                    ValueRequest {
                        port_id: port.id,
                        year,
                        value,
                    },
                )
                .await
                .map_err(err)?;
                crate::indicators::service::review(state, actor.id, submitted.id, IfMatch(None), true)
                    .await
                    .map_err(err)?;
            }
        }
    }

    // A published study, through the real review path.
    let steering = &committees[0];
    let text = "# Port community systems in Latin America and the Caribbean\n\nA 2018 review of the Network's logistic port communities.\n";
    let fields = [("title", "Port community systems: 2018 review")];
    let upload = upload::from_bytes(
        &state.storage,
        text.as_bytes(),
        "port-community-systems-2018.md",
        "text/markdown",
        &fields,
    )
    .await
    .map_err(err)?;
    let document = crate::documents::service::create(state, actor, steering.id, upload)
        .await
        .map_err(err)?;
    let request = PublishRequest {
        kind: PublicationKind::Study,
        summary: SummaryInput::Languages {
            en: Some("How the Network's port communities digitize their procedures.".to_owned()),
            es: Some("Cómo digitalizan sus procedimientos las comunidades portuarias de la Red.".to_owned()),
        },
        country_codes: Some(vec!["CL".into(), "CO".into(), "MX".into(), "PE".into()]),
    };
    let publication = crate::documents::service::request_publication(state, actor, document.id, request)
        .await
        .map_err(err)?;
    crate::documents::service::review(
        state,
        actor.id,
        publication.id,
        crate::documents::service::Review::Approve { version_number: None },
    )
    .await
    .map_err(err)?;

    // The IV Regional Meeting of Logistic Port Communities, public, with its agenda.
    let starts = Utc
        .with_ymd_and_hms(2027, 6, 12, 13, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let request = CreateMeetingRequest {
        title: "V Regional Meeting of Logistic Port Communities".to_owned(),
        description: Some("Annual meeting of the D&C Ports Network.".to_owned()),
        starts_at: starts,
        ends_at: starts + chrono::Duration::hours(3),
        timezone: "America/Port_of_Spain".to_owned(),
        location: Some("Port of Spain, Trinidad and Tobago".to_owned()),
        online_url: None,
        invited_committee_ids: Some(committees[1..].iter().map(|c| c.id).collect()),
        public: Some(true),
    };
    let meeting = crate::meetings::service::create(state, actor, steering.id, request)
        .await
        .map_err(err)?;
    for (title, kind, minutes) in [
        ("Opening and welcome", AgendaKind::Information, 20),
        ("Progress of the port community systems", AgendaKind::Discussion, 60),
        ("Regional benchmark of port indicators", AgendaKind::Discussion, 45),
        ("Work programme of the Network", AgendaKind::Decision, 40),
        ("Closing", AgendaKind::Information, 15),
    ] {
        let item = CreateAgendaItemRequest {
            title: title.to_owned(),
            description: None,
            kind,
            duration_minutes: minutes,
            presenter_id: None,
            parent_id: None,
            document_ids: None,
        };
        crate::meetings::service::add_item(state, actor, meeting.id, item)
            .await
            .map_err(err)?;
    }
    let scheduled = UpdateMeetingRequest {
        title: None,
        description: None,
        starts_at: None,
        ends_at: None,
        timezone: None,
        location: None,
        online_url: None,
        invited_committee_ids: None,
        public: None,
        status: Some(MeetingStatus::Scheduled),
    };
    crate::meetings::service::update(state, actor, meeting.id, IfMatch(None), scheduled)
        .await
        .map_err(err)?;
    crate::meetings::service::publish_agenda(state, actor, meeting.id)
        .await
        .map_err(err)?;
    tracing::info!(data = %json!({ "committees": committees.len(), "document": document.id }), "demo data loaded");
    Ok(true)
}
