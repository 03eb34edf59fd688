//! The UEFI "compression algorithm" decoder: EFI 1.1 compression (EFI_STANDARD_COMPRESSION in
//! EFI_COMPRESSION_SECTION) and its Tiano variant (the TianoCustomDecompress GUID-defined
//! section), as edk2's BaseUefiDecompressLib and BaseTools Decompress.c read them.
//!
//! A stream is an 8-byte header (u32 compressed size, u32 original size, little-endian) and an
//! MSB-first bit stream of blocks. Each block starts with a 16-bit count of codes and three
//! canonical Huffman code-length tables: the "extra" set T (19 symbols, its count in 5 bits),
//! which codes the lengths of the char&length set C (510 symbols: 256 bytes and match lengths
//! 3..=256, count in 9 bits), then the position set P (up to 31 symbols, count in 4 bits for
//! EFI and 5 for Tiano — the only difference between the two). A P symbol `s` is a distance
//! `s` for `s <= 1`, else `2^(s-1)` plus `s-1` more bits; the match starts `distance + 1`
//! bytes back.
//!
//! Everything in a stream is hostile: the original size is checked against the caller's limit
//! before anything is allocated, code-length tables must form complete prefix codes, reading
//! past the compressed size, a match before the start or past the declared size are errors, and
//! nothing panics. Work is bounded by the output size (every code emits at least one byte) and
//! by the input size (every block header costs bits).

use thiserror::Error;

/// Which of the two bit-stream variants a stream uses (they differ only in the position set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// EFI 1.1 compression (UEFI spec, edk2 `UefiDecompress`): 4-bit position-set count.
    Efi,
    /// Tiano compression (edk2 `TianoDecompress`): 5-bit position-set count, 512 KiB window.
    Tiano,
}

impl Algorithm {
    /// The lower-case name used in reports (`efi`, `tiano`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Efi => "efi",
            Algorithm::Tiano => "tiano",
        }
    }

    /// The other variant, tried when a stream does not decode as the one its container names.
    pub fn other(self) -> Algorithm {
        match self {
            Algorithm::Efi => Algorithm::Tiano,
            Algorithm::Tiano => Algorithm::Efi,
        }
    }

    /// Bits of the position-set count field.
    fn pbit(self) -> u32 {
        match self {
            Algorithm::Efi => 4,
            Algorithm::Tiano => 5,
        }
    }
}

/// Which code-length table of a block was bad (in error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSet {
    /// The extra set T, which codes the C lengths.
    Extra,
    /// The char&length set C.
    CharLen,
    /// The position set P.
    Position,
}

impl std::fmt::Display for TableSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableSet::Extra => "extra (T)",
            TableSet::CharLen => "char&length (C)",
            TableSet::Position => "position (P)",
        })
    }
}

/// Why an EFI/Tiano stream could not be decoded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TianoError {
    /// Shorter than the 8-byte size header.
    #[error("EFI/Tiano header truncated: {len} bytes, the header needs 8")]
    TruncatedHeader {
        /// Bytes present.
        len: usize,
    },
    /// The header's compressed size runs past the data.
    #[error(
        "EFI/Tiano compressed size {declared} runs past the {available} bytes after the header"
    )]
    TruncatedStream {
        /// Compressed size from the header.
        declared: u32,
        /// Bytes present after the header.
        available: usize,
    },
    /// The header's original size exceeds what the caller allows.
    #[error("EFI/Tiano output of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Declared original size.
        size: u64,
        /// Allowed size.
        limit: u64,
    },
    /// A code-length table is malformed (not a complete prefix code, counts out of range, …).
    #[error("bad {set} code-length table in the block at output offset {offset}: {reason}")]
    BadTable {
        /// Which table.
        set: TableSet,
        /// Output bytes produced before the block.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// Decoding needed more bits than the compressed size holds.
    #[error("EFI/Tiano bit stream ends early: {produced} of {size} bytes decoded")]
    EndsEarly {
        /// Output bytes produced.
        produced: usize,
        /// Declared original size.
        size: u32,
    },
    /// A match points before the start of the output.
    #[error("back-reference {distance} bytes back at output offset {offset}, before the start")]
    BackReference {
        /// How far back (distance + 1).
        distance: u64,
        /// Output offset of the match.
        offset: usize,
    },
    /// A match runs past the declared original size.
    #[error("match of {len} bytes at output offset {offset} overruns the declared {size} bytes")]
    OutputOverrun {
        /// Match length.
        len: usize,
        /// Output offset of the match.
        offset: usize,
        /// Declared original size.
        size: u32,
    },
}

