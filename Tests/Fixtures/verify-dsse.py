"""An independent check of minewatch's attestations with PyPI's securesystemslib.

usage: verify-dsse.py ENVELOPE_FILE PUBLIC_KEY_PEM SUBJECT_DIGEST
Reads one DSSE envelope (JSON; the first line of a JSON-lines file), verifies its signature with
the ECDSA P-256 public key (securesystemslib's CryptoSigner key type: ecdsa-sha2-nistp256, DER
signatures over SHA-256 of the PAE), then checks the verified payload is an in-toto Statement about
SUBJECT_DIGEST. Prints the predicate as JSON and exits 0; exits 1 with a reason otherwise.
"""
import json
import sys

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

envelope_file, key_file, digest = sys.argv[1], sys.argv[2], sys.argv[3]
with open(envelope_file, "rb") as f:
    raw = json.loads(f.read().splitlines()[0])
with open(key_file) as f:
    pem = f.read()
# cosign and minewatch write "keyid": "" (a hint only); securesystemslib matches keyids exactly.
key = SSlibKey("", "ecdsa", "ecdsa-sha2-nistp256", {"public": pem})
env = Envelope.from_dict(raw)
try:
    env.verify([key], 1)
except VerificationError as e:
    print(f"signature: {e}")
    sys.exit(1)
if env.payload_type != "application/vnd.in-toto+json":
    print(f"payloadType: {env.payload_type}")
    sys.exit(1)
statement = json.loads(env.payload)
if statement.get("_type") != "https://in-toto.io/Statement/v1":
    print(f"_type: {statement.get('_type')}")
    sys.exit(1)
digests = ["sha256:" + s["digest"]["sha256"] for s in statement["subject"]]
if digest not in digests:
    print(f"subject: {digests}")
    sys.exit(1)
print(json.dumps({"predicateType": statement["predicateType"], "predicate": statement["predicate"]}))
