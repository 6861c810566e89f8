//! A little-endian cursor over untrusted bytes, shared by the header and
//! index parsers: every read is bounds-checked and a short input becomes the
//! caller's own error, never a panic.

use super::Error;

/// Reads fixed-width little-endian integers and byte runs from a slice.
pub(crate) struct Le<'a> {
    b: &'a [u8],
    pos: usize,
    short: fn() -> Error,
}

impl<'a> Le<'a> {
    /// A cursor at `pos` in `b`; `short` makes the error for reading past
    /// the end.
    pub(crate) fn new(b: &'a [u8], pos: usize, short: fn() -> Error) -> Le<'a> {
        Le { b, pos, short }
    }

    /// Bytes consumed so far (the position).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(self.short)?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_stops_at_the_end() {
        let b = [1u8, 2, 0, 3, 0, 0, 0, 9];
        let mut r = Le::new(&b, 0, || Error::BadRequest);
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 2);
        assert_eq!(r.u32().unwrap(), 3);
        assert_eq!(r.pos(), 7);
        assert!(matches!(r.u16(), Err(Error::BadRequest)));
        assert_eq!(r.take(1).unwrap(), &[9]);
        assert!(r.take(usize::MAX).is_err());
    }
}