/// The two sizes of a stream's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes of bit stream after the header.
    pub compressed_size: u32,
    /// Bytes the stream decodes to.
    pub original_size: u32,
}

/// Reads the 8-byte header (without checking it against the data).
pub fn header(data: &[u8]) -> Result<Header, TianoError> {
    let field = |at: usize| {
        data.get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
    };
    match (field(0), field(4)) {
        (Some(compressed_size), Some(original_size)) => Ok(Header {
            compressed_size,
            original_size,
        }),
        _ => Err(TianoError::TruncatedHeader { len: data.len() }),
    }
}

/// The original size a stream's header declares, so callers can apply their caps before
/// decoding (None when the header is truncated).
pub fn declared_size(data: &[u8]) -> Option<u64> {
    header(data).ok().map(|h| u64::from(h.original_size))
}

/// Decodes one stream of the given variant, refusing an original size above `limit` before
/// allocating anything.
pub fn decompress(data: &[u8], algorithm: Algorithm, limit: u64) -> Result<Vec<u8>, TianoError> {
    let h = header(data)?;
    let size = u64::from(h.original_size);
    if size > limit {
        return Err(TianoError::TooLarge { size, limit });
    }
    let body = data.get(8..).unwrap_or(&[]);
    let comp = usize::try_from(h.compressed_size).unwrap_or(usize::MAX);
    let Some(bits) = body.get(..comp) else {
        return Err(TianoError::TruncatedStream {
            declared: h.compressed_size,
            available: body.len(),
        });
    };
    if h.original_size == 0 {
        return Ok(Vec::new());
    }
    Decoder::new(bits, algorithm, h.original_size).run()
}

/// Decodes a stream as `preferred`, then as the other variant if that fails (vendors ship Tiano
/// streams in EFI compression sections and the reverse); returns the variant that worked, or
/// the error of the preferred one. The preferred variant goes first because a stream without
/// matches can also decode, to other bytes, as the wrong variant.
pub fn decompress_either(
    data: &[u8],
    preferred: Algorithm,
    limit: u64,
) -> Result<(Vec<u8>, Algorithm), TianoError> {
    match decompress(data, preferred, limit) {
        Ok(out) => Ok((out, preferred)),
        // Header problems are the same for both variants.
        Err(
            e @ (TianoError::TruncatedHeader { .. }
            | TianoError::TruncatedStream { .. }
            | TianoError::TooLarge { .. }),
        ) => Err(e),
        Err(e) => decompress(data, preferred.other(), limit)
            .map(|out| (out, preferred.other()))
            .map_err(|_| e),
    }
}

/// Symbols of the char&length set: 256 bytes and match lengths 3..=256.
const NC: usize = 256 + 256 + 2 - 3 - 1;
/// Symbols of the extra set: code lengths 0..=16 shifted by 2, and three zero-run codes.
const NT: usize = 16 + 3;
/// Symbols of the position set the decoder accepts (edk2's MAXNP: 2^5 - 1).
const NP: usize = 31;
/// Longest code.
const MAX_LEN: usize = 16;
/// Bits of the count field of the extra set.
const TBIT: u32 = 5;
/// Bits of the count field of the char&length set.
const CBIT: u32 = 9;
/// Index of the T length after which a 2-bit count of zero lengths follows.
const T_SPECIAL: usize = 3;
/// Primary lookup bits of the C table (edk2 uses 12 too); longer codes take the slow path.
const C_FAST: u32 = 12;
/// Primary lookup bits of the T and P tables.
const PT_FAST: u32 = 8;

