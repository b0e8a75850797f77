//! Codec tests, one file per concern: round trips of every packet, a table
//! of malformed frames, frames captured from real clients, and properties
//! over generated input.
//!
//! Every decode goes through [`parse_frame_header`] and [`decode`] the way a
//! connection drives them, so the fixed header is exercised too.

use bytes::{Bytes, BytesMut};

use super::{DecodeError, Packet, Protocol, decode, encode, encoded_len, parse_frame_header};

mod captured;
mod malformed;
mod proptests;
mod roundtrip;

/// Encodes `packet`, checking that [`encoded_len`] predicted the size: the
/// broker relies on it for Maximum Packet Size checks before encoding.
fn encode_checked(packet: &Packet, protocol: Protocol) -> Bytes {
    let mut out = BytesMut::new();
    encode(packet, protocol, &mut out).expect("packet encodes");
    assert_eq!(
        encoded_len(packet, protocol),
        out.len(),
        "encoded_len disagrees with encode for {packet:?}"
    );
    out.freeze()
}

/// Decodes `bytes`, which must hold exactly one whole frame, with no limit
/// on its size.
fn decode_frame(bytes: &[u8], protocol: Option<Protocol>) -> Result<Packet, DecodeError> {
    decode_frame_max(bytes, protocol, u32::MAX)
}

/// As [`decode_frame`], with a Maximum Packet Size. Panics if `bytes` is not
/// one frame to the byte, so a mistyped literal in a table fails loudly
/// instead of passing for the wrong reason.
fn decode_frame_max(bytes: &[u8], protocol: Option<Protocol>, max: u32) -> Result<Packet, DecodeError> {
    let header = parse_frame_header(bytes, max)?.unwrap_or_else(|| panic!("incomplete frame {bytes:02x?}"));
    assert_eq!(
        header.frame_len(),
        bytes.len(),
        "test input must be exactly one frame: {bytes:02x?}"
    );
    decode(
        header.first_byte,
        Bytes::copy_from_slice(&bytes[header.header_len..]),
        protocol,
    )
}

/// The protocol to decode `packet` under: CONNECT is only accepted as the
/// first packet, before any protocol is known [MQTT-3.1.0-1].
fn session_protocol(packet: &Packet, protocol: Protocol) -> Option<Protocol> {
    match packet {
        Packet::Connect(_) => None,
        _ => Some(protocol),
    }
}

/// Encode, check the length, decode, and compare.
fn round_trip(packet: &Packet, protocol: Protocol) {
    let bytes = encode_checked(packet, protocol);
    let decoded = decode_frame(&bytes, session_protocol(packet, protocol))
        .unwrap_or_else(|e| panic!("{packet:?} under {protocol:?} encoded as {bytes:02x?} fails to decode: {e}"));
    assert_eq!(&decoded, packet, "round trip under {protocol:?} via {bytes:02x?}");
}
