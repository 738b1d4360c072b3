use std::collections::{BTreeSet, VecDeque};

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};

use crate::committees::{committee, member_of};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const MARKER: &str = "ZQXPRIVATEMARKER";

async fn organization(app: &TestApp, admin: &str, name: &str, kind: &str, country: &str) -> i64 {
    let (status, body) = app
        .post(
            "/api/admin/directory/organizations",
            Some(admin),
            json!({ "name": name, "kind": kind, "country_code": country }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

async fn contact(app: &TestApp, admin: &str, organization_id: i64, name: &str, public: bool) -> i64 {
    let (status, body) = app
        .post(
            "/api/admin/directory/contacts",
            Some(admin),
            json!({ "organization_id": organization_id, "name": name, "position": "Director", "email": "d@port.org", "public": public }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

async fn public_json(app: &TestApp, path: &str) -> Value {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

/// The demo data set loaded by a secretariat account: its token and its row.
async fn with_demo_data(app: &TestApp) -> (String, entity::member::Model) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let token = app.secretariat("admin@sela.org").await;
    let admin = entity::member::Entity::find()
        .filter(entity::member::Column::Email.eq("admin@sela.org"))
        .one(app.db.conn())
        .await
        .unwrap()
        .unwrap();
    assert!(dcports::seed::demo(&app.state, &admin).await.unwrap());
    (token, admin)
}

/// The items of a public list that fits in one page.
async fn public_items(app: &TestApp, path: &str) -> Value {
    let mut page = public_json(app, path).await;
    assert_eq!(page["next_cursor"], Value::Null, "{path} fits in one page");
    page["items"].take()
}

#[actix_web::test]
async fn reference_data_is_loaded_once_and_served() {
    let app = spawn_app().await;
    let countries = public_items(&app, "/api/public/countries").await;
    assert_eq!(countries.as_array().unwrap().len(), 13);
    assert!(
        countries
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["code"] == "PA" && c["name_es"] == "Panamá")
    );
    let chile = public_items(&app, "/api/public/port-communities?country=cl").await;
    let names: Vec<&str> = chile
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Mejillones", "San Antonio", "Talcahuano", "Valparaíso"]);
    assert_eq!(chile[0]["ports"][0]["unlocode"], "CLMJS");
    // A second start over the same database changes nothing.
    let second = dcports::startup::Application::build(app.settings.clone())
        .await
        .unwrap();
    drop(second);
    assert_eq!(
        public_items(&app, "/api/public/port-communities")
            .await
            .as_array()
            .unwrap()
            .len(),
        15
    );
}

#[actix_web::test]
async fn directory_search_ignores_accents_and_case_and_hides_private_contacts() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let apl = organization(
        &app,
        &admin,
        "Administración Portuaria Integral de Lázaro Cárdenas",
        "port_authority",
        "MX",
    )
    .await;
    let ministry = organization(&app, &admin, "Ministerio de Transportes", "ministry", "PE").await;
    contact(&app, &admin, apl, "José Núñez", true).await;
    contact(&app, &admin, ministry, "Ana Peña", true).await;
    contact(&app, &admin, ministry, "Hidden Person", false).await;

    for q in ["lazaro cardenas", "LÁZARO", "jose nunez", "NÚÑEZ"] {
        let found = public_json(&app, &format!("/api/public/directory?q={}", urlencode(q))).await;
        let names: Vec<&str> = found["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["José Núñez"], "{q}");
    }
    let peru = public_json(&app, "/api/public/directory?country=pe").await;
    let names: Vec<&str> = peru["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ana Peña"], "the private contact never shows");
    let ministries = public_json(&app, "/api/public/directory?kind=ministry").await;
    assert_eq!(ministries["items"][0]["organization"], "Ministerio de Transportes");
    let (status, _) = app
        .call(Method::GET, "/api/public/directory?kind=pirates", None, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Imports `body` into the directory as `token`: the answer's status and body.
async fn import_csv(app: &TestApp, token: &str, body: String) -> (StatusCode, Value) {
    let request = app.client.post(app.url("/api/admin/directory/import"));
    let request = request.bearer_auth(token).header("content-type", "text/csv");
    let response = request.body(body).send().await.unwrap();
    (response.status(), response.json::<Value>().await.unwrap())
}

#[actix_web::test]
async fn the_directory_round_trips_through_csv_and_a_bad_row_imports_nothing() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let csv = "organization,kind,country_code,port_community_id,website,name,position,email,phone,public\n\
               Autoridad Portuaria de Guayaquil,port_authority,EC,,https://apg.gob.ec,María Ruiz,Gerente,maria@apg.gob.ec,+593 4 000,true\n\
               Autoridad Portuaria de Guayaquil,port_authority,EC,,https://apg.gob.ec,Luis Vera,Analista,,,false\n";
    // CSV is said to be CSV: the same rows sent as anything else are not read.
    // CSV is said to be CSV, in UTF-8: a spreadsheet's export in windows-1252 would be read
    // with its accents garbled or refused row by row.
    for content_type in [
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "text/csv; charset=windows-1252",
    ] {
        let response = app
            .client
            .post(app.url("/api/admin/directory/import"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "unsupported_media_type");
        assert!(problem["detail"].as_str().unwrap().contains("text/csv"), "{problem}");
    }
    let import = |body: String| import_csv(&app, &admin, body);
    let export = || async { app.text("/api/admin/directory/export.csv", Some(&admin)).await };
    let (status, report) = import(csv.to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        report,
        json!({ "organizations_created": 1, "organizations_updated": 0, "contacts_created": 2, "contacts_updated": 0 })
    );
    let exported = export().await;
    assert_eq!(exported.lines().count(), 3);
    assert!(exported.contains("María Ruiz,Gerente,maria@apg.gob.ec"));

    // The export, edited and imported back, updates the same contacts: nothing is doubled.
    let (status, report) = import(exported.replace("Gerente", "Gerenta General")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report,
        json!({ "organizations_created": 0, "organizations_updated": 1, "contacts_created": 0, "contacts_updated": 2 })
    );
    let exported = export().await;
    assert_eq!(exported.lines().count(), 3, "{exported}");
    assert!(exported.contains("María Ruiz,Gerenta General,maria@apg.gob.ec"));

    let header = "organization,kind,country_code,port_community_id,website,name,position,email,phone,public";
    // An unknown kind, a `public` that is neither true nor false (it made the contact private,
    // silently), a port community that does not exist (its refusal named no row), and a phone
    // number a spreadsheet turned into a number in scientific notation, its digits lost.
    for bad_row in [
        "Y,castle,EC,,,Bad Row,,,,true",
        "Y,port_authority,EC,,,Bad Row,,,,yes",
        "Y,port_authority,EC,999999,,Bad Row,,,,true",
        "Y,port_authority,EC,,,Bad Row,,,5.93412E+11,true",
        "Y,port_authority,EC,,,Bad Row,,,\"5,93412E+11\",true",
    ] {
        let bad = format!("{header}\nX,port_authority,EC,,,Good Row,,,,true\n{bad_row}\n");
        let response = app
            .client
            .post(app.url("/api/admin/directory/import"))
            .bearer_auth(&admin)
            .header("content-type", "text/csv; charset=utf-8")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["errors"][0]["message"].as_str().unwrap().contains("row 3"),
            "{problem}"
        );
    }
    let (_, contacts) = app.get("/api/admin/directory/contacts", &admin).await;
    assert_eq!(
        contacts["items"].as_array().unwrap().len(),
        2,
        "the good row of a bad file was not kept"
    );

    // A spreadsheet in a Spanish or Portuguese locale saves CSV with semicolons, and Excel's
    // "CSV UTF-8" starts it with a byte-order mark and ends its lines with CRLF: read all the same.
    let spreadsheet = format!(
        "\u{feff}{}\r\nAutoridad Portuaria de Guayaquil;port_authority;EC;;https://apg.gob.ec;Ana Peña;\"Jefa; Operaciones\";ana@apg.gob.ec;;true\r\n",
        header.replace(',', ";")
    );
    let (status, report) = import(spreadsheet).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report,
        json!({ "organizations_created": 0, "organizations_updated": 1, "contacts_created": 1, "contacts_updated": 0 })
    );
    let exported = export().await;
    assert_eq!(exported.lines().count(), 4, "{exported}");
    assert!(
        exported.contains("Ana Peña,Jefa; Operaciones,ana@apg.gob.ec"),
        "{exported}"
    );

    // A cell a spreadsheet would run as a formula goes to programs as it is, and to a
    // spreadsheet after an apostrophe, which shows it as text; a phone number is left alone.
    let formulas = format!(
        "{header}\nAutoridad Portuaria de Guayaquil,port_authority,EC,,https://apg.gob.ec,\"=HYPERLINK(\"\"https://evil.example\"\")\",+A1*2,,-593 4 111,false\n"
    );
    let (status, report) = import(formulas).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let exported = export().await;
    assert!(
        exported.contains("\"=HYPERLINK(\"\"https://evil.example\"\")\",+A1*2,,-593 4 111,false"),
        "{exported}"
    );

    // The export for a spreadsheet is in the dialect a spreadsheet opens with a double click,
    // and imports back unchanged.
    let for_spreadsheet = |reader: &'static str| {
        let url = app.url(&format!("/api/admin/directory/export.csv?for={reader}"));
        let request = app.client.get(url).bearer_auth(&admin);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.bytes().await.unwrap().to_vec())
        }
    };
    let (status, bytes) = for_spreadsheet("spreadsheet").await;
    assert_eq!(status, StatusCode::OK);
    let sheet = String::from_utf8(bytes).unwrap();
    assert!(sheet.starts_with('\u{feff}'), "no byte-order mark: {sheet:?}");
    let rows: Vec<&str> = sheet.trim_start_matches('\u{feff}').split_terminator("\r\n").collect();
    assert_eq!(rows.len(), 5, "{sheet:?}");
    assert_eq!(rows[0], header.replace(',', ";"));
    assert!(
        rows.contains(&"Autoridad Portuaria de Guayaquil;port_authority;EC;;https://apg.gob.ec;\"'=HYPERLINK(\"\"https://evil.example\"\")\";'+A1*2;;-593 4 111;false"),
        "{sheet:?}"
    );
    assert!(
        rows.contains(&"Autoridad Portuaria de Guayaquil;port_authority;EC;;https://apg.gob.ec;Ana Peña;\"Jefa; Operaciones\";ana@apg.gob.ec;;true"),
        "{sheet:?}"
    );
    let (status, report) = import(sheet).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report,
        json!({ "organizations_created": 0, "organizations_updated": 1, "contacts_created": 0, "contacts_updated": 4 })
    );
    assert_eq!(
        export().await,
        exported,
        "a round trip through a spreadsheet changed the directory"
    );
    let (status, bytes) = for_spreadsheet("excel").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let problem: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(problem["code"], "validation_failed", "{problem}");
    assert_eq!(problem["errors"][0]["field"], "for", "{problem}");
}

