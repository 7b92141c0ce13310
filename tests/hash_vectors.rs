//! The `hash` strategy's placement is pinned forever: these vectors must never change.
//!
//! The values were cross-checked with an independent SipHash-2-4 implementation (in Python,
//! itself checked against the reference vector of the SipHash paper: key 00..0f, empty input →
//! 0x726fdb47dd0e0e31) over the encoding documented in `grant_core::key`.

use grant::resolve::HashResolver;
use grant::resolve::hash::{key_hash, shard_index};

/// (key, SipHash-2-4 of the canonical encoding, shard of 8, shard of 16)
const INTS: &[(i64, u64, u32, u32)] = &[
    (0, 0x19bdd693d222cecb, 3, 11),
    (1, 0xeff800e14a9eca9d, 5, 13),
    (-1, 0x5bf26d77b9b6080a, 2, 10),
    (2, 0x1b85f67b81cab984, 4, 4),
    (7, 0x92c0154863ada0fe, 6, 14),
    (42, 0x40acf94257bf3546, 6, 6),
    (1000, 0x91ec02dc177bece1, 1, 1),
    (123456789, 0x280faac63a25e4bc, 4, 12),
    (-987654321, 0xc26b0f8058c146dc, 4, 12),
    (i64::MAX, 0x3ade66c3bce3cbc6, 6, 6),
    (i64::MIN, 0x9031a861e8705762, 2, 2),
    (1 << 40, 0xefd58842324c3b83, 3, 3),
];

const STRINGS: &[(&str, u64, u32, u32)] = &[
    ("", 0xe024f5082887bace, 6, 14),
    ("a", 0xf13ea2389a7f100e, 6, 14),
    ("alice", 0xbcc7f2c7eedb31e7, 7, 7),
    ("hello", 0x9883da2c6fe0ddd7, 7, 7),
    ("héllo", 0xfdefcb63185733f2, 2, 2),
    ("tenant-42", 0xb572c6386b0c9b29, 1, 9),
    ("o'neil", 0xcbf3c4c028a08928, 0, 8),
    ("ü日本", 0xd860360d10a13930, 0, 0),
    ("0", 0x5f373bac258e3388, 0, 8),
    ("user:1", 0x09df4603f7019659, 1, 9),
];

#[test]
fn integer_vectors() {
    for &(key, hash, of8, of16) in INTS {
        assert_eq!(key_hash(&key), hash, "hash of {key}");
        assert_eq!(shard_index(&key, 8), of8, "{key} of 8");
        assert_eq!(shard_index(&key, 16), of16, "{key} of 16");
        assert_eq!(HashResolver::new(8).shard_for(&key).index(), of8);
    }
}

#[test]
fn string_vectors() {
    for &(key, hash, of8, of16) in STRINGS {
        assert_eq!(key_hash(key), hash, "hash of {key:?}");
        assert_eq!(key_hash(&key.to_string()), hash, "String and &str agree");
        assert_eq!(shard_index(key, 8), of8, "{key:?} of 8");
        assert_eq!(shard_index(key, 16), of16, "{key:?} of 16");
    }
}

#[test]
fn composite_vectors_are_delimited() {
    assert_eq!(key_hash(&(1_i64, "a")), 0x0ac696724ba34ff6);
    assert_eq!(key_hash(&(42_i64, "hello")), 0x26e43e851b1b03b6);
    // Parts are length-delimited: moving a byte between parts changes the key.
    assert_ne!(key_hash(&("ab", "c")), key_hash(&("a", "bc")));
}

#[test]
fn integer_widths_route_alike() {
    for v in [-5_i32, 0, 5, 1_000_000, i32::MAX, i32::MIN] {
        assert_eq!(key_hash(&v), key_hash(&i64::from(v)), "{v}");
    }
    assert_eq!(key_hash(&5_i16), key_hash(&5_i64));
    assert_eq!(key_hash(&5_u32), key_hash(&5_i64));
    assert_eq!(key_hash(&5_i8), key_hash(&5_i64));
}

/// Prints `key shard` lines for a fixed key set; the parent test compares a child process's
/// output with its own.
fn routes() -> String {
    let mut out = String::new();
    for k in -500_i64..500 {
        out += &format!("{k} {}\n", shard_index(&k, 8));
    }
    for k in 0..200 {
        let s = format!("tenant-{k}");
        out += &format!("{s} {}\n", shard_index(s.as_str(), 16));
    }
    out
}

#[test]
fn child_process_routes() {
    if std::env::var_os("GRANT_ROUTE_CHILD").is_some() {
        print!("BEGIN\n{}END\n", routes());
    }
}

#[test]
fn separate_processes_route_identically() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_process_routes",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GRANT_ROUTE_CHILD", "1")
        .output()
        .expect("run the test binary as a child process");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let begin = stdout.find("BEGIN\n").expect("child printed its routes") + 6;
    let end = stdout.find("END\n").unwrap();
    assert_eq!(&stdout[begin..end], routes());
}
