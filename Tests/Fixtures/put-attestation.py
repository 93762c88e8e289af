"""Stores a DSSE envelope as an image's cosign-style attestation through the registry's plain HTTP
API, without minewatch: blob, config and manifest under the tag sha256-<hex>.att. The tests use it
to plant tampered and misplaced attestations.

usage: put-attestation.py HOST:PORT REPOSITORY SUBJECT_DIGEST ENVELOPE_FILE
"""
import hashlib
import json
import sys
import urllib.request

host, repo, digest, path = sys.argv[1:5]
base = f"http://{host}/v2/{repo}"


def put_blob(data: bytes) -> str:
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"{base}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(start) as r:
        loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    sep = "&" if "?" in loc else "?"
    req = urllib.request.Request(f"{loc}{sep}digest={d}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req).close()
    return d


envelope = open(path, "rb").read().splitlines()[0]
layer = put_blob(envelope)
config = json.dumps({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer]}}).encode()
config_digest = put_blob(config)
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config), "digest": config_digest},
    "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "size": len(envelope), "digest": layer,
                "annotations": {"dev.cosignproject.cosign/signature": "", "predicateType": "https://minewatch.dev/attestation/scan/v1"}}],
}).encode()
tag = digest.replace(":", "-") + ".att"
req = urllib.request.Request(f"{base}/manifests/{tag}", method="PUT", data=manifest,
                             headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
urllib.request.urlopen(req).close()
print(tag)
