//! Xorb chunk records: an 8-byte header then the (possibly compressed) chunk bytes.
//!
//! ```text
//! u8 version (0) | u24 LE compressed size | u8 scheme (0 none, 1 LZ4, 2 byte-grouping-4 + LZ4)
//! | u24 LE uncompressed size | payload
//! ```
//! LZ4 is the LZ4 *frame* format. Byte grouping splits data into 4 lanes (byte i → lane i % 4).

use std::io::Read;

/// Length of a chunk record header.
pub const HEADER_LEN: usize = 8;

/// A malformed or undecodable chunk record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XorbError {
    /// Fewer bytes than the header announces.
    #[error("truncated chunk record")]
    Truncated,
    /// Unknown version or compression scheme.
    #[error("unsupported chunk record (version {0}, scheme {1})")]
    Unsupported(u8, u8),
    /// The payload does not decompress to the announced size.
    #[error("chunk payload does not decode: {0}")]
    Corrupt(String),
}

/// A parsed chunk record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Payload bytes following the header.
    pub compressed_len: usize,
    /// Compression scheme.
    pub scheme: u8,
    /// Decoded length.
    pub uncompressed_len: usize,
}

impl ChunkHeader {
    /// Parses the 8 header bytes.
    pub fn parse(b: &[u8]) -> Result<Self, XorbError> {
        if b.len() < HEADER_LEN {
            return Err(XorbError::Truncated);
        }
        let u24 = |x: &[u8]| x[0] as usize | (x[1] as usize) << 8 | (x[2] as usize) << 16;
        if b[0] != 0 || b[4] > 2 {
            return Err(XorbError::Unsupported(b[0], b[4]));
        }
        Ok(Self {
            compressed_len: u24(&b[1..4]),
            scheme: b[4],
            uncompressed_len: u24(&b[5..8]),
        })
    }

    /// Header plus payload length.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.compressed_len
    }
}

/// Decodes one record's payload.
pub fn decode(h: &ChunkHeader, payload: &[u8]) -> Result<Vec<u8>, XorbError> {
    if payload.len() != h.compressed_len {
        return Err(XorbError::Truncated);
    }
    let lz4 = |p: &[u8]| -> Result<Vec<u8>, XorbError> {
        let mut out = Vec::with_capacity(h.uncompressed_len);
        lz4_flex::frame::FrameDecoder::new(p)
            .take(h.uncompressed_len as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| XorbError::Corrupt(e.to_string()))?;
        Ok(out)
    };
    let out = match h.scheme {
        0 => payload.to_vec(),
        1 => lz4(payload)?,
        _ => ungroup4(&lz4(payload)?),
    };
    if out.len() != h.uncompressed_len {
        return Err(XorbError::Corrupt(format!(
            "{} bytes, expected {}",
            out.len(),
            h.uncompressed_len
        )));
    }
    Ok(out)
}

/// Reverses byte grouping: lanes 0..3 concatenated back into interleaved bytes.
fn ungroup4(g: &[u8]) -> Vec<u8> {
    let n = g.len();
    let lane_len = |k: usize| n / 4 + usize::from(k < n % 4);
    let mut starts = [0usize; 4];
    for k in 1..4 {
        starts[k] = starts[k - 1] + lane_len(k - 1);
    }
    (0..n).map(|i| g[starts[i % 4] + i / 4]).collect()
}

/// Encodes one chunk as a record, the way xet-core stores it: LZ4 (frame), or byte grouping 4
/// then LZ4, whichever is smaller; uncompressed (scheme 0) when neither helps.
pub fn encode_record(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let lz4 = |d: &[u8]| -> Vec<u8> {
        let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
        enc.write_all(d).expect("writing to a Vec cannot fail");
        enc.finish().expect("writing to a Vec cannot fail")
    };
    let plain = lz4(data);
    let mut grouped = Vec::with_capacity(data.len());
    for k in 0..4 {
        grouped.extend(data.iter().skip(k).step_by(4));
    }
    let bg4 = lz4(&grouped);
    let (scheme, payload): (u8, &[u8]) = if bg4.len() < plain.len() && bg4.len() < data.len() {
        (2, &bg4)
    } else if plain.len() < data.len() {
        (1, &plain)
    } else {
        (0, data)
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(0);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
    out.push(scheme);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes()[..3]);
    out.extend_from_slice(payload);
    out
}

/// Splits a xorb byte range (whole records) into decoded chunks.
pub fn decode_records(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, XorbError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = ChunkHeader::parse(bytes)?;
        if bytes.len() < h.record_len() {
            return Err(XorbError::Truncated);
        }
        out.push(decode(&h, &bytes[HEADER_LEN..h.record_len()])?);
        bytes = &bytes[h.record_len()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(scheme: u8, payload: &[u8], raw_len: usize) -> Vec<u8> {
        let mut r = vec![0u8];
        r.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
        r.push(scheme);
        r.extend_from_slice(&(raw_len as u32).to_le_bytes()[..3]);
        r.extend_from_slice(payload);
        r
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_every_scheme() {
        let data: Vec<u8> = (0..10_001u32)
            .map(|i| (i % 7 * 31 + i / 100) as u8)
            .collect();
        let mut grouped = Vec::new();
        for k in 0..4 {
            grouped.extend(data.iter().skip(k).step_by(4));
        }
        let mut x = record(0, &data, data.len());
        x.extend(record(1, &lz4(&data), data.len()));
        x.extend(record(2, &lz4(&grouped), data.len()));
        let chunks = decode_records(&x).unwrap();
        assert_eq!(chunks, vec![data.clone(), data.clone(), data.clone()]);
        // The encoder picks a compressed scheme for compressible data and round-trips.
        let enc = encode_record(&data);
        let h = ChunkHeader::parse(&enc).unwrap();
        assert!(
            h.scheme > 0 && enc.len() < data.len(),
            "scheme {}",
            h.scheme
        );
        assert_eq!(decode_records(&enc).unwrap(), vec![data.clone()]);
        let floats: Vec<u8> = (0..4096u32)
            .flat_map(|i| (i as f32 * 0.001).to_le_bytes())
            .collect();
        assert_eq!(
            ChunkHeader::parse(&encode_record(&floats)).unwrap().scheme,
            2
        );
        assert_eq!(
            decode_records(&encode_record(&floats)).unwrap(),
            vec![floats]
        );
        let mut r = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                (r >> 24) as u8
            })
            .collect();
        let enc = encode_record(&noise);
        assert_eq!(enc.len(), HEADER_LEN + noise.len());
        assert_eq!(ChunkHeader::parse(&enc).unwrap().scheme, 0);
        assert_eq!(decode_records(&x[..x.len() - 1]), Err(XorbError::Truncated));
        let mut bad = record(1, &lz4(&data), data.len() + 1);
        bad.truncate(bad.len());
        assert!(matches!(decode_records(&bad), Err(XorbError::Corrupt(_))));
        assert!(matches!(
            ChunkHeader::parse(&[1, 0, 0, 0, 0, 0, 0, 0]),
            Err(XorbError::Unsupported(1, 0))
        ));
    }
}