/// An MSB-first bit reader over the compressed bytes; reads past the end yield zero bits and
/// are caught by [`Bits::overrun`].
struct Bits<'a> {
    src: &'a [u8],
    /// Next byte to load (may pass `src.len()` while zero padding is loaded).
    pos: usize,
    /// Left-aligned bits; the top `count` are loaded.
    buf: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(src: &'a [u8]) -> Self {
        let mut b = Bits {
            src,
            pos: 0,
            buf: 0,
            count: 0,
        };
        b.refill();
        b
    }

    /// Loads bytes until at least 56 bits are buffered.
    #[inline]
    fn refill(&mut self) {
        if let Some(word) = self
            .src
            .get(self.pos..self.pos.wrapping_add(8))
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
        {
            // Whole bytes that fit; the bits of the next bytes loaded below `count` are the
            // same ones a later refill loads again.
            self.buf |= u64::from_be_bytes(word) >> self.count;
            let take = (63 - self.count) / 8;
            self.pos += take as usize;
            self.count += take * 8;
            return;
        }
        while self.count <= 56 {
            let byte = self.src.get(self.pos).copied().unwrap_or(0);
            self.buf |= u64::from(byte) << (56 - self.count);
            self.pos += 1;
            self.count += 8;
        }
    }

    /// Makes at least `n` (≤ 56) bits available.
    #[inline]
    fn need(&mut self, n: u32) {
        if self.count < n {
            self.refill();
        }
    }

    /// The next `n` (1..=32) bits without consuming them; `need(n)` first.
    #[inline]
    fn peek(&self, n: u32) -> u32 {
        (self.buf >> (64 - n)) as u32
    }

    /// Drops `n` bits; `need(n)` first.
    #[inline]
    fn consume(&mut self, n: u32) {
        self.buf = self.buf.checked_shl(n).unwrap_or(0);
        self.count = self.count.saturating_sub(n);
    }

    /// Reads `n` (0..=32) bits.
    #[inline]
    fn get(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        self.need(n);
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Whether more bits were consumed than the compressed data holds.
    #[inline]
    fn overrun(&self) -> bool {
        let consumed = (self.pos as u64) * 8 - u64::from(self.count);
        consumed > (self.src.len() as u64) * 8
    }
}

/// A canonical prefix code as edk2's MakeTable assigns it (shorter codes first, symbols in
/// order within a length), with a primary lookup table and a slow path for longer codes.
struct Huffman {
    /// A table of one symbol coded in zero bits (the "count 0" form of a block header).
    single: Option<u16>,
    /// Lookup bits of this block's code: the longest code, at most `max_fast_bits`, so a
    /// block of short codes does not pay for a full table rebuild.
    fast_bits: u32,
    max_fast_bits: u32,
    /// `symbol << 5 | length` for codes up to `fast_bits`, 0 where a longer code starts.
    fast: Vec<u16>,
    /// First code of each length, in that length's bit space.
    first: [u32; MAX_LEN + 1],
    /// Codes of each length.
    count: [u32; MAX_LEN + 1],
    /// Index in `sorted` of each length's first symbol.
    offset: [u32; MAX_LEN + 1],
    /// Symbols ordered by (length, symbol).
    sorted: Vec<u16>,
}

impl Huffman {
    fn new(fast_bits: u32, symbols: usize) -> Self {
        Huffman {
            single: Some(0),
            fast_bits,
            max_fast_bits: fast_bits,
            fast: vec![0; 1 << fast_bits],
            first: [0; MAX_LEN + 1],
            count: [0; MAX_LEN + 1],
            offset: [0; MAX_LEN + 1],
            sorted: vec![0; symbols],
        }
    }

