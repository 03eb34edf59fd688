//! The key-to-partition rule, identical on both backends and to Kafka's Java client.
//!
//! Kafka's default partitioner hashes keys with murmur2 (`Utils.murmur2`); librdkafka's
//! `murmur2_random` partitioner does the same. We set it on the Kafka backend and use this
//! function on the embedded backend, so a server's records land in the same partition number
//! whichever backend runs, and whichever client (Java, Python, Rust) produced them.

/// Kafka's murmur2 hash of a key (the 32-bit variant with seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record among `partitions`, as Kafka's default partitioner computes it.
pub fn partition_for_key(key: &[u8], partitions: u32) -> i32 {
    if partitions == 0 {
        return 0;
    }
    (((murmur2(key) as u32) & 0x7fff_ffff) % partitions) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Apache Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafka_java_vectors() {
        let cases: &[(&str, i32)] = &[
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()), *want, "murmur2({input:?})");
        }
    }

    #[test]
    fn partition_is_in_range() {
        for n in 1..20u32 {
            for k in ["a", "server-1", "", "ξ"] {
                let p = partition_for_key(k.as_bytes(), n);
                assert!(p >= 0 && (p as u32) < n);
            }
        }
    }
}
