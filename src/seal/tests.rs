use super::*;
use std::io::Cursor;

fn tenant(n: u8) -> TenantId {
    TenantId::new(&format!("https://api{n}.example"), "client")
}

fn sealer(p: Purpose) -> Sealer {
    RootKey::from_secret(b"secret", tenant(1)).sealer(p)
}

#[test]
fn a_message_round_trips_and_any_flipped_bit_is_refused() {
    let s = sealer(Purpose::Disk);
    let plain: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let sealed = s.seal(b"who", &plain);
    assert_eq!(sealed.len(), plain.len() + OVERHEAD);
    assert_eq!(s.open(b"who", &sealed).expect("opens"), plain);
    for at in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[at] ^= 0x20;
        assert_eq!(s.open(b"who", &bad), Err(Unsealed), "byte {at}");
    }
    for len in 0..sealed.len() {
        assert_eq!(s.open(b"who", &sealed[..len]), Err(Unsealed));
    }
}

#[test]
fn another_identity_purpose_tenant_or_key_does_not_open() {
    let s = sealer(Purpose::Disk);
    let sealed = s.seal(b"block 1", b"recording bytes");
    assert_eq!(s.open(b"block 2", &sealed), Err(Unsealed));
    assert_eq!(
        sealer(Purpose::Redis).open(b"block 1", &sealed),
        Err(Unsealed)
    );
    let other_tenant = RootKey::from_secret(b"secret", tenant(2)).sealer(Purpose::Disk);
    assert_eq!(other_tenant.open(b"block 1", &sealed), Err(Unsealed));
    let other_key = RootKey::from_secret(b"secret2", tenant(1)).sealer(Purpose::Disk);
    assert_eq!(other_key.open(b"block 1", &sealed), Err(Unsealed));
}

#[test]
fn nonces_are_fresh_and_the_ciphertext_hides_the_plaintext() {
    let s = sealer(Purpose::Disk);
    let plain = vec![b'A'; 4096];
    let (a, b) = (s.seal(b"x", &plain), s.seal(b"x", &plain));
    assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
    assert_ne!(a, b);
    assert!(!a.windows(64).any(|w| w == &plain[..64]));
}

#[test]
fn key_ids_name_the_key_and_tenant() {
    let a = RootKey::from_secret(b"secret", tenant(1));
    assert_eq!(a.id(), RootKey::from_secret(b"secret", tenant(1)).id());
    assert_ne!(a.id(), RootKey::from_secret(b"secret", tenant(2)).id());
    assert_ne!(a.id(), RootKey::from_secret(b"other", tenant(1)).id());
    assert!(!format!("{a:?}").contains("secret"));
    let name = a.name(b"2480fc2c-bbd7-427c-9439-02f76583aef5");
    assert_eq!(name.len(), 32);
    assert_eq!(
        name,
        RootKey::from_secret(b"secret", tenant(1)).name(b"2480fc2c-bbd7-427c-9439-02f76583aef5")
    );
    assert_ne!(
        name,
        RootKey::from_secret(b"other", tenant(1)).name(b"2480fc2c-bbd7-427c-9439-02f76583aef5")
    );
}

fn stream(plain: &[u8]) -> Vec<u8> {
    let s = sealer(Purpose::Catalog);
    let mut w = SealWriter::new(&s, b"day", Vec::new()).expect("header");
    // Odd-sized writes cross chunk boundaries.
    for part in plain.chunks(1000) {
        w.write_all(part).expect("write");
    }
    w.finish().expect("finish")
}

fn unstream(sealed: &[u8]) -> io::Result<Vec<u8>> {
    let s = sealer(Purpose::Catalog);
    let mut out = Vec::new();
    SealReader::new(&s, b"day", Cursor::new(sealed))?.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn streams_round_trip_at_every_size_around_chunk_boundaries() {
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sealed = stream(&plain);
        assert_eq!(unstream(&sealed).expect("opens"), plain, "len {len}");
    }
}

#[test]
fn a_stream_cut_extended_reordered_or_rebound_is_refused() {
    let plain: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 253) as u8).collect();
    let sealed = stream(&plain);
    // Cut anywhere, including exactly at a chunk boundary.
    let full = CHUNK + TAG_LEN;
    for cut in [
        0,
        5,
        STREAM_HEADER,
        STREAM_HEADER + full,
        STREAM_HEADER + 2 * full,
        sealed.len() - 1,
    ] {
        assert!(unstream(&sealed[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(unstream(&longer).is_err());
    // Two full chunks swapped.
    let mut swapped = sealed.clone();
    let (a, b) = (STREAM_HEADER, STREAM_HEADER + full);
    let first = sealed[a..a + full].to_vec();
    swapped.copy_within(b..b + full, a);
    swapped[b..b + full].copy_from_slice(&first);
    assert!(unstream(&swapped).is_err());
    let mut flipped = sealed.clone();
    flipped[STREAM_HEADER + 2 * full + 3] ^= 1;
    assert!(unstream(&flipped).is_err());
    let s = sealer(Purpose::Catalog);
    let mut out = Vec::new();
    let r = SealReader::new(&s, b"another day", Cursor::new(&sealed[..]))
        .and_then(|mut r| r.read_to_end(&mut out));
    assert!(r.is_err());
}

#[test]
fn a_key_file_must_be_private_regular_and_32_bytes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("key");
    std::fs::write(&p, [7u8; 32]).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let a = RootKey::from_key_file(&p, tenant(1)).expect("accepted");
    std::fs::write(&p, format!("{}\n", "07".repeat(32))).expect("write");
    let b = RootKey::from_key_file(&p, tenant(1)).expect("hex accepted");
    assert_eq!(a.id(), b.id());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let e = RootKey::from_key_file(&p, tenant(1)).expect_err("group bits");
    assert!(e.to_string().contains("chmod 600"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&p, [1u8; 31]).expect("write");
    assert!(RootKey::from_key_file(&p, tenant(1)).is_err());
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&p, &link).expect("symlink");
    let e = RootKey::from_key_file(&link, tenant(1)).expect_err("symlink");
    assert!(e.to_string().contains("symlink"), "{e}");
}
