//! Big-endian readers and writers for TPM 2.0 marshalled structures (TPM 2.0 Part 2).
//!
//! Every read is bounds-checked: these bytes come from agents and TPMs and are never trusted.

/// Why a marshalled structure could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended before the structure did.
    #[error("truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Where the read started.
        offset: usize,
        /// How many bytes the read wanted.
        needed: usize,
    },
    /// Bytes were left over after the structure ended.
    #[error("{0} trailing bytes after the structure")]
    Trailing(usize),
}

/// A cursor over marshalled bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or(WireError::Truncated {
            offset: self.pos,
            needed: n,
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A TPM2B: a u16 size followed by that many bytes.
    pub(crate) fn tpm2b(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    pub(crate) fn finish(self) -> Result<(), WireError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

/// Appends a TPM2B (u16 size, then the bytes); `None` if the bytes do not fit a u16 size.
pub(crate) fn put_tpm2b(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    let n = u16::try_from(bytes.len()).ok()?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes);
    Some(())
}

/// Wraps bytes as a TPM2B; `None` if they do not fit a u16 size.
pub(crate) fn tpm2b(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    put_tpm2b(&mut out, bytes)?;
    Some(out)
}