    /// Builds the code from `lens` (each ≤ 16); a reason when they are not a complete code.
    fn build(&mut self, lens: &[u8]) -> Result<(), &'static str> {
        self.single = None;
        let mut count = [0u32; MAX_LEN + 1];
        for &l in lens {
            let slot = count
                .get_mut(usize::from(l))
                .ok_or("code length above 16")?;
            *slot += 1;
        }
        count[0] = 0;
        let kraft: u32 = (1..=MAX_LEN).map(|l| count[l] << (MAX_LEN - l)).sum();
        if kraft != 1 << MAX_LEN {
            return Err(if kraft > 1 << MAX_LEN {
                "code lengths oversubscribed"
            } else {
                "code lengths incomplete"
            });
        }
        let mut code = 0u32;
        let mut index = 0u32;
        self.count = count;
        let longest = (1..=MAX_LEN).rev().find(|&l| count[l] > 0).unwrap_or(1);
        self.fast_bits = (longest as u32).min(self.max_fast_bits);
        for (l, &n) in count.iter().enumerate().skip(1) {
            self.first[l] = code;
            self.offset[l] = index;
            code = (code + n) << 1;
            index += n;
        }
        if let Some(used) = self.fast.get_mut(..1 << self.fast_bits) {
            used.fill(0);
        }
        let mut next = self.first;
        let mut slot = self.offset;
        for (sym, &l) in lens.iter().enumerate() {
            let l = usize::from(l);
            if l == 0 {
                continue;
            }
            let sym = sym as u16;
            if let Some(s) = self.sorted.get_mut(slot[l] as usize) {
                *s = sym;
            }
            slot[l] += 1;
            let code = next[l];
            next[l] += 1;
            let l = l as u32;
            if l <= self.fast_bits {
                let shift = self.fast_bits - l;
                let start = (code << shift) as usize;
                let end = ((code + 1) << shift) as usize;
                if let Some(range) = self.fast.get_mut(start..end) {
                    range.fill(sym << 5 | l as u16);
                }
            }
        }
        Ok(())
    }

    /// Decodes one symbol (the caller guarantees 16 bits are buffered).
    #[inline]
    fn decode(&self, bits: &mut Bits<'_>) -> Option<u16> {
        if let Some(sym) = self.single {
            return Some(sym);
        }
        let e = self
            .fast
            .get(bits.peek(self.fast_bits) as usize)
            .copied()
            .unwrap_or(0);
        if e != 0 {
            bits.consume(u32::from(e & 31));
            return Some(e >> 5);
        }
        let peek = bits.peek(MAX_LEN as u32);
        for l in (self.fast_bits as usize + 1)..=MAX_LEN {
            let code = peek >> (MAX_LEN - l);
            let d = code.wrapping_sub(self.first[l]);
            if d < self.count[l] {
                bits.consume(l as u32);
                return self.sorted.get((self.offset[l] + d) as usize).copied();
            }
        }
        None
    }
}

/// One decode: the reader, the three codes of the current block and the output.
struct Decoder<'a> {
    bits: Bits<'a>,
    pbit: u32,
    size: u32,
    out: Vec<u8>,
    t: Huffman,
    c: Huffman,
    p: Huffman,
    /// Code lengths being read (the largest set).
    lens: [u8; NC],
}

impl<'a> Decoder<'a> {
    fn new(src: &'a [u8], algorithm: Algorithm, size: u32) -> Self {
        Decoder {
            bits: Bits::new(src),
            pbit: algorithm.pbit(),
            size,
            out: Vec::with_capacity(size as usize),
            t: Huffman::new(PT_FAST, NT),
            c: Huffman::new(C_FAST, NC),
            p: Huffman::new(PT_FAST, NP),
            lens: [0; NC],
        }
    }

    fn bad(&self, set: TableSet, reason: &'static str) -> TianoError {
        TianoError::BadTable {
            set,
            offset: self.out.len(),
            reason,
        }
    }

    fn ends_early(&self) -> TianoError {
        TianoError::EndsEarly {
            produced: self.out.len(),
            size: self.size,
        }
    }

