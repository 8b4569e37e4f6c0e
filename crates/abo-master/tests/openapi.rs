//! docs/openapi.yaml: it parses as OpenAPI 3.1, it describes every JSON API route the
//! master's source registers (and no route it does not), with the route's methods, and the
//! master serves it unchanged as `GET /api/v1/openapi.yaml`.
//!
//! The routes are read from the source text (`.route("PATH", get(..).post(..))` in every
//! file under src/), so a route added without documentation fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_norway::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec_text() -> String {
    std::fs::read_to_string(repo_root().join("docs/openapi.yaml")).expect("docs/openapi.yaml")
}

fn spec() -> Value {
    serde_norway::from_str(&spec_text()).expect("docs/openapi.yaml is YAML")
}

/// The routes documented here: paths under `/api/`, and the webhooks and artifacts beside
/// them (the web pages are HTML, tested in web_pages.rs).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/hooks/") || path.starts_with("/artifacts/")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of the call starting at `start` (just after its `(`), up to its closing `)`.
fn call_args(text: &str, start: usize) -> &str {
    let mut depth = 1;
    let mut in_string = false;
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'(' if !in_string => depth += 1,
            b')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &text[start..i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    &text[start..]
}

/// Every `.route("PATH", ...)` of the master's source: path (OpenAPI syntax) → methods, and
/// the file it is in.
fn source_routes() -> BTreeMap<String, (BTreeSet<String>, String)> {
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).unwrap();
    let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
    let catch_all = regex::Regex::new(r"\{\*(\w+)\}").unwrap();
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut out: BTreeMap<String, (BTreeSet<String>, String)> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for m in route.captures_iter(&text) {
            let path = catch_all.replace_all(&m[1], "{$1}").into_owned();
            if !is_api(&path) {
                continue;
            }
            let args = call_args(&text, m.get(0).unwrap().start() + ".route(".len());
            let methods: BTreeSet<String> = method
                .captures_iter(args)
                .map(|c| c[1].to_owned())
                .collect();
            assert!(
                !methods.is_empty(),
                "{}: no method found in .route({args})",
                file.display()
            );
            let entry = out
                .entry(path)
                .or_insert_with(|| (BTreeSet::new(), file.display().to_string()));
            entry.0.extend(methods);
        }
    }
    out
}

#[test]
fn the_document_is_openapi_3_1_with_its_parts() {
    let spec = spec();
    assert_eq!(spec["openapi"].as_str(), Some("3.1.0"));
    assert!(spec["info"]["title"].is_string());
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["type"].as_str(), Some("http"));
    assert_eq!(schemes["basic"]["scheme"].as_str(), Some("basic"));
    // Every reference resolves.
    let text = spec_text();
    let reference = regex::Regex::new(r##"\$ref: "#/([^"]+)""##).unwrap();
    let mut count = 0;
    for r in reference.captures_iter(&text) {
        let mut node = &spec;
        for part in r[1].split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "$ref #/{} resolves to nothing", &r[1]);
        count += 1;
    }
    assert!(count > 50, "{count} references");
}

#[test]
fn every_api_route_of_the_source_is_documented_and_nothing_else() {
    let routes = source_routes();
    // The extraction itself works: routes of each kind are found.
    for known in [
        "/api/v1/workers",
        "/api/v1/openapi.yaml",
        "/api/v1/builds/{id}/steps/{n}/logs/{name}",
        "/artifacts/{path}",
    ] {
        assert!(
            routes.contains_key(known),
            "{known} not found in {routes:?}"
        );
    }
    let spec = spec();
    let paths = spec["paths"].as_mapping().expect("paths");
    let mut missing = Vec::new();
    for (path, (methods, file)) in &routes {
        let Some(item) = paths.get(path.as_str()) else {
            missing.push(format!("{path} ({file})"));
            continue;
        };
        for m in methods {
            if item.get(m.as_str()).is_none() {
                missing.push(format!("{} {path} ({file})", m.to_uppercase()));
            }
        }
        // Documented methods the route does not have.
        for (key, _) in item.as_mapping().unwrap() {
            let key = key.as_str().unwrap();
            if ["get", "post", "put", "delete", "patch"].contains(&key) {
                assert!(
                    methods.contains(key),
                    "docs/openapi.yaml documents {} {path}, which {file} does not route",
                    key.to_uppercase()
                );
            }
        }
        // Every path parameter is declared.
        let params: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for m in methods {
            let declared = item[m.as_str()]["parameters"].as_sequence();
            for p in &params {
                let found = declared.into_iter().flatten().any(|d| {
                    d["name"].as_str() == Some(p)
                        || d["$ref"].as_str().is_some_and(|r| {
                            let name = r.rsplit('/').next().unwrap();
                            spec["components"]["parameters"][name]["name"].as_str() == Some(p)
                        })
                });
                assert!(
                    found,
                    "{} {path}: parameter {p} is not declared",
                    m.to_uppercase()
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.yaml:\n  {}",
        missing.join("\n  ")
    );
    for (path, _) in paths {
        let path = path.as_str().unwrap();
        assert!(
            routes.contains_key(path),
            "docs/openapi.yaml documents {path}, which no source file routes"
        );
    }
}

/// A bare HTTP/1.1 GET: (status, head, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut raw),
    )
    .await
    .expect("an answer within 10 s")
    .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn the_master_serves_the_document() {
    let mut config = abo_master::MasterConfig::new("127.0.0.1:0", vec![]);
    config.http_listen = Some("127.0.0.1:0".into());
    let master = abo_master::start(config).await.unwrap();
    let http = master.http_addr().unwrap();
    let (status, head, body) = get(http, "/api/v1/openapi.yaml").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/yaml"),
        "{head}"
    );
    assert_eq!(
        body,
        spec_text(),
        "the served document is not docs/openapi.yaml"
    );
    master.shutdown().await;
}
