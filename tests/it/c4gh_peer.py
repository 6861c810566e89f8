#!/usr/bin/env python3
"""The Python reference implementation of Crypt4GH (PyPI `crypt4gh`) as a test
peer, for what its command line cannot make: edit lists of several ranges,
files whose segments use several data keys, and private keys under bcrypt or
PBKDF2. The bytes come from the reference's own functions (header packets,
segment encryption, KDFs, key-file strings); this script only strings them
together, as the reference's own tests/_common/edit_list_gen.py does.
Used by tests/it/crypt4gh.rs.

usage: c4gh_peer.py edit SECKEY PUBKEY LENGTH...  < plain > file.c4gh
       c4gh_peer.py multikey SECKEY PUBKEY NKEYS  < plain > file.c4gh
       c4gh_peer.py keyfile KDF PASSPHRASE SECKEY_OUT PUBKEY_OUT
SECKEY's passphrase, if any, comes from $C4GH_PASSPHRASE.
"""
import os
import sys
from base64 import b64encode

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from crypt4gh import SEGMENT_SIZE, CIPHER_DIFF, header, sodium
from crypt4gh.keys import c4gh, get_private_key, get_public_key
from crypt4gh.keys.kdf import derive_key, get_kdf


def encrypt(seckey, pubkey, packets, session_keys):
    """Header for PUBKEY, then stdin in segments, segment i under key i mod n."""
    sk = get_private_key(seckey, lambda: os.environ.get("C4GH_PASSPHRASE", ""))
    keys = [(0, sk, get_public_key(pubkey))]
    out = sys.stdout.buffer
    out.write(header.serialize([p for packet in packets for p in header.encrypt(packet, keys)]))
    plain = sys.stdin.buffer.read()
    for i in range(0, len(plain), SEGMENT_SIZE):
        segment = plain[i:i + SEGMENT_SIZE]
        sealed = bytearray(len(segment) + CIPHER_DIFF)
        key = session_keys[(i // SEGMENT_SIZE) % len(session_keys)]
        n = sodium.chacha20poly1305_encrypt(sealed, segment, key)
        out.write(sealed[:n])


def pem(kind, data):
    return (f"-----BEGIN CRYPT4GH {kind} KEY-----\n".encode() + b64encode(data)
            + f"\n-----END CRYPT4GH {kind} KEY-----\n".encode())


def keyfile(kdf, passphrase, seckey_out, pubkey_out):
    """A key pair whose private key is sealed under KDF (as c4gh.encode_private_key
    does for scrypt, with the KDF chosen here)."""
    kdf = kdf.encode()
    sk = os.urandom(32)
    saltsize, rounds = get_kdf(kdf)
    salt = os.urandom(saltsize)
    nonce = os.urandom(12)
    sealed = ChaCha20Poly1305(derive_key(kdf, passphrase.encode(), salt, rounds)).encrypt(nonce, sk, None)
    blob = (c4gh.MAGIC_WORD + c4gh.encode_string(kdf)
            + c4gh.encode_string(rounds.to_bytes(4, "big") + salt)
            + c4gh.encode_string(b"chacha20_poly1305") + c4gh.encode_string(nonce + sealed))
    with open(seckey_out, "wb") as f:
        f.write(pem("PRIVATE", blob))
    with open(pubkey_out, "wb") as f:
        f.write(pem("PUBLIC", sodium.derive_pk(sk)))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "edit" and len(argv) >= 4:
        session = os.urandom(32)
        lengths = [int(n) for n in argv[4:]]
        packets = [header.make_packet_data_enc(0, session), header.make_packet_data_edit_list(lengths)]
        encrypt(argv[2], argv[3], packets, [session])
    elif cmd == "multikey" and len(argv) == 5:
        sessions = [os.urandom(32) for _ in range(int(argv[4]))]
        encrypt(argv[2], argv[3], [header.make_packet_data_enc(0, s) for s in sessions], sessions)
    elif cmd == "keyfile" and len(argv) == 6:
        keyfile(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