    /// Reads the T or P lengths (3-bit lengths, 7 and up as unary runs of 1s) and builds it.
    fn read_pt(&mut self, set: TableSet) -> Result<(), TianoError> {
        let (n, nbit, special) = match set {
            TableSet::Extra => (NT, TBIT, Some(T_SPECIAL)),
            _ => (NP, self.pbit, None),
        };
        let number = self.bits.get(nbit) as usize;
        if number == 0 {
            let sym = self.bits.get(nbit) as usize;
            if sym >= n {
                return Err(self.bad(set, "single symbol out of range"));
            }
            let table = if set == TableSet::Extra {
                &mut self.t
            } else {
                &mut self.p
            };
            table.single = Some(sym as u16);
            return Ok(());
        }
        if number > n {
            return Err(self.bad(set, "more code lengths than symbols"));
        }
        let mut lens = [0u8; NP];
        let mut i = 0usize;
        while i < number {
            self.bits.need(16);
            let mut len = self.bits.peek(3);
            if len == 7 {
                let ones = (self.bits.buf << 3).leading_ones();
                if ones > (MAX_LEN as u32 - 7) {
                    return Err(self.bad(set, "code length above 16"));
                }
                len += ones;
                self.bits.consume(len - 3);
            } else {
                self.bits.consume(3);
            }
            if let Some(slot) = lens.get_mut(i) {
                *slot = len as u8;
            }
            i += 1;
            if Some(i) == special {
                // The encoder may run these zeros past its count; they only advance the index.
                i = (i + self.bits.get(2) as usize).min(n);
            }
        }
        let lens = lens.get(..n).unwrap_or(&[]);
        let table = if set == TableSet::Extra {
            &mut self.t
        } else {
            &mut self.p
        };
        let result = table.build(lens);
        result.map_err(|reason| self.bad(set, reason))
    }

    /// Reads the C lengths, coded with the T code (0: one zero, 1: 3..=18 zeros, 2: 20..=531
    /// zeros, s ≥ 3: length s - 2), and builds it.
    fn read_c(&mut self) -> Result<(), TianoError> {
        let set = TableSet::CharLen;
        let number = self.bits.get(CBIT) as usize;
        if number == 0 {
            let sym = self.bits.get(CBIT) as usize;
            if sym >= NC {
                return Err(self.bad(set, "single symbol out of range"));
            }
            self.c.single = Some(sym as u16);
            return Ok(());
        }
        if number > NC {
            return Err(self.bad(set, "more code lengths than symbols"));
        }
        self.lens.fill(0);
        let mut i = 0usize;
        while i < number {
            self.bits.need(32);
            let Some(t) = self.t.decode(&mut self.bits) else {
                return Err(self.bad(TableSet::Extra, "code not in the table"));
            };
            let run = match t {
                0 => 1,
                1 => self.bits.get(4) as usize + 3,
                2 => self.bits.get(CBIT) as usize + 20,
                len => {
                    if let Some(slot) = self.lens.get_mut(i) {
                        *slot = (len - 2) as u8;
                    }
                    i += 1;
                    continue;
                }
            };
            if i + run > number {
                return Err(self.bad(set, "run of zero lengths past the count"));
            }
            i += run;
        }
        let result = self.c.build(&self.lens);
        result.map_err(|reason| self.bad(set, reason))
    }

    fn run(mut self) -> Result<Vec<u8>, TianoError> {
        let size = self.size as usize;
        let mut block_left = 0u32;
        while self.out.len() < size {
            if block_left == 0 {
                // A count of 0 means 65536, as edk2's 16-bit counter wraps.
                block_left = match self.bits.get(16) {
                    0 => 1 << 16,
                    n => n,
                };
                self.read_pt(TableSet::Extra)?;
                self.read_c()?;
                self.read_pt(TableSet::Position)?;
                if self.bits.overrun() {
                    return Err(self.ends_early());
                }
            }
            block_left -= 1;
            self.bits.need(32);
            let Some(c) = self.c.decode(&mut self.bits) else {
                return Err(self.bad(TableSet::CharLen, "code not in the table"));
            };
            if c < 256 {
                self.out.push(c as u8);
            } else {
                let len = usize::from(c) - 253;
                self.bits.need(32);
                let Some(p) = self.p.decode(&mut self.bits) else {
                    return Err(self.bad(TableSet::Position, "code not in the table"));
                };
                let distance = match u32::from(p) {
                    p @ 0..=1 => p,
                    p => (1u32 << (p - 1)) + self.bits.get(p - 1),
                };
                self.copy_match(distance as usize, len)?;
            }
            if self.bits.overrun() {
                return Err(self.ends_early());
            }
        }
        Ok(self.out)
    }

