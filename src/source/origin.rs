//! The API as the last source of every chain: one ranged GET per run, received straight
//! into pool buffers of one block each, pinned to the version (`api::content`).

use futures::FutureExt;

use super::{BlockRequest, BlockSource, Fetched, SourceError};
use crate::api::ApiClient;

impl BlockSource for ApiClient {
    fn fetch(
        &self,
        req: BlockRequest,
    ) -> futures::future::BoxFuture<'static, Result<Fetched, SourceError>> {
        let client = self.clone();
        async move {
            let blocks = client
                .read_chunks(
                    &req.version,
                    req.offset(),
                    req.bytes(),
                    req.block_size,
                    &req.pool,
                )
                .await?;
            Ok(Fetched {
                blocks,
                validator: req.version.pinned().cloned(),
            })
        }
        .boxed()
    }
}
