//! Byte-level input handling shared by the parsers: decompression by magic, with limits, and
//! UTF-16 → UTF-8 transcoding while streaming (Dell's Catalog.xml is UTF-16 LE).

use std::io::{self, BufRead, BufReader, Read};

use encoding_rs::{Decoder, DecoderResult, Encoding, UTF_16BE, UTF_16LE};

use crate::error::{CatalogError, Result};

/// The most a decompressed catalog may grow to (a real Dell catalog is ~50 MB).
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// The compression a byte stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `1f 8b`.
    Gzip,
    /// `28 b5 2f fd`.
    Zstd,
    /// Anything else.
    None,
}

/// Recognises gzip and zstd by their magic numbers.
pub fn sniff_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps a reader so gzip or zstd content (by magic) comes out decompressed, capped at `limit` bytes.
pub fn decompressing_reader<'a, R: BufRead + 'a>(
    mut reader: R,
    limit: u64,
) -> Result<Box<dyn Read + 'a>> {
    let head = reader.fill_buf()?;
    let inner: Box<dyn Read + 'a> = match sniff_compression(head) {
        // Single member: real jcat files carry trailing bytes after the gzip stream, which
        // `gzip -d` also ignores.
        Compression::Gzip => Box::new(flate2::bufread::GzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| CatalogError::Decompress(e.to_string()))?,
        ),
        Compression::None => Box::new(reader),
    };
    Ok(Box::new(LimitedReader {
        inner,
        left: limit,
        limit,
    }))
}

/// Decompresses a whole buffer (gzip/zstd by magic, else returned as is), capped at `limit`.
pub fn decompress(bytes: &[u8], limit: u64) -> Result<Vec<u8>> {
    if sniff_compression(bytes) == Compression::None {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    decompressing_reader(bytes, limit)?
        .read_to_end(&mut out)
        .map_err(map_read_error)?;
    Ok(out)
}

/// Turns an io error from our reader stack back into the named error it carries.
pub(crate) fn map_read_error(e: io::Error) -> CatalogError {
    if e.get_ref().is_some_and(|inner| inner.is::<CatalogError>()) {
        match e.into_inner().map(|inner| inner.downcast::<CatalogError>()) {
            Some(Ok(inner)) => return *inner,
            Some(Err(other)) => return CatalogError::Decompress(other.to_string()),
            None => return CatalogError::Decompress("unknown".into()),
        }
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => CatalogError::Truncated(e.to_string()),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::Other => {
            CatalogError::Decompress(e.to_string())
        }
        _ => CatalogError::Io(e),
    }
}

fn wrap(e: CatalogError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Caps how many bytes come out of a (decompressing) reader.
struct LimitedReader<'a> {
    inner: Box<dyn Read + 'a>,
    left: u64,
    limit: u64,
}

impl Read for LimitedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Probe one byte: exactly at the limit is fine, beyond it is a bomb.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(wrap(CatalogError::TooLarge {
                    what: "decompressed catalog".into(),
                    limit: self.limit,
                })),
            };
        }
        let cap = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..cap])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The text encoding an XML document starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8 (or ASCII), with or without BOM.
    Utf8,
    /// UTF-16 little endian (Dell's).
    Utf16Le,
    /// UTF-16 big endian.
    Utf16Be,
}

/// Decides the encoding from the first bytes: BOM first, else the position of the zero byte
/// around the first `<`.
pub fn sniff_text_encoding(head: &[u8]) -> Result<TextEncoding> {
    match head {
        [0xff, 0xfe, ..] => Ok(TextEncoding::Utf16Le),
        [0xfe, 0xff, ..] => Ok(TextEncoding::Utf16Be),
        [0xef, 0xbb, 0xbf, ..] => Ok(TextEncoding::Utf8),
        [b'<' | b' ' | b'\t' | b'\r' | b'\n', 0, ..] => Ok(TextEncoding::Utf16Le),
        [0, b'<' | b' ' | b'\t' | b'\r' | b'\n', ..] => Ok(TextEncoding::Utf16Be),
        [b'<' | b' ' | b'\t' | b'\r' | b'\n', ..] => Ok(TextEncoding::Utf8),
        [] => Err(CatalogError::Truncated("empty document".into())),
        [a, ..] => Err(CatalogError::Encoding(format!(
            "document starts with byte {a:#04x}: neither a BOM nor '<'"
        ))),
    }
}

