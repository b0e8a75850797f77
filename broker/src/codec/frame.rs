//! Framing: the fixed header, and the entry points that dispatch a frame to
//! its packet family.

use bytes::{Bytes, BytesMut};

use super::{DecodeError, EncodeError, Packet, Protocol};

/// The fixed header of one frame: the first byte and the remaining length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Packet type (high nibble) and flags (low nibble).
    pub first_byte: u8,
    /// Bytes of the fixed header itself (2 to 5).
    pub header_len: usize,
    /// The remaining length: bytes of the frame after the fixed header.
    pub remaining_len: usize,
}

impl FrameHeader {
    pub fn frame_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Reads the fixed header at the start of `buf`. `Ok(None)` when more bytes
/// are needed. Fails on a remaining length longer than four bytes
/// [MQTT-1.5.5-1] and on a frame larger than `max_packet_size`, before any of
/// its body has been read.
pub fn parse_frame_header(buf: &[u8], max_packet_size: u32) -> Result<Option<FrameHeader>, DecodeError> {
    let _ = (buf, max_packet_size);
    todo!("codec helper")
}

/// Decodes the body of one frame. `protocol` is `None` until CONNECT has been
/// received, and then only CONNECT is accepted [MQTT-3.1.0-1].
pub fn decode(first_byte: u8, body: Bytes, protocol: Option<Protocol>) -> Result<Packet, DecodeError> {
    let _ = (first_byte, body, protocol);
    todo!("codec helper")
}

/// Appends `packet` encoded for `protocol` to `out`.
pub fn encode(packet: &Packet, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    let _ = (packet, protocol, out);
    todo!("codec helper")
}

/// The size `encode` would write, for Maximum Packet Size checks.
pub fn encoded_len(packet: &Packet, protocol: Protocol) -> usize {
    let _ = (packet, protocol);
    todo!("codec helper")
}
