//! Reconstructions produced by the fake Hub's CAS (olah-testkit) go through the parser and the
//! term decoder back to the exact file bytes, and the decoded chunk hashes give the file's Xet
//! hash.

use bytes::Bytes;
use olah_testkit::cas::Cas;
use olah_testkit::{Content, FileFixture, Fixture, Kind, RepoFixture};
use olah_xet::{TermDecoder, file_hash, parse_upstream, parse_upstream_value, plan};

/// Rebuilds file bytes `0..=last` of a reconstruction from the fake CAS's xorb bytes, fed in
/// pieces of `piece` bytes; also returns the chunk hashes when `hash_chunks`.
fn rebuild(
    cas: &Cas,
    recon: &olah_xet::Recon,
    last: u64,
    piece: usize,
    hash_chunks: bool,
) -> (Vec<u8>, Vec<(olah_xet::XetHash, u64)>) {
    let (mut out, mut hashes) = (Vec::new(), Vec::new());
    for part in plan(recon, 0, last).unwrap() {
        let t = &recon.terms[part.term];
        let bytes: Vec<u8> = cas
            .xorb_bytes(&t.hash, part.fetch.bytes.start, part.fetch.bytes.end)
            .unwrap()
            .concat();
        let mut dec = TermDecoder::new(t, &part, hash_chunks);
        for p in bytes.chunks(piece) {
            if !dec.needs_more() {
                break;
            }
            let d = dec.push(p).unwrap();
            out.extend(d.bytes.iter().flat_map(|b| b.iter().copied()));
            hashes.extend(d.hashes);
        }
        dec.finish().unwrap();
    }
    (out, hashes)
}

#[test]
fn fake_cas_reconstructions_rebuild_the_exact_bytes() {
    let text: String = (0..40_000)
        .map(|i| format!("line {i} of a text\n"))
        .collect();
    let files = vec![
        // Generated (uncompressed records), a patched revision sharing most chunks, and a
        // compressible text (LZ4 records).
        ("w.bin", FileFixture::generated("w.bin", 7, 1_500_000).xet()),
        (
            "t.txt",
            FileFixture::new("t.txt", Content::Bytes(Bytes::from(text))).xet(),
        ),
    ];
    let mut repo = RepoFixture::with_files(Kind::Model, "a/b", files);
    let patched = Content::Patched {
        seed: 7,
        len: 1_500_000,
        at: 700_000,
        patch: Bytes::from(vec![1u8; 5000]),
    };
    repo.commit(
        "patch",
        vec![("w.bin", FileFixture::new("w.bin", patched).xet())],
        &[],
    );
    let fx = Fixture::new(vec![repo], vec![]);
    let cas = Cas::build(&fx);
    let files = [
        &fx.repos[0].commits[0].files["w.bin"],
        &fx.repos[0].commits[0].files["t.txt"],
        &fx.repos[0].commits[1].files["w.bin"],
    ];
    let url = |h: &str, s: u64, e: u64| format!("http://cdn.test/xorb/{h}?bytes={s}-{e}");
    let mut most_terms = 0;
    for f in files {
        let content = f.content().to_vec();
        let size = content.len() as u64;
        let h = f.xet_hash();
        for range in [
            None,
            Some((0, 0)),
            Some((123_456, 654_321)),
            Some((size - 10, size + 5)),
        ] {
            let (a, b) = range.map_or((0, size - 1), |(a, b)| (a, b.min(size - 1)));
            let mut seen = None;
            for v2 in [false, true] {
                let Ok(json) = cas.reconstruction(&h, range, v2, &url) else {
                    panic!("no reconstruction of {h}");
                };
                let (recon, urls) = parse_upstream_value(&json).unwrap();
                let (again, _) = parse_upstream(json.to_string().as_bytes()).unwrap();
                assert_eq!(again, recon);
                assert!(!recon.terms.is_empty());
                most_terms = most_terms.max(recon.terms.len());
                for (x, span, u) in &urls {
                    assert_eq!(u, &url(x, span.start, span.end));
                }
                // v1 and v2 describe the same reconstruction.
                if let Some(prev) = seen.replace(recon.clone()) {
                    assert_eq!(prev, recon, "{range:?}");
                }
                let whole = range.is_none();
                for piece in [4096, 1 << 20] {
                    let (got, hashes) = rebuild(&cas, &recon, b - a, piece, whole);
                    assert!(
                        got == content[a as usize..=b as usize],
                        "{h} {range:?} v2={v2} piece={piece}: {} bytes",
                        got.len()
                    );
                    if whole {
                        assert_eq!(file_hash(&hashes).to_hex(), h, "chunk hashes verify");
                    }
                }
            }
        }
    }
    // The patched revision shares chunks with the first: several terms, several xorb ranges.
    assert!(most_terms >= 2, "{most_terms}");
}