/// A reader yielding UTF-8 from UTF-8 or UTF-16 input, so one XML parser serves every catalog.
/// Malformed UTF-16 and content that contradicts the BOM are errors, not replacement characters.
pub struct Utf8Reader<R: BufRead> {
    inner: R,
    decoder: Option<Decoder>,
    out: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    consumed: u64,
    first: bool,
    done: bool,
}

impl<R: BufRead> Utf8Reader<R> {
    /// Sniffs the encoding and prepares the transcoder.
    pub fn new(mut inner: R) -> Result<Self> {
        let head = inner.fill_buf()?;
        let enc = sniff_text_encoding(head)?;
        let decoder = match enc {
            TextEncoding::Utf8 => None,
            TextEncoding::Utf16Le => Some(UTF_16LE.new_decoder_with_bom_removal()),
            TextEncoding::Utf16Be => Some(UTF_16BE.new_decoder_with_bom_removal()),
        };
        Ok(Utf8Reader {
            inner,
            decoder,
            out: vec![0; 128 * 1024],
            out_pos: 0,
            out_len: 0,
            consumed: 0,
            first: true,
            done: false,
        })
    }

    /// The encoding the document was found to be in.
    pub fn encoding(&self) -> Option<&'static Encoding> {
        self.decoder.as_ref().map(|d| d.encoding())
    }

    fn refill(&mut self) -> io::Result<()> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(());
        };
        self.out_pos = 0;
        self.out_len = 0;
        while self.out_len == 0 && !self.done {
            let input = self.inner.fill_buf()?;
            let last = input.is_empty();
            let (result, read, written) =
                decoder.decode_to_utf8_without_replacement(input, &mut self.out, last);
            self.inner.consume(read);
            self.consumed += read as u64;
            self.out_len = written;
            match result {
                DecoderResult::InputEmpty => {
                    if last {
                        self.done = true;
                    }
                }
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => {
                    return Err(wrap(CatalogError::Encoding(format!(
                        "malformed UTF-16 near byte {}",
                        self.consumed
                    ))));
                }
            }
        }
        Ok(())
    }

    fn check_first(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.first {
            return Ok(());
        }
        if let Some(&b) = bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            self.first = false;
            let b = if bytes.starts_with(&[0xef, 0xbb, 0xbf]) {
                bytes.get(3).copied().unwrap_or(b'<')
            } else {
                b
            };
            if b != b'<' {
                return Err(wrap(CatalogError::Encoding(
                    "content does not match the byte-order mark (first character is not '<')"
                        .into(),
                )));
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Utf8Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Utf8Reader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.decoder.is_none() {
            if self.first {
                let head = self.inner.fill_buf()?.to_vec();
                self.check_first(&head)?;
            }
            return self.inner.fill_buf();
        }
        if self.out_pos >= self.out_len {
            self.refill()?;
            if self.first {
                let head = self.out[..self.out_len].to_vec();
                self.check_first(&head)?;
            }
        }
        Ok(&self.out[self.out_pos..self.out_len])
    }

    fn consume(&mut self, amt: usize) {
        if self.decoder.is_none() {
            self.inner.consume(amt);
        } else {
            self.out_pos = (self.out_pos + amt).min(self.out_len);
        }
    }
}

/// Opens any catalog byte stream as UTF-8 text: decompresses, then transcodes.
pub fn open_text<'a, R: Read + 'a>(reader: R) -> Result<Utf8Reader<BufReader<Box<dyn Read + 'a>>>> {
    let raw = decompressing_reader(
        BufReader::with_capacity(256 * 1024, reader),
        MAX_DECOMPRESSED,
    )?;
    Utf8Reader::new(BufReader::with_capacity(256 * 1024, raw)).map_err(|e| match e {
        CatalogError::Io(io) => map_read_error(io),
        other => other,
    })
}