/// A directory's single-line fields take no control characters, and its website is a web URL
/// stored as sent: a line break the URL parser would drop is refused rather than stored. A row
/// of an import breaking the rule imports nothing.
#[actix_web::test]
async fn directory_fields_refuse_control_characters_and_websites_that_are_not_web_urls() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let organization_id = organization(&app, &admin, "Autoridad Portuaria", "port_authority", "PE").await;
    for website in [
        "https://apn.gob.pe/x\ny",
        "https://apn.gob.pe/\u{1}",
        "https://apn.gob.pe/\tz",
        "ftp://apn.gob.pe",
    ] {
        let body = json!({ "name": "APN", "kind": "port_authority", "country_code": "PE", "website": website });
        let (status, problem) = app.post("/api/admin/directory/organizations", Some(&admin), body).await;
        assert_eq!(
            (status, &problem["errors"][0]["field"]),
            (StatusCode::BAD_REQUEST, &json!("website")),
            "{website:?}: {problem}"
        );
    }
    for (field, value) in [("position", "Jefe\r\nde puerto"), ("phone", "+51\t1 000")] {
        let mut body = json!({ "organization_id": organization_id, "name": "Ana", "public": true });
        body[field] = json!(value);
        let (status, problem) = app.post("/api/admin/directory/contacts", Some(&admin), body).await;
        assert_eq!(
            (status, &problem["errors"][0]["field"]),
            (StatusCode::BAD_REQUEST, &json!(field)),
            "{problem}"
        );
    }
    let csv = "organization,kind,country_code,port_community_id,website,name,position,email,phone,public\n\
               Autoridad Portuaria,port_authority,PE,,,Luis Vera,Analista,,,true\n\
               Autoridad Portuaria,port_authority,PE,,,Ana Díaz,\"Jefa\nde puerto\",,,true\n";
    let (status, problem) = import_csv(&app, &admin, csv.to_owned()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    let (_, organizations) = app.get("/api/admin/directory/organizations", &admin).await;
    assert_eq!(
        organizations["items"].as_array().map(Vec::len),
        Some(1),
        "{organizations}"
    );
    let (_, contacts) = app.get("/api/admin/directory/contacts", &admin).await;
    assert_eq!(contacts["items"], json!([]), "nothing was written");
}

