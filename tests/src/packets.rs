//! Hand-written MQTT packet bytes. Deliberately independent of the broker's codec.

/// Protocol level byte in CONNECT.
pub const V31: u8 = 3;
pub const V311: u8 = 4;
pub const V5: u8 = 5;

// Control packet types (upper nibble of the first byte).
pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;
pub const AUTH: u8 = 15;

// v5 property identifiers.
pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub const CONTENT_TYPE: u8 = 0x03;
pub const RESPONSE_TOPIC: u8 = 0x08;
pub const CORRELATION_DATA: u8 = 0x09;
pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub const SERVER_KEEP_ALIVE: u8 = 0x13;
pub const AUTHENTICATION_METHOD: u8 = 0x15;
pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub const WILL_DELAY_INTERVAL: u8 = 0x18;
pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub const REASON_STRING: u8 = 0x1F;
pub const RECEIVE_MAXIMUM: u8 = 0x21;
pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub const TOPIC_ALIAS: u8 = 0x23;
pub const MAXIMUM_QOS: u8 = 0x24;
pub const RETAIN_AVAILABLE: u8 = 0x25;
pub const USER_PROPERTY: u8 = 0x26;
pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Variable byte integer encoding.
pub fn varint(mut n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// Two-byte-length-prefixed string.
pub fn string(s: &str) -> Vec<u8> {
    bin(s.as_bytes())
}

/// Two-byte-length-prefixed binary data.
pub fn bin(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

/// Fixed header + remaining length + body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len() as u32));
    out.extend_from_slice(body);
    out
}

/// Builder for a v5 property block (length-prefixed on `build`).
#[derive(Default, Clone, Debug)]
pub struct Props(Vec<u8>);

impl Props {
    pub fn new() -> Props {
        Props::default()
    }
    pub fn byte(mut self, id: u8, v: u8) -> Props {
        self.0.push(id);
        self.0.push(v);
        self
    }
    pub fn u16(mut self, id: u8, v: u16) -> Props {
        self.0.push(id);
        self.0.extend(v.to_be_bytes());
        self
    }
    pub fn u32(mut self, id: u8, v: u32) -> Props {
        self.0.push(id);
        self.0.extend(v.to_be_bytes());
        self
    }
    pub fn var(mut self, id: u8, v: u32) -> Props {
        self.0.push(id);
        self.0.extend(varint(v));
        self
    }
    pub fn str(mut self, id: u8, v: &str) -> Props {
        self.0.push(id);
        self.0.extend(string(v));
        self
    }
    pub fn bin(mut self, id: u8, v: &[u8]) -> Props {
        self.0.push(id);
        self.0.extend(bin(v));
        self
    }
    pub fn user(mut self, k: &str, v: &str) -> Props {
        self.0.push(USER_PROPERTY);
        self.0.extend(string(k));
        self.0.extend(string(v));
        self
    }
    /// Raw bytes appended to the property block (for malformed tests).
    pub fn raw(mut self, b: &[u8]) -> Props {
        self.0.extend_from_slice(b);
        self
    }
    /// Length-prefixed block.
    pub fn build(&self) -> Vec<u8> {
        let mut out = varint(self.0.len() as u32);
        out.extend_from_slice(&self.0);
        out
    }
}

/// CONNECT packet builder.
#[derive(Clone, Debug)]
pub struct Connect {
    pub level: u8,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    pub props: Props,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// Set the reserved flag bit 0 (protocol violation).
    pub reserved_flag: bool,
}

/// Will message in a CONNECT.
#[derive(Clone, Debug)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub props: Props,
}

impl Will {
    pub fn new(topic: &str, payload: &[u8], qos: u8, retain: bool) -> Will {
        Will {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            props: Props::new(),
        }
    }
}

impl Connect {
    pub fn new(level: u8, client_id: &str) -> Connect {
        Connect {
            level,
            client_id: client_id.into(),
            clean: true,
            keep_alive: 60,
            props: Props::new(),
            will: None,
            username: None,
            password: None,
            reserved_flag: false,
        }
    }
    pub fn v311(client_id: &str) -> Connect {
        Connect::new(V311, client_id)
    }
    pub fn v5(client_id: &str) -> Connect {
        Connect::new(V5, client_id)
    }
    pub fn clean(mut self, clean: bool) -> Connect {
        self.clean = clean;
        self
    }
    pub fn keep_alive(mut self, k: u16) -> Connect {
        self.keep_alive = k;
        self
    }
    pub fn props(mut self, p: Props) -> Connect {
        self.props = p;
        self
    }
    pub fn will(mut self, w: Will) -> Connect {
        self.will = Some(w);
        self
    }
    pub fn user(mut self, u: &str, p: Option<&[u8]>) -> Connect {
        self.username = Some(u.into());
        self.password = p.map(|p| p.to_vec());
        self
    }
    pub fn bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        if self.level == V31 {
            body.extend(string("MQIsdp"));
        } else {
            body.extend(string("MQTT"));
        }
        body.push(self.level);
        let mut flags = 0u8;
        if self.reserved_flag {
            flags |= 0x01;
        }
        if self.clean {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        body.push(flags);
        body.extend(self.keep_alive.to_be_bytes());
        if self.level == V5 {
            body.extend(self.props.build());
        }
        body.extend(string(&self.client_id));
        if let Some(w) = &self.will {
            if self.level == V5 {
                body.extend(w.props.build());
            }
            body.extend(string(&w.topic));
            body.extend(bin(&w.payload));
        }
        if let Some(u) = &self.username {
            body.extend(string(u));
        }
        if let Some(p) = &self.password {
            body.extend(bin(p));
        }
        packet(CONNECT << 4, &body)
    }
}

