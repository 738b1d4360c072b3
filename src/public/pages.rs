//! The public web pages, rendered on the server in English and Spanish (`?lang=` or
//! `Accept-Language`), with no script and nothing loaded from elsewhere.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono_tz::Tz;
use minijinja::{Environment, Value, context};
use serde::Deserialize;

use super::data;
use crate::directory::dto::{DirectoryFilter, OrganizationKind};
use crate::error::{ApiError, ApiResult};
use crate::indicators::service::{self as indicators, ValueFilter, ValueResponse, ValueStatus};
use crate::input::Query;
use crate::meetings::service::span_in_zone;
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(home)
        .service(directory)
        .service(ports)
        .service(port)
        .service(publications)
        .service(meetings)
        .service(indicators_page);
}

/// Whether `path` is one of the public pages (the rest of the site is not theirs to answer).
pub fn is_page(path: &str) -> bool {
    matches!(
        path,
        "/" | "/directory" | "/ports" | "/publications" | "/meetings" | "/indicators"
    ) || path
        .strip_prefix("/ports/")
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Pages may use inline styles and nothing else; forms post back to us only.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("home.html", include_str!("templates/home.html")),
            ("directory.html", include_str!("templates/directory.html")),
            ("ports.html", include_str!("templates/ports.html")),
            ("port.html", include_str!("templates/port.html")),
            ("publications.html", include_str!("templates/publications.html")),
            ("meetings.html", include_str!("templates/meetings.html")),
            ("indicators.html", include_str!("templates/indicators.html")),
        ] {
            // The templates ship inside the binary; one that does not parse is a build defect.
            if let Err(error) = env.add_template(name, source) {
                tracing::error!(template = name, error = %error, "template does not parse");
            }
        }
        env
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Es,
}

impl Lang {
    fn of(request: &HttpRequest) -> Lang {
        let query = request.query_string();
        let explicit = query.split('&').find_map(|pair| pair.strip_prefix("lang="));
        match explicit {
            Some("es") => return Lang::Es,
            Some("en") => return Lang::En,
            _ => {}
        }
        let accept = request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let first = accept.split(',').next().unwrap_or_default().trim().to_ascii_lowercase();
        if first.starts_with("es") { Lang::Es } else { Lang::En }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    fn other(self) -> &'static str {
        match self {
            Lang::En => "es",
            Lang::Es => "en",
        }
    }
}