#[actix_web::test]
async fn an_import_brings_organizations_up_to_date_and_their_rows_must_agree() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let import = |body: String| import_csv(&app, &admin, body);
    let organizations = || async {
        let (status, page) = app.get("/api/admin/directory/organizations", &admin).await;
        assert_eq!(status, StatusCode::OK);
        page["items"].as_array().unwrap().clone()
    };
    let csv = "organization,kind,country_code,port_community_id,website,name,position,email,phone,public\n\
               Autoridad Portuaria de Guayaquil,port_authority,EC,,https://apg.gob.ec,María Ruiz,Gerente,,,true\n\
               Autoridad Portuaria de Guayaquil,port_authority,EC,,https://apg.gob.ec,Luis Vera,Analista,,,false\n";
    let (status, report) = import(csv.to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{report}");

    // The export, its website and kind edited in every row of the organization, imported back.
    let exported = app.text("/api/admin/directory/export.csv", Some(&admin)).await;
    let edited = exported
        .replace("https://apg.gob.ec", "https://www.puertodeguayaquil.gob.ec")
        .replace("port_authority", "ministry");
    let (status, report) = import(edited.clone()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report,
        json!({ "organizations_created": 0, "organizations_updated": 1, "contacts_created": 0, "contacts_updated": 2 })
    );
    let after = organizations().await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["website"], "https://www.puertodeguayaquil.gob.ec");
    assert_eq!(after[0]["kind"], "ministry");
    let (_, found) = app.get("/api/public/directory?q=puertodeguayaquil", &admin).await;
    assert_eq!(
        found["items"].as_array().map(Vec::len),
        Some(1),
        "the search text was not brought up to date: {found}"
    );

    // Rows of one organization that disagree: refused, naming both rows, and nothing is written.
    let disagreeing = edited.replacen("https://www.puertodeguayaquil.gob.ec", "https://apg.gob.ec", 1);
    let (status, problem) = import(disagreeing.replace("Gerente", "Gerenta")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["code"], "validation_failed", "{problem}");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("row 3") && message.contains("row 2"), "{problem}");
    assert_eq!(organizations().await, after);
    assert_eq!(app.text("/api/admin/directory/export.csv", Some(&admin)).await, edited);
}

