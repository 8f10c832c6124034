//! Unit tests of ranged reads: Content-Range, chunking, version pins.

use super::*;

#[test]
fn content_range_parsing() {
    assert_eq!(
        parse_content_range("bytes 0-9/100"),
        Some((0, 9, Some(100)))
    );
    assert_eq!(parse_content_range("bytes 5-5/*"), Some((5, 5, None)));
    assert_eq!(parse_content_range("bytes 9-0/100"), None);
    assert_eq!(parse_content_range("bytes 0-100/100"), None);
    assert_eq!(parse_content_range("bytes */100"), None);
    assert_eq!(parse_content_range("items 0-1/2"), None);
}

#[test]
fn chunked_buffers_split_exactly() {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    for chunk in [1u64, 7, 4096, 10_000, 1 << 20] {
        let pool = if chunk >= 4096 {
            BlockPool::new(chunk, 8 << 20, 8 << 20)
        } else {
            BlockPool::heap_only()
        };
        let out = parking_lot::Mutex::new(Vec::new());
        let emit = |p: Bytes| out.lock().push(p);
        let mut b = ChunkedBuf::new(data.len() as u64, chunk, &pool, &emit);
        assert_eq!(b.bufs.len() as u64, (data.len() as u64).div_ceil(chunk));
        let mut fed = 0;
        for piece in data.chunks(333) {
            b.extend(piece);
            fed += piece.len() as u64;
            // Each buffer is handed on the moment it is full, not at the end.
            let full = if fed == data.len() as u64 {
                fed.div_ceil(chunk) // the last, shorter buffer is full too
            } else {
                fed / chunk
            };
            assert_eq!(out.lock().len() as u64, full, "after {fed} bytes");
        }
        b.finish();
        let parts = out.into_inner();
        assert_eq!(parts.len() as u64, (data.len() as u64).div_ceil(chunk));
        assert!(parts.iter().rev().skip(1).all(|p| p.len() as u64 == chunk));
        assert_eq!(parts.concat(), data);
    }
}

#[test]
fn if_range_is_the_pin_of_the_serving_host() {
    let t = time::macros::datetime!(2020-02-16 14:19:35 UTC);
    let tenant = crate::version::TenantId::new("http://x/interaction-content", "c");
    let v = ContentVersion::new(tenant, "g", "k", 10, Some(t));
    assert_eq!(if_range(&v), None, "the listed lastModified pins nothing");
    assert!(v.pin(&Validator::ETag("\"abc\"".into())));
    assert_eq!(if_range(&v).as_deref(), Some("\"abc\""));
    let w = ContentVersion::new(tenant, "g", "k", 10, Some(t));
    assert!(w.pin(&Validator::LastModified(
        "Mon, 17 Feb 2020 08:00:00 GMT".into()
    )));
    assert_eq!(
        if_range(&w).as_deref(),
        Some("Mon, 17 Feb 2020 08:00:00 GMT")
    );
}

#[test]
fn a_response_validator_pins_or_is_a_change() {
    let tenant = crate::version::TenantId::new("http://x/interaction-content", "c");
    let client = ApiClient::new(
        crate::api::ApiConfig::new(
            "http://127.0.0.1:9/interaction-content",
            "http://127.0.0.1:9/token",
            crate::api::Credentials {
                client_id: "c".into(),
                client_secret: "s".into(),
            },
        )
        .expect("config"),
    )
    .expect("client");
    let listed = time::macros::datetime!(2020-02-16 14:19:35 UTC);
    let headers = |pairs: &[(reqwest::header::HeaderName, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().expect("header value"));
        }
        h
    };
    // A storage host's own Last-Modified (not the listing's) is no change: it pins.
    let v = ContentVersion::new(tenant, "g", "k", 10, Some(listed));
    let stored = headers(&[(LAST_MODIFIED, "Sun, 16 Feb 2020 14:24:00 GMT")]);
    assert_eq!(client.check_version(&v, &stored), Ok(()));
    assert_eq!(client.check_version(&v, &stored), Ok(()));
    let later = headers(&[(LAST_MODIFIED, "Sun, 16 Feb 2020 15:00:00 GMT")]);
    assert!(
        client.check_version(&v, &later).is_err(),
        "the pin stopped matching"
    );
    // A strong ETag wins over Last-Modified; a weak one pins nothing.
    let w = ContentVersion::new(tenant, "g", "k", 10, Some(listed));
    let weak = headers(&[
        (ETAG, "W/\"x\""),
        (LAST_MODIFIED, "Sun, 16 Feb 2020 14:24:00 GMT"),
    ]);
    assert_eq!(client.check_version(&w, &weak), Ok(()));
    assert_eq!(
        w.pinned(),
        Some(&Validator::LastModified(
            "Sun, 16 Feb 2020 14:24:00 GMT".into()
        ))
    );
    let e = ContentVersion::new(tenant, "g", "k", 10, Some(listed));
    assert_eq!(
        client.check_version(&e, &headers(&[(ETAG, "\"a\""), (LAST_MODIFIED, "x")])),
        Ok(())
    );
    assert!(client
        .check_version(&e, &headers(&[(ETAG, "\"b\"")]))
        .is_err());
}