/// PUBLISH bytes. `props` is only written for v5 (`Some`).
pub fn publish(topic: &str, payload: &[u8], qos: u8, retain: bool, pid: u16, props: Option<&Props>) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend(pid.to_be_bytes());
    }
    if let Some(p) = props {
        body.extend(p.build());
    }
    body.extend_from_slice(payload);
    let first = (PUBLISH << 4) | (qos << 1) | u8::from(retain);
    packet(first, &body)
}

/// v3.1.1 PUBLISH.
pub fn publish311(topic: &str, payload: &[u8], qos: u8, retain: bool, pid: u16) -> Vec<u8> {
    publish(topic, payload, qos, retain, pid, None)
}

/// v5 PUBLISH with an empty property block.
pub fn publish5(topic: &str, payload: &[u8], qos: u8, retain: bool, pid: u16) -> Vec<u8> {
    publish(topic, payload, qos, retain, pid, Some(&Props::new()))
}

/// SUBSCRIBE bytes. Filters carry their options byte (v3: just the QoS).
pub fn subscribe(pid: u16, filters: &[(&str, u8)], props: Option<&Props>) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if let Some(p) = props {
        body.extend(p.build());
    }
    for (f, o) in filters {
        body.extend(string(f));
        body.push(*o);
    }
    packet((SUBSCRIBE << 4) | 0x02, &body)
}

pub fn subscribe311(pid: u16, filter: &str, qos: u8) -> Vec<u8> {
    subscribe(pid, &[(filter, qos)], None)
}

pub fn subscribe5(pid: u16, filter: &str, options: u8) -> Vec<u8> {
    subscribe(pid, &[(filter, options)], Some(&Props::new()))
}

/// UNSUBSCRIBE bytes.
pub fn unsubscribe(pid: u16, filters: &[&str], props: Option<&Props>) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if let Some(p) = props {
        body.extend(p.build());
    }
    for f in filters {
        body.extend(string(f));
    }
    packet((UNSUBSCRIBE << 4) | 0x02, &body)
}

/// PUBACK / PUBREC / PUBCOMP (flags 0) or PUBREL (flags 2), short form.
pub fn ack(kind: u8, pid: u16) -> Vec<u8> {
    let flags = if kind == PUBREL { 0x02 } else { 0 };
    packet((kind << 4) | flags, &pid.to_be_bytes())
}

pub fn pingreq() -> Vec<u8> {
    vec![0xC0, 0x00]
}

/// DISCONNECT: v3 form when `reason` is None, v5 with a reason code otherwise.
pub fn disconnect(reason: Option<u8>) -> Vec<u8> {
    match reason {
        None => vec![0xE0, 0x00],
        Some(r) => vec![0xE0, 0x02, r, 0x00],
    }
}

/// v5 DISCONNECT with properties.
pub fn disconnect_props(reason: u8, props: &Props) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend(props.build());
    packet(0xE0, &body)
}

/// One decoded property value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prop {
    Byte(u8),
    U16(u16),
    U32(u32),
    Var(u32),
    Str(String),
    Bin(Vec<u8>),
    Pair(String, String),
}

/// One packet as read off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub first: u8,
    pub body: Vec<u8>,
}

