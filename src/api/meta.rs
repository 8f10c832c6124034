//! The HTTP client as the catalog's metadata source ([`MetaSource`]): each method is
//! the client's own request (with its retries, budget and access tracking), on a clone
//! of the client, so the futures own what they use.

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{ApiClient, ApiError, Probe};
use crate::meta::{MetaSource, Window};
use crate::model::{Interaction, SearchPage};
use crate::version::TenantId;

impl MetaSource for ApiClient {
    fn tenant(&self) -> TenantId {
        self.config().tenant()
    }

    fn search_page(
        &self,
        window: Window,
        continuation: Option<String>,
    ) -> BoxFuture<'static, Result<SearchPage, ApiError>> {
        let client = self.clone();
        async move { client.search_page(window, continuation.as_deref()).await }.boxed()
    }

    fn interaction(&self, guid: &str) -> BoxFuture<'static, Result<Interaction, ApiError>> {
        let (client, guid) = (self.clone(), guid.to_string());
        async move { ApiClient::interaction(&client, &guid).await }.boxed()
    }

    fn probe(
        &self,
        guid: &str,
        key: &str,
        head: u64,
    ) -> BoxFuture<'static, Result<Probe, ApiError>> {
        let (client, guid, key) = (self.clone(), guid.to_string(), key.to_string());
        async move { ApiClient::probe(&client, &guid, &key, head).await }.boxed()
    }

    fn is_revoked(&self) -> bool {
        ApiClient::is_revoked(self)
    }

    fn probe_access(&self) -> BoxFuture<'static, ()> {
        let client = self.clone();
        async move {
            ApiClient::probe_access(&client).await;
        }
        .boxed()
    }
}
