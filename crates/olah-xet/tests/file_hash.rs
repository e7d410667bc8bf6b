//! Chunking and hashing agree with the official hf_xet on every fixture file
//! (tests/fixtures/file_hashes.json, produced by gen_file_hashes.py with hf_xet.hash_files).

use sha2::Digest;

fn content(kind: &str, seed: u64, n: usize) -> Vec<u8> {
    if kind == "text" {
        let s = b"The quick brown fox jumps over the lazy dog. ";
        return s.iter().copied().cycle().take(n).collect();
    }
    let mut out = Vec::with_capacity(n + 32);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(&sha2::Sha256::digest(format!("{seed}:{i}").as_bytes()));
        i += 1;
    }
    out.truncate(n);
    out
}

#[test]
fn file_hashes_match_hf_xet() {
    let text = include_str!("fixtures/file_hashes.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let (kind, seed, n) = (
            c["kind"].as_str().unwrap(),
            c["seed"].as_u64().unwrap(),
            c["len"].as_u64().unwrap() as usize,
        );
        let data = content(kind, seed, n);
        let chunks = olah_xet::chunk_hashes(&data);
        assert_eq!(chunks.iter().map(|c| c.1).sum::<u64>(), n as u64);
        assert!(
            chunks
                .iter()
                .rev()
                .skip(1)
                .all(|c| c.1 >= olah_xet::chunk::MIN_CHUNK as u64)
        );
        assert!(
            chunks
                .iter()
                .all(|c| c.1 <= olah_xet::chunk::MAX_CHUNK as u64)
        );
        let got = olah_xet::file_hash(&chunks).to_hex();
        // The streaming chunker, fed in odd-sized pieces, cuts the same chunks.
        let mut ck = olah_xet::Chunker::default();
        let mut streamed = Vec::new();
        for piece in data.chunks(77_777) {
            streamed.extend(ck.push(piece));
        }
        streamed.extend(ck.finish());
        assert_eq!(
            streamed.iter().map(|c| c.len() as u64).collect::<Vec<_>>(),
            chunks.iter().map(|c| c.1).collect::<Vec<_>>()
        );
        assert_eq!(
            got,
            c["xet_hash"].as_str().unwrap(),
            "{kind} seed {seed} len {n}: {} chunks",
            chunks.len()
        );
    }
}
