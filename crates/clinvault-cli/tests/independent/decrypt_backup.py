#!/usr/bin/env python3
"""Decrypts a ClinVault backup with standard libraries only, following docs/formats/backup.md.

Usage: decrypt_backup.py BACKUP OUTDIR   (backup passphrase in env CLINVAULT_BACKUP_PASSPHRASE)

Writes the archive's files into OUTDIR and prints JSON: the entry names and the patients' last
names read from the restored SQLCipher database. No ClinVault code is used: PyCryptodome
(XChaCha20-Poly1305), argon2-cffi (Argon2id), hashlib/hmac (HKDF-SHA256), tarfile, sqlcipher3.
"""
import base64, hashlib, hmac, io, json, os, struct, sys, tarfile, unicodedata, uuid

from argon2.low_level import Type, hash_secret_raw
from Crypto.Cipher import ChaCha20_Poly1305
import sqlcipher3

CHUNK = 1024 * 1024
TAG = 16


def b64(s):
    return base64.b64decode(s + "=" * (-len(s) % 4))


def tup(*parts):
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def hkdf_sha256(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def main(path, outdir):
    data = open(path, "rb").read()
    assert data[:8] == b"CVBACKUP", "not a ClinVault backup"
    (hlen,) = struct.unpack(">I", data[8:12])
    preamble = data[: 12 + hlen]
    header = json.loads(preamble[12:])
    backup_id = uuid.UUID(header["backup_id"]).bytes

    # 1. The backup key, unwrapped with the backup passphrase.
    rec = header["passphrase"]
    kdf = rec["kdf"]
    salt = b64(kdf["salt"])
    passphrase = unicodedata.normalize("NFC", os.environ["CLINVAULT_BACKUP_PASSPHRASE"])
    kek = hash_secret_raw(passphrase.encode(), salt, kdf["iterations"], kdf["memory_kib"],
                          kdf["parallelism"], 32, Type.ID, version=kdf["version"])
    binding = tup(kdf["algorithm"].encode(), struct.pack(">I", kdf["version"]),
                  struct.pack(">I", kdf["memory_kib"]), struct.pack(">I", kdf["iterations"]),
                  struct.pack(">I", kdf["parallelism"]), salt)
    aad = b"clinvault/v1/backup-key-passphrase" + backup_id + binding
    wrapped = b64(rec["wrapped"]["ciphertext"])
    c = ChaCha20_Poly1305.new(key=kek, nonce=b64(rec["wrapped"]["nonce"]))
    c.update(aad)
    backup_key = c.decrypt_and_verify(wrapped[:-TAG], wrapped[-TAG:])

    # 2. The payload: STREAM chunks, nonce = prefix(19) || u32be(counter) || last flag.
    prefix = b64(header["nonce_prefix"])
    chunk_aad = hashlib.sha256(preamble).digest()
    body = data[12 + hlen:]
    plain, counter, pos = bytearray(), 0, 0
    while True:
        block = body[pos: pos + CHUNK + TAG]
        pos += len(block)
        last = pos >= len(body)
        nonce = prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")
        c = ChaCha20_Poly1305.new(key=backup_key, nonce=nonce)
        c.update(chunk_aad)
        plain += c.decrypt_and_verify(block[:-TAG], block[-TAG:])
        counter += 1
        if last:
            break

    # 3. A plain POSIX tar archive.
    names = []
    with tarfile.open(fileobj=io.BytesIO(bytes(plain))) as tar:
        for m in tar.getmembers():
            names.append(m.name)
            target = os.path.join(outdir, m.name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(tar.extractfile(m).read())

    # 4. The database key from the vault key record, and the database itself.
    vk = open(os.path.join(outdir, "vault-key.bin"), "rb").read()
    assert vk[:8] == b"CVKEYS\x00\x01"
    vault_id, epoch, mk = vk[8:24], vk[24:32], vk[32:64]
    db_key = hkdf_sha256(mk, vault_id, tup(b"clinvault/v1/sqlcipher-key", epoch))
    conn = sqlcipher3.connect(os.path.join(outdir, "vault.db"))
    conn.execute(f"PRAGMA key = \"x'{db_key.hex()}'\"")
    last_names = [r[0] for r in conn.execute("SELECT last_name FROM patients ORDER BY last_name")]
    print(json.dumps({"entries": names, "last_names": last_names}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
