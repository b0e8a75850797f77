//! The data representations of MQTT §1.5: integers, variable byte integers,
//! UTF-8 strings and binary data, read from one frame and written to a
//! buffer.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::{DecodeError, EncodeError};

/// Largest value a variable byte integer holds [MQTT-1.5.5].
pub const VARINT_MAX: u32 = 268_435_455;

/// A cursor over one frame's body. Every read is bounded by the body: a
/// length field can never make it read past the frame or allocate.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }

    pub fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                // A final zero byte after a continuation is a longer
                // encoding than needed [MQTT-1.5.5-1].
                if i > 0 && b == 0 {
                    return Err(DecodeError::MalformedVarInt);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVarInt)
    }

    pub fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// Two-byte length and that many bytes [MQTT-1.5.6].
    pub fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }

    /// Two-byte length and UTF-8 without U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2].
    pub fn string(&mut self) -> Result<ByteString, DecodeError> {
        utf8(self.binary()?)
    }

    pub fn rest(&mut self) -> Bytes {
        let b = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        b
    }

    /// A sub-reader over the next `n` bytes (a property block).
    pub fn sub(&mut self, n: usize) -> Result<Reader, DecodeError> {
        Ok(Reader::new(self.take(n)?))
    }

    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

pub(crate) fn utf8(b: Bytes) -> Result<ByteString, DecodeError> {
    if b.contains(&0) {
        return Err(DecodeError::NullCharacter);
    }
    ByteString::try_from(b).map_err(|_| DecodeError::InvalidUtf8)
}

pub(crate) fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Values above [`VARINT_MAX`] are written as `VARINT_MAX`: no caller may
/// send more, and `varint_len` counts four bytes for them.
pub(crate) fn put_varint(out: &mut BytesMut, v: u32) {
    let mut v = v.min(VARINT_MAX);
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            return;
        }
    }
}

pub(crate) fn put_binary(out: &mut BytesMut, b: &[u8], what: &'static str) -> Result<(), EncodeError> {
    let n = u16::try_from(b.len()).map_err(|_| EncodeError::FieldTooLong { what })?;
    out.put_u16(n);
    out.put_slice(b);
    Ok(())
}

pub(crate) fn put_str(out: &mut BytesMut, s: &str, what: &'static str) -> Result<(), EncodeError> {
    put_binary(out, s.as_bytes(), what)
}

/// Writes the fixed header for a body of `remaining` bytes.
pub(crate) fn put_fixed_header(out: &mut BytesMut, first_byte: u8, remaining: usize) -> Result<(), EncodeError> {
    let len = u32::try_from(remaining)
        .ok()
        .filter(|&n| n <= VARINT_MAX)
        .ok_or(EncodeError::PacketTooLarge { size: remaining })?;
    out.reserve(5 + remaining);
    out.put_u8(first_byte);
    put_varint(out, len);
    Ok(())
}