/// Reader over a packet body.
pub struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }
    pub fn u8(&mut self) -> u8 {
        let v = self.buf[self.pos];
        self.pos += 1;
        v
    }
    pub fn u16(&mut self) -> u16 {
        let v = u16::from_be_bytes([self.buf[self.pos], self.buf[self.pos + 1]]);
        self.pos += 2;
        v
    }
    pub fn u32(&mut self) -> u32 {
        let v = u32::from_be_bytes(self.buf[self.pos..self.pos + 4].try_into().unwrap());
        self.pos += 4;
        v
    }
    pub fn var(&mut self) -> u32 {
        let mut mult = 1u32;
        let mut v = 0u32;
        loop {
            let b = self.u8();
            v += u32::from(b & 0x7F) * mult;
            if b & 0x80 == 0 {
                return v;
            }
            mult *= 128;
        }
    }
    pub fn bin(&mut self) -> Vec<u8> {
        let n = self.u16() as usize;
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        v
    }
    pub fn string(&mut self) -> String {
        String::from_utf8(self.bin()).expect("UTF-8 string from broker")
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
    /// A property block.
    pub fn props(&mut self) -> Vec<(u8, Prop)> {
        let len = self.var() as usize;
        let end = self.pos + len;
        let mut out = Vec::new();
        while self.pos < end {
            let id = self.u8();
            let v = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Prop::Byte(self.u8()),
                0x13 | 0x21 | 0x22 | 0x23 => Prop::U16(self.u16()),
                0x02 | 0x11 | 0x18 | 0x27 => Prop::U32(self.u32()),
                0x0B => Prop::Var(self.var()),
                0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Prop::Str(self.string()),
                0x09 | 0x16 => Prop::Bin(self.bin()),
                0x26 => {
                    let k = self.string();
                    let v = self.string();
                    Prop::Pair(k, v)
                }
                other => panic!("unknown property id {other:#x} from broker"),
            };
            out.push((id, v));
        }
        assert_eq!(self.pos, end, "property block length mismatch");
        out
    }
}

/// Look up the first property with `id`.
pub fn prop(props: &[(u8, Prop)], id: u8) -> Option<&Prop> {
    props.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
}

/// All properties with `id`.
pub fn props_all(props: &[(u8, Prop)], id: u8) -> Vec<&Prop> {
    props.iter().filter(|(i, _)| *i == id).map(|(_, v)| v).collect()
}

/// Decoded CONNACK.
#[derive(Clone, Debug)]
pub struct Connack {
    pub session_present: bool,
    pub code: u8,
    pub props: Vec<(u8, Prop)>,
}

/// Decoded PUBLISH.
#[derive(Clone, Debug)]
pub struct Publish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: String,
    pub pid: u16,
    pub props: Vec<(u8, Prop)>,
    pub payload: Vec<u8>,
}

impl Packet {
    pub fn kind(&self) -> u8 {
        self.first >> 4
    }
    pub fn flags(&self) -> u8 {
        self.first & 0x0F
    }
    /// Wire bytes of this packet.
    pub fn bytes(&self) -> Vec<u8> {
        packet(self.first, &self.body)
    }
    pub fn connack(&self, v5: bool) -> Connack {
        assert_eq!(self.kind(), CONNACK, "expected CONNACK, got {self:?}");
        let mut c = Cursor::new(&self.body);
        let sp = c.u8();
        let code = c.u8();
        let props = if v5 && !c.at_end() { c.props() } else { Vec::new() };
        Connack {
            session_present: sp & 1 == 1,
            code,
            props,
        }
    }
    pub fn publish(&self, v5: bool) -> Publish {
        assert_eq!(self.kind(), PUBLISH, "expected PUBLISH, got {self:?}");
        let qos = (self.first >> 1) & 3;
        let mut c = Cursor::new(&self.body);
        let topic = c.string();
        let pid = if qos > 0 { c.u16() } else { 0 };
        let props = if v5 { c.props() } else { Vec::new() };
        Publish {
            dup: self.first & 0x08 != 0,
            qos,
            retain: self.first & 1 == 1,
            topic,
            pid,
            props,
            payload: c.rest().to_vec(),
        }
    }
    /// SUBACK / UNSUBACK: (packet id, reason codes).
    pub fn suback(&self, v5: bool) -> (u16, Vec<u8>) {
        assert!(
            matches!(self.kind(), SUBACK | UNSUBACK),
            "expected SUBACK/UNSUBACK, got {self:?}"
        );
        let mut c = Cursor::new(&self.body);
        let pid = c.u16();
        if v5 {
            c.props();
        }
        (pid, c.rest().to_vec())
    }
    /// PUBACK/PUBREC/PUBREL/PUBCOMP: (packet id, reason code; 0 when absent).
    pub fn ack(&self) -> (u16, u8) {
        let mut c = Cursor::new(&self.body);
        let pid = c.u16();
        let rc = if c.at_end() { 0 } else { c.u8() };
        (pid, rc)
    }
    /// v5 DISCONNECT reason code (0 when absent) and properties.
    pub fn disconnect(&self) -> (u8, Vec<(u8, Prop)>) {
        assert_eq!(self.kind(), DISCONNECT, "expected DISCONNECT, got {self:?}");
        let mut c = Cursor::new(&self.body);
        if c.at_end() {
            return (0, Vec::new());
        }
        let rc = c.u8();
        let props = if c.at_end() { Vec::new() } else { c.props() };
        (rc, props)
    }
}
