//! `atelier users` and `atelier serve` as a person uses them: add users (password from
//! standard input), list and change them, then start the server on a free port and log in
//! through it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

fn atelier(db: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("ATELIER_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run atelier");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok_json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn users_are_managed_from_the_command_line_and_log_in_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("catalog.db").display());
    ok_json(&atelier(
        &db,
        &["users", "add", "ana", "--role", "admin", "--json"],
        "secret-pass\n",
    ));
    ok_json(&atelier(
        &db,
        &["users", "add", "vic", "--role", "viewer", "--json"],
        "viewer-pass\n",
    ));
    let short = atelier(&db, &["users", "add", "bob"], "short\n");
    assert_eq!(
        short.status.code(),
        Some(2),
        "a short password is bad input"
    );
    let taken = atelier(&db, &["users", "add", "ana"], "another-pass\n");
    assert!(!taken.status.success());
    let role = atelier(&db, &["users", "role", "vic", "superuser"], "");
    assert_eq!(role.status.code(), Some(2));
    ok_json(&atelier(
        &db,
        &["users", "role", "vic", "reviewer", "--json"],
        "",
    ));
    let list = ok_json(&atelier(&db, &["users", "list", "--json"], ""));
    let users: Vec<(String, String)> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().into(),
                u["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("ana".into(), "admin".into()),
            ("vic".into(), "reviewer".into())
        ]
    );
    assert!(
        list.to_string().find("argon2").is_none(),
        "hashes are never printed"
    );

    // The server on a free port prints where it listens.
    let mut server = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["--db", &db, "serve", "--addr", "127.0.0.1:0"])
        .arg("--thumbnail-cache")
        .arg(dir.path().join("thumbs"))
        .env_remove("ATELIER_DB")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let address = common::served_address(&mut server);
    let body = r#"{"user":"ana","password":"secret-pass"}"#;
    let response = http(
        &address,
        &format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let wrong = http(
        &address,
        "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 37\r\nConnection: close\r\n\r\n{\"user\":\"ana\",\"password\":\"nope-nope\"}",
    );
    let page = http(
        &address,
        "GET /runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("atelier_session="), "{response}");
    assert!(response.contains("HttpOnly") && response.contains("SameSite=Strict"));
    assert!(wrong.starts_with("HTTP/1.1 403"), "{wrong}");
    assert!(
        page.starts_with("HTTP/1.1 303"),
        "no session: to the login page: {page}"
    );
}

fn http(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