/// Every text of the pages, in both languages.
const TEXTS: &[(&str, &str, &str)] = &[
    ("site", "D&C Ports Network", "Red de Puertos D&C"),
    ("switch_language", "Español", "English"),
    ("main_navigation", "Main navigation", "Navegación principal"),
    ("directory", "Directory", "Directorio"),
    ("ports", "Ports", "Puertos"),
    ("port", "Port", "Puerto"),
    ("publications", "Publications", "Publicaciones"),
    ("meetings", "Regional meetings", "Reuniones regionales"),
    ("indicators", "Port indicators", "Indicadores portuarios"),
    ("indicator", "Indicator", "Indicador"),
    (
        "footer",
        "Latin American and Caribbean Network of Digital and Collaborative Ports · SELA, technical secretariat",
        "Red de Puertos Digitales y Colaborativos de América Latina y el Caribe · SELA, secretaría técnica",
    ),
    (
        "home_title",
        "Digital and collaborative ports of Latin America and the Caribbean",
        "Puertos digitales y colaborativos de América Latina y el Caribe",
    ),
    (
        "home_intro",
        "The Network brings together port communities, ministries and port authorities of the region. Consult its directory, studies and port indicators.",
        "La Red reúne a comunidades logístico-portuarias, ministerios y autoridades portuarias de la región. Consulte su directorio, estudios e indicadores portuarios.",
    ),
    ("countries", "Countries", "Países"),
    ("country", "Country", "País"),
    ("port_communities", "Port communities", "Comunidades portuarias"),
    ("port_community", "Port community", "Comunidad portuaria"),
    ("contacts", "Contacts", "Contactos"),
    ("contact", "Contact", "Contacto"),
    ("latest_publications", "Latest publications", "Últimas publicaciones"),
    ("nothing_yet", "Nothing published yet.", "Aún no hay publicaciones."),
    ("search", "Search", "Buscar"),
    ("search_button", "Search", "Buscar"),
    ("all", "All", "Todos"),
    ("kind", "Kind", "Tipo"),
    ("results", "results", "resultados"),
    ("no_results", "No results.", "Sin resultados."),
    ("name", "Name", "Nombre"),
    ("organization", "Organization", "Organización"),
    ("status", "Status", "Estado"),
    ("title", "Title", "Título"),
    ("published", "Published", "Publicado"),
    ("agenda", "Agenda", "Orden del día"),
    ("earlier", "Earlier meetings", "Reuniones anteriores"),
    (
        "earlier_publications",
        "Earlier publications",
        "Publicaciones anteriores",
    ),
    ("year", "Year", "Año"),
    ("value", "Value", "Valor"),
    ("compare", "Compare", "Comparar"),
    ("status_formalized", "Formalized", "Formalizada"),
    ("status_in_formation", "In formation", "En formación"),
    ("kind_study", "Study", "Estudio"),
    ("kind_project", "Project", "Proyecto"),
    ("kind_public_policy", "Public policy", "Política pública"),
    ("kind_report", "Report", "Informe"),
    ("org_ministry", "Ministry", "Ministerio"),
    ("org_port_authority", "Port authority", "Autoridad portuaria"),
    ("org_port_community", "Port community", "Comunidad portuaria"),
    ("org_customs", "Customs", "Aduanas"),
    ("org_private", "Private sector", "Sector privado"),
    ("org_academia", "Academia", "Academia"),
    ("org_multilateral", "Multilateral", "Multilateral"),
    ("org_secretariat", "Secretariat", "Secretaría"),
];

/// The units port indicators are given in, in Spanish. Units are free text entered in English by
/// the secretariat; one not listed here shows as entered.
const UNITS_ES: &[(&str, &str)] = &[
    ("days", "días"),
    ("hours", "horas"),
    ("minutes", "minutos"),
    ("thousand TEU", "miles de TEU"),
    ("tonnes", "toneladas"),
    ("thousand tonnes", "miles de toneladas"),
    ("million tonnes", "millones de toneladas"),
    ("vessels", "buques"),
    ("calls", "escalas"),
    ("percent", "por ciento"),
];

fn unit_label(unit: &str, lang: Lang) -> &str {
    match lang {
        Lang::En => unit,
        Lang::Es => UNITS_ES
            .iter()
            .find(|(en, _)| en.eq_ignore_ascii_case(unit.trim()))
            .map_or(unit, |(_, es)| es),
    }
}

fn texts(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    TEXTS
        .iter()
        .map(|(key, en, es)| (*key, if lang == Lang::En { *en } else { *es }))
        .collect()
}

fn render(request: &HttpRequest, template: &str, title_key: &str, extra: Value) -> ApiResult<HttpResponse> {
    let lang = Lang::of(request);
    let t = texts(lang);
    let title = t.get(title_key).copied().unwrap_or(title_key);
    let base = context! { lang => lang.code(), other_lang => lang.other(), t => t, title => title };
    let html = environment()
        .get_template(template)
        .and_then(|template| template.render(context! { ..base, ..extra }))
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("rendering {template}: {error:#}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
        .insert_header((header::VARY, "Accept-Language"))
        .body(html))
}

fn country_names(countries: &[data::CountryResponse], lang: Lang) -> Vec<Value> {
    countries
        .iter()
        .map(|c| context! { code => c.code, name => if lang == Lang::En { &c.name_en } else { &c.name_es } })
        .collect()
}

#[get("/")]
async fn home(state: web::Data<AppState>, request: HttpRequest) -> ApiResult<HttpResponse> {
    let conn = state.db.conn();
    let countries = data::countries(conn).await?;
    let communities = data::port_communities(conn, None).await?;
    let (contacts, published) = data::public_counts(conn).await?;
    let newest = Page { limit: 5, after: None };
    let latest: Vec<Value> = data::approved_publications(conn, &Default::default(), newest)
        .await?
        .items
        .iter()
        .map(|p| context! { id => p.id, title => p.title, kind => p.kind })
        .collect();
    let counts = context! { countries => countries.len(), communities => communities.len(), publications => published, contacts => contacts };
    render(
        &request,
        "home.html",
        "site",
        context! { counts => counts, publications => latest },
    )
}