/// Defines the `berth_occupancy` indicator; returns the id of Callao's port.
async fn berth_occupancy_for_callao(app: &TestApp, admin: &str) -> i64 {
    let (status, _) = app
        .post("/api/admin/indicators", Some(admin), json!({ "code": "berth_occupancy", "name_en": "Berth occupancy", "name_es": "Ocupación de muelle", "unit": "%", "higher_is_better": false }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let ports = public_items(app, "/api/public/port-communities?country=PE").await;
    ports[0]["ports"][0]["id"].as_i64().unwrap()
}

/// Submits Callao's `berth_occupancy` for `year`.
async fn submit_berth_occupancy(app: &TestApp, token: &str, port: i64, year: i32, value: f64) -> (StatusCode, Value) {
    let body = json!({ "port_id": port, "year": year, "value": value });
    app.post("/api/indicators/berth_occupancy/values", Some(token), body)
        .await
}

#[actix_web::test]
async fn only_validated_indicator_values_are_public() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let callao = berth_occupancy_for_callao(&app, &admin).await;
    // A member outside Callao's community may not submit for it.
    let c = committee(&app, &admin, "C").await;
    let (_, outsider) = member_of(&app, &admin, c, "m@port.cl", "member").await;
    let (status, _) = app
        .post(
            "/api/indicators/berth_occupancy/values",
            Some(&outsider),
            json!({ "port_id": callao, "year": 2018, "value": 71.5 }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, value) = app
        .post(
            "/api/indicators/berth_occupancy/values",
            Some(&admin),
            json!({ "port_id": callao, "year": 2018, "value": 71.5 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{value}");
    assert_eq!(
        public_items(&app, "/api/public/indicators/berth_occupancy/values").await,
        json!([])
    );
    let (_, pending) = app.get("/api/admin/indicators/values", &admin).await;
    assert_eq!(pending["items"][0]["value"], 71.5);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/indicators/values/{}/validate", value["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let values = public_items(
        &app,
        "/api/public/indicators/berth_occupancy/values?port=PECLL&from_year=2010",
    )
    .await;
    assert_eq!(values[0]["value"], 71.5);
    assert_eq!(values[0]["unlocode"], "PECLL");
    let reversed = "/api/public/indicators/berth_occupancy/values?from_year=2030&to_year=2000";
    let response = app.client.get(app.url(reversed)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["errors"][0]["field"], "to_year");

    // The port's page lists its validated values of every indicator, by indicator code.
    let (status, _) = app
        .post("/api/admin/indicators", Some(&admin), json!({ "code": "average_dwell_time", "name_en": "Average dwell time", "name_es": "Tiempo medio de permanencia", "unit": "days", "higher_is_better": false }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (year, value) in [(2019, 4.5), (2018, 5.0)] {
        let (status, submitted) = app
            .post(
                "/api/indicators/average_dwell_time/values",
                Some(&admin),
                json!({ "port_id": callao, "year": year, "value": value }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{submitted}");
        if year == 2018 {
            let path = format!("/api/admin/indicators/values/{}/validate", submitted["id"]);
            assert_eq!(
                app.call(Method::POST, &path, Some(&admin), None).await.0,
                StatusCode::OK
            );
        }
    }
    let port = public_json(&app, &format!("/api/public/ports/{callao}")).await;
    let listed: Vec<(&str, i64, f64)> = port["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["indicator"].as_str().unwrap(),
                v["year"].as_i64().unwrap(),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("average_dwell_time", 2018, 5.0), ("berth_occupancy", 2018, 71.5)],
        "validated values only, by indicator code: {port}"
    );
    let (_, pending) = app.get("/api/admin/indicators/values", &admin).await;
    let pending: Vec<i64> = pending["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["year"].as_i64().unwrap())
        .collect();
    assert_eq!(pending, [2019], "the one value still waiting for review");

    let chart = app.text("/indicators?code=berth_occupancy&year=2018", None).await;
    assert!(chart.contains("<svg role=\"img\""), "the chart is inline SVG");
    assert!(chart.contains("Callao"));
}

/// A review names the version the reviewer saw: a value its port resubmitted in between is not
/// the one published.
#[actix_web::test]
async fn a_review_of_a_value_resubmitted_since_it_was_read_fails_with_412() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let callao = berth_occupancy_for_callao(&app, &admin).await;
    let submit = |value: f64| submit_berth_occupancy(&app, &admin, callao, 2018, value);
    let (status, first) = submit(71.5).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, pending) = app.get("/api/admin/indicators/values", &admin).await;
    let seen = pending["items"][0]["version"].as_i64().unwrap();
    assert_eq!(seen, first["version"].as_i64().unwrap());
    let (status, second) = submit(99.9).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["id"], first["id"]);
    assert!(second["version"].as_i64().unwrap() > seen);

    let review = |action: &'static str, version: i64| {
        app.client
            .post(app.url(&format!("/api/admin/indicators/values/{}/{action}", first["id"])))
            .bearer_auth(&admin)
            .header("if-match", format!("\"{version}\""))
            .send()
    };
    for action in ["validate", "reject"] {
        let response = review(action, seen).await.unwrap();
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED, "{action}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "precondition_failed");
    }
    assert_eq!(
        public_items(&app, "/api/public/indicators/berth_occupancy/values").await,
        json!([])
    );

    let current = second["version"].as_i64().unwrap();
    let response = review("validate", current).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let validated: Value = response.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", validated["version"]));
    assert!(validated["version"].as_i64().unwrap() > current);
    let values = public_items(&app, "/api/public/indicators/berth_occupancy/values").await;
    assert_eq!(values[0]["value"], 99.9);
}

/// The review queue is a list like the others: pages of `{items, next_cursor}`, oldest first.
#[actix_web::test]
async fn the_review_queue_pages_through_every_waiting_value_oldest_first() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let callao = berth_occupancy_for_callao(&app, &admin).await;
    let mut submitted = Vec::new();
    for year in 2000..2005 {
        let (status, value) = submit_berth_occupancy(&app, &admin, callao, year, 50.0).await;
        assert_eq!(status, StatusCode::CREATED, "{value}");
        submitted.push(value["id"].as_i64().unwrap());
    }
    let (mut seen, mut path) = (Vec::new(), "/api/admin/indicators/values?limit=2".to_owned());
    loop {
        let (status, page) = app.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|v| v["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/admin/indicators/values?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, submitted);
    let (status, problem) = app.get("/api/admin/indicators/values?limit=0", &admin).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("validation_failed"))
    );
}

/// An indicator value is a plausible figure: not 1e308, which the page would print in 309 digits.
#[actix_web::test]
async fn an_indicator_value_beyond_any_ports_figure_is_refused() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let callao = berth_occupancy_for_callao(&app, &admin).await;
    let submit = |value: f64| submit_berth_occupancy(&app, &admin, callao, 2020, value);
    for value in [1e308, -1e16] {
        let (status, problem) = submit(value).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "value");
    }
    assert_eq!(submit(1e15).await.0, StatusCode::CREATED);
}

/// A form field with nothing chosen is empty, not the word for nothing.
#[actix_web::test]
async fn public_forms_show_no_placeholder_for_what_is_not_chosen() {
    let app = spawn_app().await;
    for path in ["/indicators", "/directory", "/publications"] {
        let page = app.text(path, None).await;
        assert!(!page.to_lowercase().contains("value=\"none\""), "{path}: {page}");
    }
}

#[actix_web::test]
async fn public_routes_send_validators_answer_304_and_refuse_writes() {
    let app = spawn_app().await;
    for path in [
        "/api/public/countries",
        "/",
        "/directory",
        "/ports",
        "/publications",
        "/meetings",
        "/indicators",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        assert!(
            response.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age"),
            "{path}"
        );
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        // The tag as a compressing proxy passes it on, weak: `If-None-Match` compares weakly.
        let weak = app
            .client
            .get(app.url(path))
            .header("if-none-match", format!("W/{etag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(weak.status(), StatusCode::NOT_MODIFIED, "W/ {path}");
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let response = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    let (status, _) = app.call(Method::GET, "/api/public/publications/999", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_public_area_is_rate_limited_per_address() {
    let app = spawn_app_with(|settings| {
        settings.public.rate_limit_per_minute = 6;
        settings.public.rate_limit_burst = 5;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(app.client.get(app.url("/api/public/countries")).send().await.unwrap());
    }
    assert!(statuses[..5].iter().all(|r| r.status() == StatusCode::OK));
    let limited = statuses
        .iter()
        .find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .expect("a 429 after the burst");
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(limited.headers()["content-type"], "application/problem+json");
}

#[actix_web::test]
async fn pages_speak_english_and_spanish() {
    let app = spawn_app().await;
    let english = app.text("/", None).await;
    assert!(english.contains("<html lang=\"en\">") && english.contains("Port indicators"));
    let spanish = app.text("/?lang=es", None).await;
    assert!(spanish.contains("<html lang=\"es\">") && spanish.contains("Indicadores portuarios"));
    let negotiated = app
        .client
        .get(app.url("/ports"))
        .header("accept-language", "es-CL,es;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(negotiated.contains("Comunidad portuaria") && negotiated.contains("Valparaíso"));
}

/// A page's bad query parameter is refused like an API's: 400 `validation_failed` naming it.
#[actix_web::test]
async fn a_page_names_the_query_parameter_it_cannot_read() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/meetings?limit=abc")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "validation_failed", "{problem}");
    assert_eq!(problem["errors"][0]["field"], "limit", "{problem}");
}

/// The leak test: private data carrying a marker, everywhere the workspace can hold it; then a
/// crawl of every public route and page, following links and filters. The marker never appears.
#[actix_web::test]
async fn nothing_private_ever_reaches_the_public_area() {
    // The crawl is one client making hundreds of requests: lift the per-address limit.
    let app = spawn_app_with(|settings| settings.public.rate_limit_burst = 100_000).await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, &format!("Committee {MARKER}")).await;
    let (chair_id, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let doc_form = [
        ("title", format!("Doc {MARKER}")),
        ("description", MARKER.to_owned()),
        ("tags", MARKER.to_lowercase()),
    ];
    let fields: Vec<(&str, &str)> = doc_form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, doc) = app
        .upload(
            &format!("/api/committees/{c}/documents"),
            &chair,
            &format!("{MARKER}.txt"),
            MARKER.as_bytes().to_vec(),
            &fields,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Every private thing below must exist, or the crawl proves nothing about it.
    let created = |(status, body): (StatusCode, Value)| {
        assert!(status.is_success(), "{status}: {body}");
        body
    };
    // A publication request that is never approved.
    created(
        app.post(
            &format!("/api/documents/{}/publish", doc["id"]),
            Some(&chair),
            json!({ "kind": "study", "summary": MARKER }),
        )
        .await,
    );
    created(
        app.post(
            &format!("/api/committees/{c}/tasks"),
            Some(&chair),
            json!({ "title": MARKER, "description": MARKER, "assignee_id": chair_id }),
        )
        .await,
    );
    let starts = Utc::now() + Duration::days(10);
    // The private meeting carries the marker in its title and place; the public one, neither.
    let meeting = |title: &str, location: Option<&str>, public: bool| {
        json!({ "title": title, "starts_at": starts, "ends_at": starts + Duration::hours(2),
                "timezone": "UTC", "location": location, "public": public })
    };
    let meetings = format!("/api/committees/{c}/meetings");
    let private_meeting = created(
        app.post(&meetings, Some(&chair), meeting(MARKER, Some(MARKER), false))
            .await,
    );
    created(
        app.post(
            &format!("/api/meetings/{}/agenda", private_meeting["id"]),
            Some(&chair),
            json!({ "title": MARKER, "kind": "decision", "duration_minutes": 10 }),
        )
        .await,
    );
    // A public meeting whose agenda is not published: its items stay private.
    let public_meeting = created(
        app.post(&meetings, Some(&chair), meeting("Open regional meeting", None, true))
            .await,
    );
    created(
        app.post(
            &format!("/api/meetings/{}/agenda", public_meeting["id"]),
            Some(&chair),
            json!({ "title": MARKER, "kind": "information", "duration_minutes": 10 }),
        )
        .await,
    );
    created(
        app.call(
            Method::PATCH,
            &format!("/api/meetings/{}", public_meeting["id"]),
            Some(&chair),
            Some(json!({ "status": "scheduled" })),
        )
        .await,
    );
    let org = organization(&app, &admin, "Public Organization", "ministry", "CL").await;
    contact(&app, &admin, org, &format!("Secret {MARKER}"), false).await;
    contact(&app, &admin, org, "Visible Person", true).await;
    created(app.post("/api/admin/indicators", Some(&admin), json!({ "code": "dwell_time", "name_en": "Dwell time", "name_es": "Tiempo de permanencia", "unit": "days", "higher_is_better": false })).await);
    let ports = public_items(&app, "/api/public/port-communities").await;
    let port_id = ports[0]["ports"][0]["id"].as_i64().unwrap();
    // 4242.4242 stands for an unvalidated value: it must never be shown.
    created(
        app.post(
            "/api/indicators/dwell_time/values",
            Some(&admin),
            json!({ "port_id": port_id, "year": 2019, "value": 4242.4242 }),
        )
        .await,
    );

    let mut queue: VecDeque<String> = [
        "/",
        "/?lang=es",
        "/directory",
        "/ports",
        "/publications",
        "/meetings",
        "/indicators",
        "/api/public/countries",
        "/api/public/port-communities",
        "/api/public/directory",
        "/api/public/publications",
        "/api/public/meetings",
        "/api/public/indicators",
        "/api/public/indicators/dwell_time/values",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for q in [MARKER, &MARKER.to_lowercase(), "a", "e"] {
        queue.push_back(format!("/directory?q={q}"));
        queue.push_back(format!("/api/public/directory?q={q}"));
        queue.push_back(format!("/api/public/publications?q={q}"));
    }
    for code in ["CL", "PE", "MX"] {
        queue.push_back(format!("/api/public/directory?country={code}"));
        queue.push_back(format!("/directory?country={code}&lang=es"));
    }
    for kind in ["study", "project", "public_policy", "report"] {
        queue.push_back(format!("/api/public/publications?kind={kind}"));
    }
    for id in 1..=20 {
        queue.push_back(format!("/api/public/publications/{id}"));
        queue.push_back(format!("/ports/{id}"));
        queue.push_back(format!("/api/public/ports/{id}"));
    }
    queue.push_back("/indicators?code=dwell_time&year=2019".to_owned());
    let mut seen = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) || seen.len() > 400 {
            continue;
        }
        let response = app.client.get(app.url(&path)).send().await.unwrap();
        assert_ne!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the crawl must read every page"
        );
        let mut body = response.text().await.unwrap();
        // The search box shows the visitor's own query back: that is not a leak.
        if let Some(q) = path.split("q=").nth(1).map(|q| q.split('&').next().unwrap_or_default()) {
            body = body.replace(&format!("value=\"{q}\""), "");
        }
        assert!(
            !body.contains(MARKER) && !body.contains(&MARKER.to_lowercase()),
            "{path} leaks the marker"
        );
        assert!(!body.contains("4242.4242"), "{path} shows an unvalidated value");
        for link in body.split("href=\"").skip(1).filter_map(|rest| rest.split('"').next()) {
            let link = link.replace("&amp;", "&");
            if link.starts_with('/') && !link.starts_with("//") {
                queue.push_back(link);
            }
        }
    }
    assert!(seen.len() > 60, "the crawl covered {} pages", seen.len());
    let meetings = public_items(&app, "/api/public/meetings").await;
    assert_eq!(meetings[0]["title"], "Open regional meeting");
    assert_eq!(
        meetings[0]["agenda"],
        Value::Null,
        "an unpublished agenda stays private"
    );
}

#[actix_web::test]
async fn the_demo_data_set_loads_once_and_fills_the_public_area() {
    let app = spawn_app().await;
    let (_, admin) = with_demo_data(&app).await;
    assert!(
        !dcports::seed::demo(&app.state, &admin).await.unwrap(),
        "a second run changes nothing"
    );
    let publications = public_json(&app, "/api/public/publications").await;
    assert_eq!(publications["items"].as_array().unwrap().len(), 1);
    let meetings = public_items(&app, "/api/public/meetings").await;
    assert_eq!(meetings[0]["agenda"].as_array().unwrap().len(), 5);
    let values = public_items(&app, "/api/public/indicators/teu_throughput/values?year=2018").await;
    assert_eq!(values.as_array().unwrap().len(), 10);
    let directory = public_json(&app, "/api/public/directory?limit=200").await;
    assert_eq!(directory["items"].as_array().unwrap().len(), 8);
    let home = app.text("/", None).await;
    for count in [
        "<strong>13</strong>",
        "<strong>15</strong>",
        "<strong>1</strong>",
        "<strong>8</strong>",
    ] {
        assert!(home.contains(count), "the home page counts {count}");
    }
    assert!(home.contains("Port community systems: 2018 review"));
    // Indicator units speak the page's language too.
    let page = |lang: &'static str| {
        let url = app.url(&format!("/indicators?code=container_dwell_days&lang={lang}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(page("en").await.contains("(days)"));
    let spanish = page("es").await;
    assert!(spanish.contains("(días)") && !spanish.contains("(days)"), "{spanish}");
}

#[actix_web::test]
async fn public_answers_are_cached_until_a_write_and_no_longer_than_their_time_to_live() {
    let app = spawn_app_with(|settings| settings.public.cache_ttl_secs = 2).await;
    let admin = app.secretariat("admin@sela.org").await;
    let countries = public_items(&app, "/api/public/countries").await;

    // A change behind the application's back (a `dcports seed` run in another process) is not
    // seen while the cached answer lives, and is seen once it has lived out its time.
    entity::country::ActiveModel {
        code: Set("XX".to_owned()),
        name_en: Set("Cacheland".to_owned()),
        name_es: Set("Cachelandia".to_owned()),
    }
    .insert(app.db.conn())
    .await
    .unwrap();
    assert_eq!(public_items(&app, "/api/public/countries").await, countries);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let refreshed = public_items(&app, "/api/public/countries").await;
    assert!(refreshed.to_string().contains("Cacheland"), "{refreshed}");

    // A write through the API is seen by the very next request.
    let before = public_json(&app, "/api/public/directory").await;
    assert!(!before.to_string().contains("Puerto Caché"));
    let port = organization(&app, &admin, "Puerto Caché", "port_authority", "PE").await;
    contact(&app, &admin, port, "Ana Caché", true).await;
    let after = public_json(&app, "/api/public/directory").await;
    assert!(after.to_string().contains("Puerto Caché"), "{after}");

    // Served from the cache, the validators still work.
    let response = app.client.get(app.url("/api/public/directory")).send().await.unwrap();
    let etag = response.headers()["etag"].clone();
    let response = app
        .client
        .get(app.url("/api/public/directory"))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

/// A value's review moves it once: of validations sent at once one wins, a validated value can
/// be taken off the public area by rejecting it, and a rejected one is not published by a later
/// click (its port submits it anew).
#[actix_web::test]
async fn an_indicator_value_is_reviewed_once_and_a_rejected_one_stays_off_the_public_area() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let (status, _) = app
        .post("/api/admin/indicators", Some(&admin), json!({ "code": "dwell_time", "name_en": "Dwell time", "name_es": "Tiempo de permanencia", "unit": "h", "higher_is_better": false }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let ports = public_items(&app, "/api/public/port-communities?country=PE").await;
    let callao = ports[0]["ports"][0]["id"].as_i64().unwrap();
    let (status, value) = app
        .post(
            "/api/indicators/dwell_time/values",
            Some(&admin),
            json!({ "port_id": callao, "year": 2020, "value": 48.0 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{value}");
    let review = |decision: &'static str| {
        let (app, admin, id) = (&app, &admin, value["id"].clone());
        async move {
            let path = format!("/api/admin/indicators/values/{id}/{decision}");
            app.call(Method::POST, &path, Some(admin), None).await.0
        }
    };
    let statuses = futures_util::future::join_all((0..8).map(|_| review("validate"))).await;
    assert_eq!(statuses.iter().filter(|s| s.is_success()).count(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.is_success() || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );

    let public = || public_items(&app, "/api/public/indicators/dwell_time/values");
    assert_eq!(public().await[0]["value"], 48.0);
    assert_eq!(
        review("reject").await,
        StatusCode::OK,
        "a validated value can be taken back"
    );
    assert_eq!(public().await, json!([]));
    assert_eq!(review("validate").await, StatusCode::CONFLICT);
    assert_eq!(review("reject").await, StatusCode::CONFLICT);
    assert_eq!(public().await, json!([]));
}

/// Every item of a list, page after page of `limit` following `next_cursor`, and how many
/// pages that took.
async fn every_page(app: &TestApp, path: &str, limit: u64) -> (Vec<Value>, usize) {
    let separator = if path.contains('?') { '&' } else { '?' };
    let (mut items, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let url = match &cursor {
            None => format!("{path}{separator}limit={limit}"),
            Some(cursor) => format!("{path}{separator}limit={limit}&cursor={cursor}"),
        };
        let page = public_json(app, &url).await;
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() as u64 <= limit, "{url}");
        items.extend(page_items.iter().cloned());
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, pages),
        }
    }
}

/// API.md: every list answers `{items, next_cursor}` and pages with `?limit=&cursor=`, the
/// public area's reference lists, meetings and indicator values included. Paging gives the
/// same items in the same order as one page, whatever the page size, ties included.
#[actix_web::test]
async fn every_public_list_pages_through_the_same_items_in_the_same_order() {
    let app = spawn_app().await;
    let (token, _) = with_demo_data(&app).await;
    // Two more public meetings starting at the same instant: a tie the cursor must break.
    let (_, committees) = app.get("/api/committees", &token).await;
    let committee = committees["items"][0]["id"].as_i64().unwrap();
    let starts = chrono::Utc::now() + chrono::Duration::days(30);
    for title in ["Tied one", "Tied two"] {
        let (status, meeting) = app
            .post(
                &format!("/api/committees/{committee}/meetings"),
                Some(&token),
                json!({ "title": title, "starts_at": starts, "ends_at": starts + chrono::Duration::hours(1),
                        "timezone": "America/Panama", "public": true }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{meeting}");
        let (status, _) = app
            .call(
                Method::PATCH,
                &format!("/api/meetings/{}", meeting["id"]),
                Some(&token),
                Some(json!({ "status": "scheduled" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    for (path, limit) in [
        ("/api/public/countries", 5),
        ("/api/public/port-communities", 4),
        ("/api/public/port-communities?country=CL", 1),
        ("/api/public/indicators", 1),
        ("/api/public/indicators/teu_throughput/values", 7),
        ("/api/public/meetings", 1),
    ] {
        let separator = if path.contains('?') { '&' } else { '?' };
        let whole = public_items(&app, &format!("{path}{separator}limit=200")).await;
        let whole = whole.as_array().unwrap();
        let (paged, pages) = every_page(&app, path, limit).await;
        assert_eq!(&paged, whole, "{path}");
        assert!(pages > 1, "{path}: {} items in {pages} page(s)", whole.len());
    }

    // Meetings come latest first, and the tie in start by id, latest first too.
    let meetings = public_items(&app, "/api/public/meetings?limit=200").await;
    let keys: Vec<(String, i64)> = meetings
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["starts_at"].as_str().unwrap().to_owned(), m["id"].as_i64().unwrap()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted);
    assert!(keys.windows(2).any(|pair| pair[0].0 == pair[1].0), "a tie was listed");

    // The meetings page shows fifty, and leads to the earlier ones.
    let shown = meetings.as_array().unwrap().len();
    let base = chrono::Utc::now() + chrono::Duration::days(60);
    for n in 0..(51 - shown.min(51)) {
        let starts = base + chrono::Duration::days(n as i64);
        let (status, meeting) = app
            .post(
                &format!("/api/committees/{committee}/meetings"),
                Some(&token),
                json!({ "title": format!("Later meeting {n}"), "starts_at": starts, "ends_at": starts + chrono::Duration::hours(1),
                        "timezone": "UTC", "public": true }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{meeting}");
        let path = format!("/api/meetings/{}", meeting["id"]);
        let (status, _) = app
            .call(
                Method::PATCH,
                &path,
                Some(&token),
                Some(json!({ "status": "scheduled" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let oldest = meetings.as_array().unwrap().last().unwrap()["title"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = app.text("/meetings", None).await;
    assert!(!first.contains(&oldest), "the oldest meeting is on the second page");
    let earlier = first
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|link| link.contains("cursor="))
        .expect("a link to the earlier meetings")
        .replace("&amp;", "&");
    let second = app.text(&earlier, None).await;
    assert!(second.contains(&oldest), "{second}");
    assert!(!second.contains("cursor="), "the second page is the last");

    // A cursor that is not one, or is another list's, and a limit out of range or not a number,
    // are refused on every list, the meetings page included.
    let countries_cursor = public_json(&app, "/api/public/countries?limit=1").await["next_cursor"].clone();
    let countries_cursor = countries_cursor.as_str().unwrap();
    // A values cursor whose port id does not fit an i32.
    let overflowing = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("id:2020/99999999999")
    };
    let mut refused = vec![
        format!("/api/public/meetings?cursor={countries_cursor}"),
        format!("/meetings?cursor={countries_cursor}"),
        format!("/api/public/indicators/teu_throughput/values?cursor={overflowing}"),
    ];
    for list in [
        "/api/public/countries",
        "/api/public/port-communities",
        "/api/public/indicators",
        "/api/public/indicators/teu_throughput/values",
        "/api/public/meetings",
    ] {
        for query in ["cursor=nonsense", "limit=0", "limit=201", "limit=abc"] {
            refused.push(format!("{list}?{query}"));
        }
    }
    for path in refused {
        let response = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let problem: Value = response.json().await.unwrap();
        // `limit=abc` too: a parameter of the wrong type is named like one out of range.
        assert_eq!(problem["code"], "validation_failed", "{path}");
        assert!(
            ["limit", "cursor"].contains(&problem["errors"][0]["field"].as_str().unwrap()),
            "{path}: {problem}"
        );
    }
    let response = app
        .client
        .get(app.url("/api/public/indicators/no_such_code"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// A definition's code is letters, digits and underscores, 1 to 64 of them, kept in lower case;
/// `values` is refused, since `/api/admin/indicators/values` is the review list's path and a
/// PATCH there must not also change an indicator. A refused code writes nothing.
#[actix_web::test]
async fn an_indicator_code_is_checked_and_the_review_lists_name_is_reserved() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let define = |code: String| {
        let body = json!({ "code": code, "name_en": "N", "name_es": "N", "unit": "%", "higher_is_better": true });
        app.post("/api/admin/indicators", Some(&admin), body)
    };
    let too_long = "c".repeat(65);
    for code in [
        "",
        "  ",
        "crane moves",
        "grúa",
        "crane-moves",
        too_long.as_str(),
        "values",
        " VALUES ",
    ] {
        let (status, problem) = define(code.to_owned()).await;
        assert_eq!(
            (status, &problem["errors"][0]["field"]),
            (StatusCode::BAD_REQUEST, &json!("code")),
            "{code:?}: {problem}"
        );
    }
    let (_, definitions) = app.get("/api/admin/indicators", &admin).await;
    assert_eq!(definitions["items"], json!([]), "nothing was written");

    let (status, defined) = define(format!(" {} ", "C".repeat(64))).await;
    assert_eq!(
        (status, &defined["code"]),
        (StatusCode::CREATED, &json!("c".repeat(64)))
    );
    let (status, defined) = define("Values_2024".to_owned()).await;
    assert_eq!((status, &defined["code"]), (StatusCode::CREATED, &json!("values_2024")));
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/admin/indicators/values",
            Some(&admin),
            Some(json!({ "unit": "t" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The secretariat lists the indicator definitions and changes one (not its code); the public
/// area shows the change at once, and the `public` channel hears of definitions as they come.
#[actix_web::test]
async fn the_secretariat_lists_and_changes_definitions_and_the_public_channel_hears_of_them() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, member) = member_of(&app, &admin, c, "m@port.pe", "member").await;
    let (mut public, _) = crate::ws::WsClient::authenticated(&app, &member).await;
    public.subscribe("public", None).await;
    for (code, name) in [("crane_moves", "Crane moves"), ("berth_occupancy", "Berth occupancy")] {
        let (status, body) = app
            .post(
                "/api/admin/indicators",
                Some(&admin),
                json!({ "code": code, "name_en": name, "name_es": name, "unit": "%", "higher_is_better": true }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let event = public.next_event().await;
        assert_eq!(
            (&event["kind"], &event["data"]["code"]),
            (&json!("indicator.defined"), &json!(code))
        );
        assert_eq!(event["actor_id"], Value::Null);
    }

    let path = "/api/admin/indicators/crane_moves";
    let change = json!({ "name_en": "Crane moves per hour", "unit": "moves/h" });
    let (status, _) = app.call(Method::PATCH, path, Some(&member), Some(change.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, changed) = app.call(Method::PATCH, path, Some(&admin), Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (&changed["name_en"], &changed["unit"], &changed["name_es"]),
        (&json!("Crane moves per hour"), &json!("moves/h"), &json!("Crane moves"))
    );
    let event = public.next_event().await;
    assert_eq!(
        (&event["kind"], &event["data"]),
        (&json!("indicator.updated"), &changed)
    );
    assert_eq!(public_json(&app, "/api/public/indicators/crane_moves").await, changed);

    let (status, problem) = app
        .call(Method::PATCH, path, Some(&admin), Some(json!({ "code": "renamed" })))
        .await;
    assert_eq!(
        (status, &problem["errors"][0]["field"]),
        (StatusCode::BAD_REQUEST, &json!("code"))
    );
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/admin/indicators/no_such_code",
            Some(&admin),
            Some(json!({ "unit": "t" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An empty change answers the definition as it is, and tells nobody anything.
    let (status, same) = app.call(Method::PATCH, path, Some(&admin), Some(json!({}))).await;
    assert_eq!((status, &same), (StatusCode::OK, &changed));
    let (status, _) = app
        .call(
            Method::PATCH,
            path,
            Some(&admin),
            Some(json!({ "description": "Moves per crane-hour" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let next = public.next_event().await;
    assert_eq!(next["data"]["description"], "Moves per crane-hour", "{next}");

    let (status, page) = app.get("/api/admin/indicators?limit=1", &admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["code"], "crane_moves");
    let (_, next) = app
        .get(
            &format!(
                "/api/admin/indicators?limit=1&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert_eq!(
        (&next["items"][0]["code"], &next["next_cursor"]),
        (&json!("berth_occupancy"), &Value::Null)
    );
}

/// A validated value leaves the public area when its port corrects it (it waits for validation
/// again) or the secretariat takes it back; `public` hears of both, as it heard it arrive.
/// Submissions of one new value at once end as one value, never a server error.
#[actix_web::test]
async fn the_public_channel_hears_a_validated_value_leave_and_racing_submissions_make_one_value() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let callao = berth_occupancy_for_callao(&app, &admin).await;
    let statuses = futures_util::future::join_all(
        (0..8).map(|n| submit_berth_occupancy(&app, &admin, callao, 2021, 60.0 + f64::from(n))),
    )
    .await;
    assert!(
        statuses
            .iter()
            .all(|(status, _)| status.is_success() || *status == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let (_, pending) = app.get("/api/admin/indicators/values", &admin).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1, "{pending}");

    let c = committee(&app, &admin, "C").await;
    let (_, member) = member_of(&app, &admin, c, "m@port.pe", "member").await;
    let (mut public, _) = crate::ws::WsClient::authenticated(&app, &member).await;
    public.subscribe("public", None).await;
    let id = pending["items"][0]["id"].clone();
    let review = async |decision: &str| {
        let path = format!("/api/admin/indicators/values/{id}/{decision}");
        let (status, body) = app.call(Method::POST, &path, Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    };
    let values = || public_items(&app, "/api/public/indicators/berth_occupancy/values");
    let withdrawn = json!({ "indicator": "berth_occupancy", "port_id": callao, "year": 2021 });

    review("validate").await;
    assert_eq!(public.next_event().await["kind"], "indicator.validated");
    let (status, body) = submit_berth_occupancy(&app, &admin, callao, 2021, 58.5).await;
    assert!(status.is_success(), "{body}");
    assert_eq!(values().await, json!([]), "the correction waits for validation");
    let event = public.next_event().await;
    assert_eq!(
        (&event["kind"], &event["data"]),
        (&json!("indicator.withdrawn"), &withdrawn)
    );

    review("validate").await;
    assert_eq!(public.next_event().await["data"]["value"], 58.5);
    review("reject").await;
    assert_eq!(values().await, json!([]));
    let event = public.next_event().await;
    assert_eq!(
        (&event["kind"], &event["data"]),
        (&json!("indicator.withdrawn"), &withdrawn)
    );
    assert_eq!(event["actor_id"], Value::Null);
}

/// A submitted value answers where it will be published; a definition's description has the
/// same bound when created as when changed.
#[actix_web::test]
async fn a_submitted_value_says_where_it_is_published_and_descriptions_are_bounded() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let callao = berth_occupancy_for_callao(&app, &admin).await;
    let response = app
        .client
        .post(app.url("/api/indicators/berth_occupancy/values"))
        .bearer_auth(&admin)
        .json(&json!({ "port_id": callao, "year": 2021, "value": 64.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let value: Value = response.json().await.unwrap();
    app.call(
        Method::POST,
        &format!("/api/admin/indicators/values/{}/validate", value["id"]),
        Some(&admin),
        None,
    )
    .await;
    let published = public_items(&app, &location).await;
    assert_eq!(
        (published.as_array().map(Vec::len), published[0]["id"].clone()),
        (Some(1), value["id"].clone()),
        "{location}"
    );

    let too_long = "d".repeat(dcports::domain::LONG_TEXT_MAX + 1);
    let (status, body) = app
        .post("/api/admin/indicators", Some(&admin), json!({ "code": "crane_moves", "name_en": "Crane moves", "name_es": "Movimientos de grúa", "unit": "moves/h", "higher_is_better": true, "description": too_long }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "description");
    let (status, _) = app.get("/api/public/indicators/crane_moves", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written");
}
