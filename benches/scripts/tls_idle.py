#!/usr/bin/env python3
"""Private memory per idle TLS connection, Tern vs Mosquitto, same
certificates, same run: starts each broker on an mqtts port, opens N TLS
connections that each complete CONNECT/CONNACK (MQTT 3.1.1), holds them,
and reads the broker's Private_Clean + Private_Dirty from smaps_rollup.

  python3 benches/scripts/tls_idle.py --tern target/release/tern --conns 1000

The 2026-12-04 per-connection figure came from here; tern-bench can now do
the same against a running broker (`tern-bench run --tls-ca ca.pem
--broker-pid PID idle --conns 1000`), and scripts/tls_compare.sh measures
TLS handshakes and throughput.
"""
import argparse, os, socket, ssl, subprocess, sys, tempfile, time

def private_kib(pid):
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean", "Private_Dirty")):
                total += int(line.split()[1])
    return total

def connect_packet(i):
    cid = f"tls-idle-{i}".encode()
    var = b"\x00\x04MQTT\x04\x02\x0e\x10"  # 3.1.1, clean session, keep alive 3600
    payload = len(cid).to_bytes(2, "big") + cid
    body = var + payload
    return bytes([0x10, len(body)]) + body

def hold(port, ca, n):
    ctx = ssl.create_default_context(cafile=ca)
    conns = []
    for i in range(n):
        raw = socket.create_connection(("127.0.0.1", port))
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(connect_packet(i))
        ack = s.recv(4)
        assert ack[:1] == b"\x20", ack
        conns.append(s)
    return conns

def measure(cmd, port, ca, n):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    idle = private_kib(p.pid)
    conns = hold(port, ca, n)
    time.sleep(1.0)
    loaded = private_kib(p.pid)
    for c in conns:
        c.close()
    p.terminate()
    p.wait()
    return idle, loaded

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", default="target/release/tern")
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    ap.add_argument("--conns", type=int, default=1000)
    a = ap.parse_args()
    d = tempfile.mkdtemp()
    sh = lambda c: subprocess.run(c, shell=True, check=True, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=bench ca'")
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj '/CN=localhost'")
    open(f"{d}/ext", "w").write("subjectAltName=DNS:localhost\n")
    sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext")
    tp, mp = 18931, 18932
    open(f"{d}/tern.toml", "w").write(
        f'[log]\nlevel = "warn"\n[sys]\ninterval = "0s"\n[[listener]]\nname = "tls"\nbind = "127.0.0.1:{tp}"\n'
        f'protocol = "mqtts"\nallow_anonymous = true\ncert_file = "server.pem"\nkey_file = "server.key"\n')
    open(f"{d}/m.conf", "w").write(
        f"listener {mp} 127.0.0.1\nallow_anonymous true\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
        f"max_connections -1\npersistence false\nlog_type error\nuser root\n")
    t = measure([a.tern, "--config", f"{d}/tern.toml"], tp, f"{d}/ca.pem", a.conns)
    m = measure([a.mosquitto, "-c", f"{d}/m.conf"], mp, f"{d}/ca.pem", a.conns)
    per = lambda x: (x[1] - x[0]) * 1024 / a.conns
    print(f"| broker | idle private KiB | with {a.conns} TLS conns KiB | private B/conn |")
    print("|---|--:|--:|--:|")
    print(f"| tern | {t[0]} | {t[1]} | {per(t):.0f} |")
    print(f"| mosquitto | {m[0]} | {m[1]} | {per(m):.0f} |")
    print(f"ratio tern/mosquitto per connection: {per(t) / per(m):.2f}")

if __name__ == "__main__":
    main()
