//! The API as the last source of every chain: one ranged GET per run, received straight
//! into pool buffers of one block each, pinned to the version (`api::content`), each
//! block handed on the moment it is complete ([`BlockSource::stream`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::FutureExt;

use super::{BlockRequest, BlockSink, BlockSource, Collect, Fetched, SourceError};
use crate::api::ApiClient;
use crate::version::Validator;

impl BlockSource for ApiClient {
    fn fetch(
        &self,
        req: BlockRequest,
    ) -> futures::future::BoxFuture<'static, Result<Fetched, SourceError>> {
        let sink = Arc::new(Collect::default());
        let first = req.first;
        let stream = self.stream(req, sink.clone());
        async move {
            let validator = stream.await?;
            Ok(Fetched {
                blocks: sink.prefix(first),
                validator,
            })
        }
        .boxed()
    }

    fn stream(
        &self,
        req: BlockRequest,
        sink: Arc<dyn BlockSink>,
    ) -> futures::future::BoxFuture<'static, Result<Option<Validator>, SourceError>> {
        let client = self.clone();
        async move {
            // Buffers come in order, one block each: number them as they come.
            let next = AtomicU64::new(req.first);
            let emit = |b: bytes::Bytes| sink.put(next.fetch_add(1, Ordering::Relaxed), b);
            client
                .read_stream(
                    &req.version,
                    req.offset(),
                    req.bytes(),
                    req.block_size,
                    &req.pool,
                    req.purpose.kind(),
                    &emit,
                )
                .await?;
            Ok(req.version.pinned().cloned())
        }
        .boxed()
    }
}
