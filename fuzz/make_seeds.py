#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/.

Seeds come from the golden vectors (tests/vectors), files written by the
reference tools (`age`, Python `cryptography`) in the formats of FORMAT.md,
RESULTS.md and docs/mount.md, and a few small Vault replies; the Crypt4GH
results and reference-archive seeds are written by the library itself
(`cargo test -p hpcs-fuzz --test seeds -- --ignored`, run at the end). Needs python3-cryptography and the `age` command (both
installed by tools/setup.sh). Run from anywhere; deterministic except for
the random nonces of generated Crypt4GH files and age stanzas.

    python3 fuzz/make_seeds.py
"""

import hashlib
import hmac
import os
import struct
import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes, serialization

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "vectors")
OUT = os.path.join(HERE, "seeds")
KEYED = ["format_empty-dir", "format_single-file", "format_tree-aes", "format_tree-chacha", "reference_c4gh"]
BROKEN = ["header_bad-magic", "header_unknown-suite", "index_flipped", "payload_flipped-chunk-2",
          "length_truncated-mid-chunk", "key_substituted-stanza"]


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def subkey(key, archive_id, suite, label):
    return HKDF(hashes.SHA256(), 32, archive_id, label.encode() + struct.pack(">H", suite)).derive(key)


def parse(b):
    suite, cs, hl = struct.unpack_from("<HxxxxII", b, 10)
    data_len, index_len = struct.unpack_from("<QQ", b, 56)
    stanzas, at = [], 106
    for _ in range(struct.unpack_from("<H", b, 104)[0]):
        kind, n = struct.unpack_from("<HI", b, at)
        stanzas.append((kind, b[at + 6:at + 6 + n]))
        at += 6 + n
    return suite, cs, hl, b[24:56], data_len, index_len, stanzas


def unwrap(body):
    ident = os.path.join(VECTORS, "identity.txt")
    return subprocess.run(["age", "-d", "-i", ident], input=body, capture_output=True, check=True).stdout


def open_stream(b, suite, key, base, length, cs):
    n = max(1, -(-length // cs))
    out = b""
    for i in range(n):
        plain = cs if i < n - 1 else length - i * cs
        ct = b[base + i * (cs + 16): base + i * (cs + 16) + plain + 16]
        nonce = struct.pack(">Q", i) + b"\0\0\0" + (b"\1" if i == n - 1 else b"\0")
        aead = AESGCM(key) if suite == 1 else ChaCha20Poly1305(key)
        out += aead.decrypt(nonce, ct, None)
    return out


def archives():
    for name in KEYED:
        b = open(os.path.join(VECTORS, name + ".hpcs"), "rb").read()
        for mode in (0, 1):
            put("header_unlock", f"{name}-{mode}", bytes([mode]) + b)
            put("differential", f"{name}-{mode}", bytes([mode]) + b)
        suite, cs, hl, aid, dlen, ilen, stanzas = parse(b)
        key = None
        for kind, body in stanzas:
            if kind == 1:
                put("stanzas", f"age-{name}", b"\0" + body)
                key = unwrap(body)
        dstored = dlen + 16 * max(1, -(-dlen // cs))
        index = open_stream(b, suite, subkey(key, aid, suite, "hpcs/v1 index"), hl + dstored, ilen, cs)
        put("index_parse", name, struct.pack("<Q", dlen) + index)
    for name in BROKEN:
        b = open(os.path.join(VECTORS, name + ".hpcs"), "rb").read()
        put("header_unlock", name, b"\0" + b)


def stanzas():
    put("stanzas", "recipients", b"\1age15hylwejx9r3d5chslnfkrqje50czyft7nlh833f0e4ge79ahuqqshacgvm\nssh-ed25519 AAAA x\n")
    put("stanzas", "vault", b'\2{"v":1,"dataset":"alice/genome","mount":"hpcs","auth_mount":"hpcs-jwt","audience":"hpcs"}')


RESULTS_KEY = bytes([0x5A]) * 32
ARCHIVE = bytes([0xA5]) * 32


def results():
    run = bytes(range(16))
    header = b"hpcs-results/v1\n" + run + struct.pack(">Q", 3) + ARCHIVE
    for i, (data, path) in enumerate([(b"hello world\n", b"out/a.txt"), (b"", b"e"), (bytes(300), b"d/../x")]):
        tail = path + struct.pack(">IIQ", len(path), 0o640, len(data))
        body = header + data + tail
        body += hmac.new(RESULTS_KEY, body, hashlib.sha256).digest() + b"HPCS-END"
        put("results", f"object-{i}", b"\2" + body)
        put("results", f"object-{i}-age", b"\4" + age_encrypt(body))
    text = ("hpcs-results-manifest/v1\nrun " + run.hex() + "\narchive " + ARCHIVE.hex() +
            "\nhost node1\njob 42\nstarted 1700000000\nfinished 1700000100\n"
            "dir 750 " + b"out".hex() + "\nfile " + "0" * 16 + " 12 " + "ab" * 32 + " 640 " + b"out/a.txt".hex() +
            "\nopen " + "1" * 16 + " " + b"out/b".hex() + "\n")
    text += "mac " + hmac.new(RESULTS_KEY, text.encode(), hashlib.sha256).hexdigest() + "\n"
    put("results", "manifest", b"\3" + text.encode())
    put("results", "manifest-age", b"\5" + age_encrypt(text.encode()))


def age_encrypt(plain):
    """An age file to the golden recipient, as a job writes it (`age` CLI)."""
    return subprocess.run(["age", "-r", GOLDEN_RECIPIENT], input=plain, capture_output=True,
                          check=True).stdout


GOLDEN_RECIPIENT = "age15hylwejx9r3d5chslnfkrqje50czyft7nlh833f0e4ge79ahuqqshacgvm"


def pins():
    """The golden vectors' pins (FORMAT.md "Archive pin"), and respellings."""
    import base64
    for name in KEYED:
        b = open(os.path.join(VECTORS, name + ".hpcs"), "rb").read()
        digest = hashlib.sha256(b"hpcs/v1 archive-pin" + b[24:56] + b[72:104]).digest()[:16]
        pin = "hpcspin1-" + base64.b32encode(digest).decode().lower().rstrip("=")
        put("pin", name, pin.encode())
    put("pin", "upper-spaced", b"  " + pin.upper().encode() + b"\n")
    put("pin", "short", pin[:-1].encode())


