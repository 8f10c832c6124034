//! The accept loop: HTTP/1.1 connections served by hyper, each with a [`ConnCtx`] that
//! handlers use to drop the connection without a response (`down`) or to make its close
//! a TCP reset (`reset_rate`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use socket2::Socket;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Per-connection handle, in every request's extensions.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub peer: SocketAddr,
    kill: CancellationToken,
    /// A duplicate of the socket, to set options on it while hyper owns the stream.
    sock: Option<Socket>,
}

impl ConnCtx {
    /// Makes the eventual close of the connection send a TCP RST instead of a FIN.
    pub fn arm_reset(&self) {
        if let Some(s) = &self.sock {
            if let Err(e) = s.set_linger(Some(Duration::ZERO)) {
                tracing::debug!(error = %e, "cannot set SO_LINGER");
            }
        }
    }

    /// Drops the connection now, without sending anything more (RST).
    pub fn drop_now(&self) {
        self.arm_reset();
        self.kill.cancel();
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled.
pub(crate) async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let sock = socket2::SockRef::from(&tcp).try_clone().ok();
        let ctx = Arc::new(ConnCtx {
            peer,
            kill: CancellationToken::new(),
            sock,
        });
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = ctx.kill.clone();
            let svc_ctx = ctx.clone();
            let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(svc_ctx.clone());
                let router = router.clone();
                async move {
                    let req = req.map(axum::body::Body::new);
                    Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {}))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(peer = %ctx.peer, error = %e, "connection ended with an error");
                },
                _ = kill.cancelled() => tracing::debug!(peer = %ctx.peer, "connection dropped"),
                _ = shutdown.cancelled() => {}
            }
            // The last reference to the duplicate socket goes here: the socket closes
            // now (with a RST if a reset was armed).
            drop(ctx);
        });
    }
}
