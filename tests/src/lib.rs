//! Helpers for the black-box suite: start the real `tern` binary, raw MQTT byte I/O.
