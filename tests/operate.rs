//! Operating the server: readiness, graceful drain, and what the logs may hold.

mod common;

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{Client, TestServer, WAIT, create, join, unique};
use serde_json::{Value, json};

#[tokio::test]
async fn sigterm_drains_then_exits() {
    let mut server = TestServer::start().await;
    let session = unique("drain");
    let mut a = server.client().await;
    create(&mut a, &session, "alice").await;
    let ready = reqwest::get(server.url("/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);

    let started = Instant::now();
    server.begin_shutdown();
    let notice = a.next("server-shutdown").await;
    assert!(notice["reconnectInMs"].as_u64().is_some(), "{notice}");
    a.next("transport-closed").await;

    // Still answering, but not ready and refusing new connections.
    let ready = reqwest::get(server.url("/ready")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let handshake = reqwest::get(server.url("/socket.io/?EIO=4&transport=polling"))
        .await
        .unwrap();
    assert_eq!(handshake.status(), 503);

    server.wait_stopped().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drain took {:?}",
        started.elapsed()
    );
}

/// Kills the server if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The release binary's logs, with `DEBUG=true`, after a distinctive secret went through
/// every event, hold none of it: no key, password, plaintext, ciphertext, public key,
/// file name or session id. And one JSON line per connection, join, leave and error.
#[tokio::test]
async fn logs_never_hold_secrets() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_blindrelay"))
        // No snapshot folder in the working directory (the repository).
        .env("DATA_DIR", "off")
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("DEBUG", "true")
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    // Read the output as it comes (a full pipe would block the server).
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read_all(Box::new(stdout)), read_all(Box::new(stderr)));
    let mut child = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while reqwest::get(format!("{base}/health")).await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr = format!("127.0.0.1:{port}").parse().unwrap();

    let secret = "Zq7SECRETx9";
    let session = format!("room{secret}");
    let key = format!("key{secret}");
    let reserve = reqwest::Client::new()
        .post(format!("{base}/api/reserve-session"))
        .json(&json!({ "sessionId": session, "authKey": key, "chatMode": "group" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reserve.status(), 200);
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    let ack = join(
        &mut a,
        &session,
        "alice",
        json!({ "isCreator": true, "authKey": key, "publicKey": format!("pub{secret}") }),
    )
    .await;
    assert_eq!(ack["ok"], true);
    let wrong = join(
        &mut b,
        &format!("{session}:wrong{secret}"),
        "bob",
        json!({}),
    )
    .await;
    assert_eq!(wrong["error"], "INVALID_KEY");
    assert_eq!(
        join(
            &mut b,
            &format!("{session}:{key}"),
            "bob",
            json!({ "displayName": format!("name{secret}") })
        )
        .await["ok"],
        true
    );
    let s = json!(session);
    let events = [
        (
            "save-public-key",
            json!({ "sessionId": s, "publicKey": format!("pub2{secret}") }),
        ),
        ("get-public-keys", json!({ "sessionId": s })),
        (
            "send-message",
            json!({ "sessionId": s, "encrypted": format!("cipher{secret}"), "originalContent": format!("plain{secret}") }),
        ),
        (
            "send-message",
            json!({ "sessionId": s, "from": "mallory", "encrypted": format!("cipher{secret}") }),
        ),
        (
            "set-session-key",
            json!({ "sessionId": s, "encryptedKeys": { "alice": format!("group{secret}") } }),
        ),
        (
            "typing",
            json!({ "sessionId": s, "displayName": format!("name{secret}") }),
        ),
        ("stopped-typing", json!({ "sessionId": s })),
        (
            "file-downloaded",
            json!({ "sessionId": s, "senderId": "bob", "fileName": format!("file{secret}") }),
        ),
        ("leave-session", json!({ "sessionId": s })),
    ];
    for (event, payload) in events {
        a.ack(event, payload).await;
    }
    // A password room, with a wrong then a right password.
    let pw_session = format!("pw{secret}");
    let mut c = Client::connect(addr).await;
    join(
        &mut c,
        &pw_session,
        "carol",
        json!({ "isCreator": true, "authKey": format!("k:{secret}pw"), "chatMode": "password" }),
    )
    .await;
    let mut d = Client::connect(addr).await;
    assert_eq!(
        join(
            &mut d,
            &format!("{pw_session}:password:bad{secret}"),
            "dave",
            json!({})
        )
        .await["error"],
        "INVALID_PASSWORD"
    );
    assert_eq!(
        join(
            &mut d,
            &format!("{pw_session}:password:{secret}pw"),
            "dave",
            json!({})
        )
        .await["ok"],
        true
    );
    c.ack("close-session", json!({ "sessionId": pw_session }))
        .await;
    a.close();

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within SHUTDOWN_GRACE_SECS after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");

    let logs = out.join().unwrap() + &err.join().unwrap();
    assert!(
        !logs.contains("SECRET"),
        "a secret reached the logs:\n{logs}"
    );
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for message in [
        "connected",
        "joined",
        "left",
        "refused",
        "closed",
        "disconnected",
    ] {
        let line = lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message} line in\n{logs}"));
        assert!(
            line["socket"].as_str().is_some_and(|s| !s.is_empty()),
            "{message} line without socket id: {line}"
        );
    }
}
