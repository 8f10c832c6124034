//! Tests: a scripted API on a loopback port (an axum `Router` of the test's own
//! routes under `/token` and `/interaction-content/...`) and a client pointed at it,
//! retrying for at most 300 ms, so a failure case ends quickly.

use std::time::Duration;

use axum::Router;

use crate::api::{ApiClient, ApiConfig, Credentials};

/// Serve `app` on a free loopback port; a client of it (client id `c`, secret `s`).
pub(crate) async fn client_of(app: Router) -> ApiClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let base = format!("http://{addr}");
    let mut cfg = ApiConfig::new(
        &format!("{base}/interaction-content"),
        &format!("{base}/token"),
        Credentials {
            client_id: "c".into(),
            client_secret: "s".into(),
        },
    )
    .expect("config");
    cfg.retry_deadline = Duration::from_millis(300);
    ApiClient::new(cfg).expect("client")
}