    /// Appends `len` bytes starting `distance + 1` bytes back (overlapping copies repeat).
    #[inline]
    fn copy_match(&mut self, distance: usize, len: usize) -> Result<(), TianoError> {
        let at = self.out.len();
        let Some(src) = at.checked_sub(distance + 1) else {
            return Err(TianoError::BackReference {
                distance: distance as u64 + 1,
                offset: at,
            });
        };
        if len > self.size as usize - at {
            return Err(TianoError::OutputOverrun {
                len,
                offset: at,
                size: self.size,
            });
        }
        if distance == 0 {
            let byte = self.out.get(src).copied().unwrap_or(0);
            self.out.resize(at + len, byte);
            return Ok(());
        }
        // The source is periodic with period distance + 1 once copied, so each pass can copy
        // everything written since `src`.
        let mut left = len;
        while left > 0 {
            let chunk = left.min(self.out.len() - src);
            self.out.extend_from_within(src..src + chunk);
            left -= chunk;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An MSB-first bit writer, to hand-build streams.
    #[derive(Default)]
    struct Writer {
        bytes: Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl Writer {
        fn put(&mut self, n: u32, v: u32) {
            for i in (0..n).rev() {
                self.acc = self.acc << 1 | u64::from(v >> i & 1);
                self.n += 1;
                if self.n == 8 {
                    self.bytes.push(self.acc as u8);
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }

        fn finish(mut self, original: u32) -> Vec<u8> {
            if self.n > 0 {
                self.put(8 - self.n, 0);
            }
            let mut s = (self.bytes.len() as u32).to_le_bytes().to_vec();
            s.extend(original.to_le_bytes());
            s.extend(self.bytes);
            s
        }
    }

    /// One block with single-symbol T, C and P tables.
    fn single_block(w: &mut Writer, count: u32, c: u32, p: u32, pbit: u32) {
        w.put(16, count);
        w.put(TBIT, 0);
        w.put(TBIT, 0);
        w.put(CBIT, 0);
        w.put(CBIT, c);
        w.put(pbit, 0);
        w.put(pbit, p);
    }

    #[test]
    fn single_symbol_blocks() {
        let mut w = Writer::default();
        single_block(&mut w, 3, u32::from(b'x'), 0, 4);
        let s = w.finish(3);
        assert_eq!(decompress(&s, Algorithm::Efi, 100), Ok(b"xxx".to_vec()));
        // One byte, then a 5-byte match of distance 0 (zero bits per code).
        let mut w = Writer::default();
        single_block(&mut w, 1, u32::from(b'y'), 0, 5);
        single_block(&mut w, 1, 256 + 2, 0, 5);
        let s = w.finish(6);
        assert_eq!(
            decompress(&s, Algorithm::Tiano, 100),
            Ok(b"yyyyyy".to_vec())
        );
    }

    #[test]
    fn hostile_headers() {
        assert_eq!(
            decompress(&[1, 2, 3], Algorithm::Efi, 10),
            Err(TianoError::TruncatedHeader { len: 3 })
        );
        let mut s = 100u32.to_le_bytes().to_vec();
        s.extend(4u32.to_le_bytes());
        s.extend([0; 10]);
        assert!(matches!(
            decompress(&s, Algorithm::Efi, 10),
            Err(TianoError::TruncatedStream { declared: 100, .. })
        ));
        let mut s = 0u32.to_le_bytes().to_vec();
        s.extend(u32::MAX.to_le_bytes());
        assert_eq!(
            decompress(&s, Algorithm::Tiano, 1 << 20),
            Err(TianoError::TooLarge {
                size: u64::from(u32::MAX),
                limit: 1 << 20
            })
        );
        // Declares output but has no bits: the zero padding must not be decoded.
        let mut s = 0u32.to_le_bytes().to_vec();
        s.extend(1000u32.to_le_bytes());
        assert!(decompress(&s, Algorithm::Efi, 1 << 20).is_err());
    }

    #[test]
    fn matches_out_of_bounds() {
        // A match as the first code points before the start.
        let mut w = Writer::default();
        single_block(&mut w, 1, 256, 0, 4);
        assert!(matches!(
            decompress(&w.finish(3), Algorithm::Efi, 10),
            Err(TianoError::BackReference { offset: 0, .. })
        ));
        // A 256-byte match after one byte runs past a declared size of 10.
        let mut w = Writer::default();
        single_block(&mut w, 1, 0, 0, 4);
        single_block(&mut w, 1, NC as u32 - 1, 0, 4);
        assert!(matches!(
            decompress(&w.finish(10), Algorithm::Efi, 10),
            Err(TianoError::OutputOverrun { len: 256, .. })
        ));
    }

    #[test]
    fn bad_tables() {
        // Single C symbol 510 is out of range.
        let mut w = Writer::default();
        single_block(&mut w, 1, NC as u32, 0, 4);
        assert!(matches!(
            decompress(&w.finish(1), Algorithm::Efi, 10),
            Err(TianoError::BadTable {
                set: TableSet::CharLen,
                ..
            })
        ));
        // A T table of one length-1 code is incomplete.
        let mut w = Writer::default();
        w.put(16, 1);
        w.put(TBIT, 1);
        w.put(3, 1);
        assert!(matches!(
            decompress(&w.finish(1), Algorithm::Efi, 10),
            Err(TianoError::BadTable {
                set: TableSet::Extra,
                reason: "code lengths incomplete",
                ..
            })
        ));
        // Three length-1 codes oversubscribe.
        let mut w = Writer::default();
        w.put(16, 1);
        w.put(TBIT, 3);
        w.put(9, 0b001_001_001);
        w.put(2, 0);
        assert!(matches!(
            decompress(&w.finish(1), Algorithm::Efi, 10),
            Err(TianoError::BadTable {
                reason: "code lengths oversubscribed",
                ..
            })
        ));
        // A unary length of 7 + 10 = 17.
        let mut w = Writer::default();
        w.put(16, 1);
        w.put(TBIT, 1);
        w.put(14, 0x3FFF);
        assert!(matches!(
            decompress(&w.finish(1), Algorithm::Efi, 10),
            Err(TianoError::BadTable {
                reason: "code length above 16",
                ..
            })
        ));
    }

    #[test]
    fn long_codes_take_the_slow_path() {
        // T code: symbol 0 in 2 bits (00), 1 and 2 in 3 bits (010, 011), 3..=18 in 5 bits
        // (10000 + s - 3): 2^14 + 2 × 2^13 + 16 × 2^11 = 2^16, complete.
        let t_lens: Vec<u32> = (0..NT as u32)
            .map(|s| match s {
                0 => 2,
                1 | 2 => 3,
                _ => 5,
            })
            .collect();
        // C code over symbols 0..=16 with lengths 1, 2, …, 15, 16, 16 (complete): codes of
        // 13..=16 bits are past the 12-bit lookup table.
        let c_lens: Vec<u32> = (0..17u32).map(|s| (s + 1).min(16)).collect();
        let mut w = Writer::default();
        w.put(16, 17);
        w.put(TBIT, NT as u32);
        for (i, &l) in t_lens.iter().enumerate() {
            w.put(3, l);
            if i + 1 == T_SPECIAL {
                w.put(2, 0);
            }
        }
        w.put(CBIT, 17);
        for &l in &c_lens {
            // Length l is T symbol l + 2, a 5-bit code.
            w.put(5, 0b10000 + l - 1);
        }
        w.put(4, 0);
        w.put(4, 0);
        // Canonical C codes: symbol s (< 16) has length s + 1 and code 1…10 (s ones, a zero);
        // 15 and 16 are sixteen bits, 1…10 and 1…11.
        let c_code = |s: u32| -> (u32, u32) {
            match s {
                0..=15 => (s + 1, ((1u32 << s) - 1) << 1),
                _ => (16, 0xFFFF),
            }
        };
        for s in (0..17).rev() {
            let (n, v) = c_code(s);
            w.put(n, v);
        }
        let out = decompress(&w.finish(17), Algorithm::Efi, 100).expect("decodes");
        assert_eq!(out, (0..17u8).rev().collect::<Vec<_>>());
    }
}
