//! The public pages in a real browser: Debian's headless Chromium renders each page a visitor
//! walks through (home, Spanish, directory search, a port, the indicators chart), and saves a
//! screenshot of each under `target/screenshots/`.
//!
//! It needs `/usr/bin/chromium` (or `CHROMIUM`), which `.ci/run` installs; run it with
//! `cargo test --test browser -- --ignored`.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../api/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use std::path::{Path, PathBuf};
use std::process::Command;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use helpers::spawn_app_with;

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

fn run_chromium(profile: &Path, extra: &[String], url: &str) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {} ({error}); install Debian's chromium", chromium()));
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Renders `url` in the browser, saves a screenshot as `name.png`, and returns the DOM as rendered.
fn visit(profile: &Path, shots: &Path, name: &str, url: &str) -> String {
    let shot = shots.join(format!("{name}.png"));
    run_chromium(
        profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1100".to_owned(),
        ],
        url,
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 5_000,
        "the screenshot {} looks empty ({size} bytes)",
        shot.display()
    );
    run_chromium(profile, &["--dump-dom".to_owned()], url)
}

/// The first `href` in `dom` that starts with `prefix`.
fn link(dom: &str, prefix: &str) -> String {
    dom.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.starts_with(prefix))
        .unwrap_or_else(|| panic!("no link starting with {prefix}"))
        .replace("&amp;", "&")
}

#[actix_web::test]
#[ignore = "needs Debian's chromium; .ci/run installs it and runs this test with --ignored"]
async fn a_visitor_walks_through_the_public_pages_in_a_real_browser() {
    let app = spawn_app_with(|settings| settings.public.rate_limit_burst = 10_000).await;
    app.secretariat("admin@sela.org").await;
    let admin = entity::member::Entity::find()
        .filter(entity::member::Column::Email.eq("admin@sela.org"))
        .one(app.db.conn())
        .await
        .unwrap()
        .unwrap();
    assert!(dcports::seed::demo(&app.state, &admin).await.unwrap());

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();

    let home = visit(profile.path(), &shots, "1-home", &app.url("/"));
    assert!(
        home.contains("Digital and collaborative ports"),
        "the home page renders in English"
    );
    let spanish = link(&home, "?lang=es");
    let home_es = visit(profile.path(), &shots, "2-home-es", &app.url(&format!("/{spanish}")));
    assert!(
        home_es.contains("Puertos digitales y colaborativos"),
        "the switch leads to Spanish"
    );
    assert!(
        home_es.contains("Port community systems: 2018 review"),
        "the latest publication is listed"
    );

    // The directory's search form submits by GET: this is the URL it produces.
    let directory = link(&home_es, "/directory");
    let results = visit(
        profile.path(),
        &shots,
        "3-directory-search",
        &app.url(&format!("{directory}&q=lazaro+cardenas")),
    );
    assert!(
        results.contains("Administración Portuaria Integral de Lázaro Cárdenas"),
        "accent-free search finds it"
    );
    assert!(results.contains("Buscar"), "still in Spanish");

    let ports = visit(profile.path(), &shots, "4-ports", &app.url(&link(&home_es, "/ports")));
    let port_page = visit(profile.path(), &shots, "5-port", &app.url(&link(&ports, "/ports/")));
    assert!(port_page.contains("Comunidad portuaria"));
    assert!(
        port_page.contains("Tiempo de estadía del buque") || port_page.contains("Movimiento de contenedores"),
        "the port shows its indicators"
    );

    let chart = visit(
        profile.path(),
        &shots,
        "6-indicators",
        &app.url(&link(&home_es, "/indicators")),
    );
    assert!(
        chart.contains("<svg") && chart.contains("<rect"),
        "the comparison chart is drawn without script"
    );
}