#[derive(Deserialize)]
struct DirectoryQuery {
    q: Option<String>,
    country: Option<String>,
    kind: Option<String>,
}

#[get("/directory")]
async fn directory(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: Query<DirectoryQuery>,
) -> ApiResult<HttpResponse> {
    let lang = Lang::of(&request);
    let query = query.into_inner();
    let blank = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    let filter = DirectoryFilter {
        q: blank(query.q.clone()),
        country: blank(query.country.clone()),
        kind: blank(query.kind.clone()),
        port_community: None,
    };
    let page = PageQuery {
        limit: Some(200),
        cursor: None,
    }
    .page()?;
    let entries = crate::directory::service::public_directory(state.db.conn(), &filter, page).await?;
    let countries = data::countries(state.db.conn()).await?;
    let kinds: Vec<&str> = [
        OrganizationKind::Ministry,
        OrganizationKind::PortAuthority,
        OrganizationKind::PortCommunity,
        OrganizationKind::Customs,
        OrganizationKind::Private,
        OrganizationKind::Academia,
        OrganizationKind::Multilateral,
        OrganizationKind::Secretariat,
    ]
    .iter()
    .map(|k| k.as_str())
    .collect();
    render(
        &request,
        "directory.html",
        "directory",
        context! {
            entries => entries, countries => country_names(&countries, lang), kinds => kinds,
            q => query.q.unwrap_or_default(), country => query.country.unwrap_or_default(), kind => query.kind.unwrap_or_default(),
        },
    )
}

#[get("/ports")]
async fn ports(state: web::Data<AppState>, request: HttpRequest) -> ApiResult<HttpResponse> {
    let communities = data::port_communities(state.db.conn(), None).await?;
    render(&request, "ports.html", "ports", context! { communities => communities })
}

#[get("/ports/{id}")]
async fn port(state: web::Data<AppState>, request: HttpRequest, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let lang = Lang::of(&request);
    let port = data::port(state.db.conn(), *id).await?;
    let names = indicator_names(&state, lang).await?;
    let title = port.name.clone();
    let mut response = render(&request, "port.html", &title, context! { port => port, names => names })?;
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=60"),
    );
    Ok(response)
}

async fn indicator_names(state: &AppState, lang: Lang) -> ApiResult<BTreeMap<String, String>> {
    Ok(indicators::definitions(state.db.conn())
        .await?
        .into_iter()
        .map(|d| (d.code, if lang == Lang::En { d.name_en } else { d.name_es }))
        .collect())
}

/// The approved publications, newest first, a page at a time ("Earlier publications" leads on).
#[get("/publications")]
async fn publications(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let lang = Lang::of(&request);
    let listed = data::approved_publications(state.db.conn(), &Default::default(), query.page()?).await?;
    // A cursor is URL-safe base64: it goes into the link as it is.
    let earlier = listed.next_cursor;
    let rows: Vec<Value> = listed
        .items
        .into_iter()
        .map(|p| {
            let countries: Vec<String> = serde_json::from_value(p.country_codes).unwrap_or_default();
            let summary = if lang == Lang::Es && !p.summary_es.is_empty() {
                p.summary_es
            } else {
                p.summary_en
            };
            context! {
                id => p.id, title => p.title, kind => p.kind, summary => summary, countries => countries.join(", "),
                published => p.published_at.map(|at| at.format("%Y-%m-%d").to_string()).unwrap_or_default(),
            }
        })
        .collect();
    render(
        &request,
        "publications.html",
        "publications",
        context! { publications => rows, earlier => earlier },
    )
}