SCRATCH_KEY = bytes([0x42]) * 32


def scratch():
    """Sealed scratch blocks (docs/mount.md "Scratch block format"): the
    version the daemon expects (u64 little-endian), then the slot's bytes;
    the plaintext of version v is byte i = i + v (mod 256)."""
    for version in (1, 2, 0x1234, 2**64 - 1):
        plain = bytes((i + version) & 0xFF for i in range(4096))
        nonce = b"\0" * 4 + struct.pack(">Q", version)
        sealed = AESGCM(SCRATCH_KEY).encrypt(nonce, plain, None)
        put("scratch_block", f"v{version:x}", struct.pack("<Q", version) + sealed)
    # A sealed block under another version (rolled back or moved).
    put("scratch_block", "vmax-as-v2", struct.pack("<Q", 2) + sealed)


READER = X25519PrivateKey.from_private_bytes(bytes([0x11]) * 32)


def raw(pub):
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def c4gh(plain, edit=None):
    writer = X25519PrivateKey.from_private_bytes(bytes([0x22]) * 32)
    rpk, wpk = raw(READER.public_key()), raw(writer.public_key())
    shared = hashlib.blake2b(writer.exchange(READER.public_key()) + rpk + wpk).digest()[:32]
    dkey = bytes([0x33]) * 32
    payloads = [struct.pack("<II", 0, 0) + dkey]
    if edit is not None:
        payloads.append(struct.pack("<II", 1, len(edit)) + b"".join(struct.pack("<Q", e) for e in edit))
    out = b"crypt4gh" + struct.pack("<II", 1, len(payloads))
    for p in payloads:
        nonce = os.urandom(12)
        enc = wpk + nonce + ChaCha20Poly1305(shared).encrypt(nonce, p, None)
        out += struct.pack("<II", 8 + len(enc), 0) + enc
    for at in range(0, len(plain), 65536):
        nonce = os.urandom(12)
        out += nonce + ChaCha20Poly1305(dkey).encrypt(nonce, plain[at:at + 65536], None)
    return out


def crypt4gh():
    files = {"small": c4gh(b"hello crypt4gh\n"), "edit": c4gh(b"0123456789" * 10, [3, 20, 5, 7]),
             "empty": c4gh(b"")}
    for name, f in files.items():
        for mode in (0, 1, 2):
            put("crypt4gh", f"{name}-{mode}", bytes([mode]) + f)
    sk = b"c4gh-v1" + struct.pack(">H", 4) + b"none" + struct.pack(">H", 4) + b"none" + \
        struct.pack(">H", 32) + bytes([0x11]) * 32
    import base64
    put("crypt4gh", "seckey", b"\3-----BEGIN CRYPT4GH PRIVATE KEY-----\n" + base64.b64encode(sk) +
        b"\n-----END CRYPT4GH PRIVATE KEY-----\n")
    put("crypt4gh", "pubkey", b"\4-----BEGIN CRYPT4GH PUBLIC KEY-----\n" +
        base64.b64encode(raw(READER.public_key())) + b"\n-----END CRYPT4GH PUBLIC KEY-----\n")


def vault():
    put("vault_json", "stanza", b'\0{"v":1,"dataset":"alice/genome","mount":"hpcs","auth_mount":"hpcs-jwt","audience":"hpcs"}')
    put("vault_json", "names", b"\1alice/genome")
    put("vault_json", "login", b'\2{"auth":{"client_token":"s.abc","policies":["x"]}}')
    put("vault_json", "error", b'\3{"errors":["permission denied\\n\\t* 1 error occurred"]}')
    put("vault_json", "copy", b'\4{"v":1,"dataset":"alice/genome","spiffe_id":"spiffe://ex.org/job","archive_id":"' +
        (bytes([0xA5]) * 32).hex().encode() + b'","key_hex":"' + (b"5a" * 32) + b'","created":1}')
    put("vault_json", "meta", b'\5{"v":1,"dataset":"alice/genome","archive_id":"aa","key_hex":"' + (b"5a" * 32) +
        b'","allowed":["spiffe://ex.org/job"],"created":1,"updated":2}')


if __name__ == "__main__":
    archives()
    stanzas()
    results()
    crypt4gh()
    vault()
    pins()
    scratch()
    # Crypt4GH results and reference-archive external files: written by the
    # library itself (fuzz/tests/seeds.rs).
    subprocess.run(["cargo", "test", "-q", "-p", "hpcs-fuzz", "--test", "seeds", "--", "--ignored"],
                   cwd=os.path.join(HERE, ".."), check=True)
    sys.exit(0)
