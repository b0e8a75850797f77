//! Framing: the fixed header, and the entry points that dispatch a frame to
//! its packet family.

use bytes::{BufMut, Bytes, BytesMut};

use super::primitives::put_fixed_header;
use super::{
    Auth, ConnAck, Connect, DecodeError, Disconnect, EncodeError, Packet, Protocol, PubResp, Publish, SubAck,
    Subscribe, UnsubAck, Unsubscribe,
};

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
    let Some(&first_byte) = buf.first() else {
        return Ok(None);
    };
    let mut remaining: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                // Longer than needed [MQTT-1.5.5-1].
                return Err(DecodeError::MalformedRemainingLength);
            }
            let header = FrameHeader {
                first_byte,
                header_len: 2 + i,
                remaining_len: remaining,
            };
            if header.frame_len() > max_packet_size as usize {
                return Err(DecodeError::PacketTooLarge {
                    size: header.frame_len(),
                    max: max_packet_size,
                });
            }
            return Ok(Some(header));
        }
    }
    Err(DecodeError::MalformedRemainingLength)
}

/// Decodes the body of one frame. `protocol` is `None` until CONNECT has been
/// received, and then only CONNECT is accepted [MQTT-3.1.0-1].
pub fn decode(first_byte: u8, body: Bytes, protocol: Option<Protocol>) -> Result<Packet, DecodeError> {
    let packet_type = first_byte >> 4;
    let flags = first_byte & 0x0F;
    let Some(protocol) = protocol else {
        if packet_type != 1 {
            return Err(DecodeError::FirstPacketNotConnect);
        }
        return Ok(Packet::Connect(Box::new(Connect::decode(flags, body)?)));
    };
    let empty = |p: Packet| {
        if flags != 0 {
            Err(DecodeError::InvalidFlags { packet_type, flags })
        } else if !body.is_empty() {
            Err(DecodeError::TrailingBytes(body.len()))
        } else {
            Ok(p)
        }
    };
    Ok(match packet_type {
        0 => return Err(DecodeError::ReservedPacketType),
        1 => return Err(DecodeError::SecondConnect),
        2 => Packet::ConnAck(ConnAck::decode(flags, body, protocol)?),
        3 => Packet::Publish(Publish::decode(flags, body, protocol)?),
        4 => Packet::PubAck(PubResp::decode(4, flags, body, protocol)?),
        5 => Packet::PubRec(PubResp::decode(5, flags, body, protocol)?),
        6 => Packet::PubRel(PubResp::decode(6, flags, body, protocol)?),
        7 => Packet::PubComp(PubResp::decode(7, flags, body, protocol)?),
        8 => Packet::Subscribe(Subscribe::decode(flags, body, protocol)?),
        9 => Packet::SubAck(SubAck::decode(flags, body, protocol)?),
        10 => Packet::Unsubscribe(Unsubscribe::decode(flags, body, protocol)?),
        11 => Packet::UnsubAck(UnsubAck::decode(flags, body, protocol)?),
        12 => return empty(Packet::PingReq),
        13 => return empty(Packet::PingResp),
        14 => Packet::Disconnect(Disconnect::decode(flags, body, protocol)?),
        _ => {
            if !protocol.is_v5() {
                return Err(DecodeError::AuthBeforeV5);
            }
            Packet::Auth(Auth::decode(flags, body)?)
        }
    })
}

/// Appends `packet` encoded for `protocol` to `out`.
pub fn encode(packet: &Packet, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
    match packet {
        Packet::Publish(p) => {
            let parts = p.parts();
            let size = super::publish_parts_len(&parts, protocol);
            if super::encode_publish_parts(&parts, protocol, out) == 0 {
                return Err(EncodeError::PacketTooLarge { size });
            }
            return Ok(());
        }
        Packet::PingReq => {
            out.put_slice(&[0xC0, 0]);
            return Ok(());
        }
        Packet::PingResp => {
            out.put_slice(&[0xD0, 0]);
            return Ok(());
        }
        _ => {}
    }
    let mut body = BytesMut::new();
    let first = match packet {
        Packet::Connect(c) => c.encode_body(&mut body)?,
        Packet::ConnAck(c) => c.encode_body(protocol, &mut body)?,
        Packet::PubAck(a) => a.encode_body(4, protocol, &mut body)?,
        Packet::PubRec(a) => a.encode_body(5, protocol, &mut body)?,
        Packet::PubRel(a) => a.encode_body(6, protocol, &mut body)?,
        Packet::PubComp(a) => a.encode_body(7, protocol, &mut body)?,
        Packet::Subscribe(s) => s.encode_body(protocol, &mut body)?,
        Packet::SubAck(s) => s.encode_body(protocol, &mut body)?,
        Packet::Unsubscribe(u) => u.encode_body(protocol, &mut body)?,
        Packet::UnsubAck(u) => u.encode_body(protocol, &mut body)?,
        Packet::Disconnect(d) => d.encode_body(protocol, &mut body)?,
        Packet::Auth(a) => a.encode_body(&mut body)?,
        Packet::Publish(_) | Packet::PingReq | Packet::PingResp => return Ok(()),
    };
    put_fixed_header(out, first, body.len())?;
    out.put_slice(&body);
    Ok(())
}

/// The size `encode` would write, for Maximum Packet Size checks.
pub fn encoded_len(packet: &Packet, protocol: Protocol) -> usize {
    if let Packet::Publish(p) = packet {
        return super::publish_parts_len(&p.parts(), protocol);
    }
    let mut out = BytesMut::new();
    match encode(packet, protocol, &mut out) {
        Ok(()) => out.len(),
        Err(_) => usize::MAX,
    }
}