/// The public meetings, latest first, a page at a time ("Earlier meetings" leads on).
#[get("/meetings")]
async fn meetings(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = query.page_by::<data::MeetingKey>()?;
    let listed = data::public_meetings(state.db.conn(), page).await?;
    // A cursor is URL-safe base64: it goes into the link as it is.
    let earlier = listed.next_cursor;
    let rows: Vec<Value> = listed
        .items
        .into_iter()
        .map(|m| {
            let tz: Tz = m.timezone.parse().unwrap_or(Tz::UTC);
            let agenda: Option<Vec<Value>> = m.agenda.map(|items| {
                items
                    .into_iter()
                    .map(|i| context! { title => i.title, duration_minutes => i.duration_minutes, time => i.starts_at.with_timezone(&tz).format("%H:%M").to_string() })
                    .collect()
            });
            context! {
                title => m.title, location => m.location, agenda => agenda,
                when => span_in_zone(m.starts_at, m.ends_at, tz),
            }
        })
        .collect();
    render(
        &request,
        "meetings.html",
        "meetings",
        context! { meetings => rows, earlier => earlier },
    )
}

#[derive(Deserialize)]
struct IndicatorQuery {
    code: Option<String>,
    year: Option<i32>,
}

#[get("/indicators")]
async fn indicators_page(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: Query<IndicatorQuery>,
) -> ApiResult<HttpResponse> {
    let lang = Lang::of(&request);
    let definitions = indicators::definitions(state.db.conn()).await?;
    let code = query
        .code
        .clone()
        .or_else(|| definitions.first().map(|d| d.code.clone()));
    let (mut values, mut year, mut unit, mut name) = (Vec::new(), query.year, String::new(), String::new());
    if let Some(definition) = code
        .as_ref()
        .and_then(|code| definitions.iter().find(|d| &d.code == code))
    {
        let conn = state.db.conn();
        year = match year {
            Some(year) => Some(year),
            None => indicators::latest_year(conn, &definition.code, ValueStatus::Validated).await?,
        };
        if let Some(year) = year {
            // One year holds one value per port: fewer than a page.
            let filter = ValueFilter {
                year: Some(year),
                ..ValueFilter::default()
            };
            let every_port = crate::pagination::Page {
                limit: crate::pagination::MAX_LIMIT,
                after: None,
            };
            values = indicators::values(conn, &definition.code, ValueStatus::Validated, &filter, every_port)
                .await?
                .items;
        }
        unit = unit_label(&definition.unit, lang).to_owned();
        name = if lang == Lang::En {
            definition.name_en.clone()
        } else {
            definition.name_es.clone()
        };
    }
    let chart = (!values.is_empty()).then(|| bar_chart(&name, &unit, &values));
    let options: Vec<Value> = definitions
        .iter()
        .map(|d| context! { code => d.code, name => if lang == Lang::En { &d.name_en } else { &d.name_es } })
        .collect();
    let caption = format!("{name} ({unit}), {}", year.map(|y| y.to_string()).unwrap_or_default());
    render(
        &request,
        "indicators.html",
        "indicators",
        context! { definitions => options, code => code, year => year, values => values, chart => chart, caption => caption },
    )
}

/// A horizontal bar chart as inline SVG: readable without any script.
pub fn bar_chart(title: &str, unit: &str, values: &[ValueResponse]) -> String {
    let max = values
        .iter()
        .map(|v| v.value)
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let (label_width, bar_width, row) = (170.0, 360.0, 28.0);
    let height = row * values.len() as f64 + 10.0;
    let mut svg = format!(
        "<svg role=\"img\" aria-labelledby=\"chart-title\" viewBox=\"0 0 {} {height}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\"><title id=\"chart-title\">{}</title>",
        label_width + bar_width + 90.0,
        escape(title)
    );
    for (index, value) in values.iter().enumerate() {
        let y = index as f64 * row + 5.0;
        let width = (value.value.max(0.0) / max) * bar_width;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{label_width}\" y=\"{y}\" width=\"{width:.1}\" height=\"{}\" fill=\"#0b5394\"><title>{}: {} {}</title></rect><text x=\"{}\" y=\"{}\">{} {}</text>",
            label_width - 8.0,
            y + 16.0,
            escape(&value.port),
            row - 8.0,
            escape(&value.port),
            value.value,
            escape(unit),
            label_width + width + 6.0,
            y + 16.0,
            value.value,
            escape(unit),
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
